// Token embedding gather.
// Twin: reference/text_encoder/qwen3_modules.h qwen3_embedding (torch.nn.Embedding.forward,
//       Qwen3Model.embed_tokens).
// Shapes: ids [N] int32 on the device, each in [0, V) (the caller checks them on the host with the
// reference's message: qwen3_cuda.cpp), table [V, C] and out [N, C] in the storage dtype. A copy:
// exact in every dtype.
// Versions: v1 (only): one block per token, threads stride over C.
#pragma once
#include "common.h"

namespace zimage::gpu {

void embedding_gather(DType dt, const int32_t* ids, int64_t N, const void* table, int64_t C, void* out,
                      cudaStream_t stream);

}  // namespace zimage::gpu

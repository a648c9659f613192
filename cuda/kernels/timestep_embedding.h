// Sinusoidal timestep embedding, cos first.
// Twin: reference/modules/timestep_embedder.h timestep_embedding
//       (TimestepEmbedder.timestep_embedding: freqs and args in fp32, then cos | sin).
// Shapes: t [B] fp32, already multiplied by t_scale -> emb [B, dim] in storage dtype:
//   freq_k = exp(fp32(-ln(max_period)) * k / half), arg = t * freq_k (fp32), emb = [cos(arg), sin(arg)],
//   a trailing 0 column when dim is odd.
// Versions: v1 (only): one thread per (b, k), accurate expf/cosf/sinf (no fast math).
#pragma once
#include "common.h"

namespace zimage::gpu {

void timestep_embedding(DType dt, const float* t, int64_t B, int64_t dim, double max_period, void* emb,
                        cudaStream_t stream);

}  // namespace zimage::gpu

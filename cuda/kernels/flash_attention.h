// Fused scaled-dot-product attention with a key-padding mask: online softmax over key tiles, no
// L x L matrix in memory.
// Twin: reference/modules/attention.h scaled_dot_product_attention (torch SDPA math backend,
//       boolean key mask broadcast as mask[:, None, None, :]).
// Shapes: q, k, v [B, L, H, D] as rows of a wider buffer: token n = b * L + l, head h starts at
// n * ld + h * D (the fused to_qkv output: ld = 3C; weight_layout.h); mask [B, L] int32 (1 = the
// key takes part) or nullptr; out [B, L, H, D] with token stride ldo.
// softmax(q k^T / sqrt(D)) v in fp32 (scores scaled after the dot product, as the twin); a query
// row whose keys are all masked gives NaN, as torch does.
// Versions (AttentionVersion):
//   v1_simt: CUDA-core fp32 math; a 128-thread block holds 32 query rows of one (b, h), 4 threads
//            per row, each owning D/4 interleaved dims (d = sub + 4 i: conflict-free shared reads);
//            32-key K/V tiles staged in shared memory as fp32; D in {32, 128}.
#pragma once
#include "common.h"

namespace zimage::gpu {

enum class AttentionVersion { v1_simt };
const char* attention_version_name(AttentionVersion v);
inline constexpr AttentionVersion kAttentionVersions[] = {AttentionVersion::v1_simt};

void flash_attention(DType dt, const void* q, const void* k, const void* v, int64_t ld, const int32_t* mask, void* out,
                     int64_t ldo, int64_t B, int64_t L, int64_t H, int64_t D, cudaStream_t stream,
                     AttentionVersion version = AttentionVersion::v1_simt);

}  // namespace zimage::gpu

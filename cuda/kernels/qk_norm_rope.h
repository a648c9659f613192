// Per-head RMSNorm of q and k, then RoPE, in place.
// Twin: reference/nn/norms.h rms_norm over D (Attention norm_q / norm_k, eps 1e-5), then
//       reference/dit/rope.h apply_rotary_emb (interleaved adjacent pairs (x[2k], x[2k+1])),
//       as reference/dit/attention.h attention applies them.
// Shapes: q, k [B, L, H, D] as rows of a wider buffer with one row stride (q.ld == k.ld): token n's
// head h starts at n * ld + h * D (the fused to_qkv output has ld = 3C, q at column 0 and k at
// column C: q = qkv, k = qkv.from_col(C); weight_layout.h).
// norm.q, norm.k [D] (both nullptr when qk_norm is false: RoPE only), freqs [B, L, D/2, 2] fp32
// (cos, sin). fp32 math between norm and rotation (no intermediate rounding).
// Versions, chosen per call: v2 when D / 32 elements per lane are 2, 4 or 8 in at most 16 bytes
// (bf16: D 64, 128, 256; fp32: D 64, 128) and every lane's vectors are aligned: one warp
// per (token, head, q|k), each lane one vector load of its D / 32 contiguous values, held in
// registers (the head is read once). v1 otherwise: one warp per (token, head, q|k), lanes stride
// over the D/2 pairs (the head read twice). The same per-pair expressions; the sum of squares is
// partitioned over the lanes differently (not bitwise v1).
#pragma once
#include <initializer_list>

#include "common.h"

namespace zimage::gpu {

// Host side of the choice: D / 32, the elements per lane, when v2 runs a call with these q, k,
// norm_q, norm_k (nullptr allowed) and freqs pointers; 0 when v1 does.
int qk_norm_rope_v2_lanes(DType dt, int64_t D, int64_t ld, std::initializer_list<const void*> ptrs,
                          const float* freqs);

// shape: B, L, H, D of q (and of k: as many key heads as query heads).
void qk_norm_rope(DevRows q, DevRows k, QkNorm norm, const float* freqs, AttentionShape shape, cudaStream_t stream);

}  // namespace zimage::gpu

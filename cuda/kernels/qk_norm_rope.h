// Per-head RMSNorm of q and k, then RoPE, in place.
// Twin: reference/nn/norms.h rms_norm over D (Attention norm_q / norm_k, eps 1e-5), then
//       reference/dit/rope.h apply_rotary_emb (interleaved adjacent pairs (x[2k], x[2k+1])),
//       as reference/dit/attention.h attention applies them.
// Shapes: q, k [B, L, H, D] as rows of a wider buffer with one row stride (q.ld == k.ld): token n's
// head h starts at n * ld + h * D (the fused to_qkv output has ld = 3C, q at column 0 and k at
// column C: q = qkv, k = qkv.from_col(C); weight_layout.h).
// norm_q, norm_k [D] (both nullptr when qk_norm is false: RoPE only), freqs [B, L, D/2, 2] fp32
// (cos, sin), n_tokens = B * L. fp32 math between norm and rotation (no intermediate rounding).
// Versions: v1 (only): one warp per (token, head, q|k); lanes stride over the D/2 pairs.
#pragma once
#include "common.h"

namespace zimage::gpu {

void qk_norm_rope(DevRows q, DevRows k, const void* norm_q, const void* norm_k, const float* freqs, int64_t n_tokens,
                  int64_t H, int64_t D, double eps, cudaStream_t stream);

}  // namespace zimage::gpu

// Qwen3's per-head RMSNorm of q and k, then RoPE in the half-split layout, in place.
// Twin: reference/text_encoder/qwen3_modules.h qwen3_attention's q_norm / k_norm (qwen3_rms_norm
//       over D, rms_norm_eps), then qwen3_apply_rotary_pos_emb (pairs (x[i], x[i + D/2]), rotate_half:
//       x1' = x1 c - x2 s, x2' = x2 c + x1 s). The DiT's interleaved pairs are kernels/qk_norm_rope.h.
// Shapes: q [B, L, H, D] and k [B, L, G, D] as rows of a wider buffer with one row stride
// ld = q.ld = k.ld: token n's query head h starts at q.data + n * ld + h * D, its key head g at
// k.data + n * ld + g * D (the fused Qwen3 qkv output: ld = (H + 2G) D, k = q.from_col(H D);
// qwen3_cuda.h). norm.q, norm.k [D]; cos_sin [L, D/2, 2] fp32 (cos, sin of position l = n mod L:
// Qwen3Model's positions arange(L), padding included).
// fp32 math from load to store: y = x * (1 / sqrt(mean(x^2) + eps)) * w, rotated, rounded once.
// Versions: v1 (only): one warp per (token, head), lanes stride over the D/2 pairs.
#pragma once
#include "common.h"

namespace zimage::gpu {

// q, k: one row stride (q.ld == k.ld), the kernel's dtype q.dt. shape: B, L, H query heads, D;
// kv_heads: G key heads. norm.q, norm.k: both required.
void qwen3_qk_norm_rope(DevRows q, DevRows k, QkNorm norm, const float* cos_sin, AttentionShape shape, int64_t kv_heads,
                        cudaStream_t stream);

}  // namespace zimage::gpu

// Gated residual with the post-norm folded in.
// Twin: reference/nn/norms.h rms_norm, then reference/dit/transformer_block.h add_gated
//       (ZImageTransformerBlock.forward: x + gate_msa * attention_norm2(attn),
//        x + gate_mlp * ffn_norm2(ffn); unmodulated blocks: gate 1).
// Shapes: x [B, L, C] updated in place (rows of x.ld), y [B, L, C] the branch output (rows of y.ld),
// weight [C], gate [B, gate.ld] whose first C values are the raw gate chunk g (the kernel uses
// tanh(g)); gate.data null: gate 1. shape = {B * L, L, C}. Every view in the kernel's dtype, x.dt.
// fp32 math: x = x + tanh(g) * (y * (1 / sqrt(mean(y^2) + eps)) * w), rounded once to storage.
// Versions: v2 (16-byte vectors, one per thread, y's row read once; when rows, weight and mod start
//           on 16 bytes and C is at most 1024 vectors), else v1 (one 256-thread block per row).
//           Both: fp32 block-reduced sum of squares, the same per-element expression.
#pragma once
#include "common.h"

namespace zimage::gpu {

void gated_residual(DevRows x, ConstDevRows y, const void* weight, ConstDevRows gate, RowShape shape, double eps,
                    cudaStream_t stream);

}  // namespace zimage::gpu

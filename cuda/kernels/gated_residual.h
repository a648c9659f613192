// Gated residual with the post-norm folded in.
// Twin: reference/nn/norms.h rms_norm, then reference/dit/transformer_block.h add_gated
//       (ZImageTransformerBlock.forward: x + gate_msa * attention_norm2(attn),
//        x + gate_mlp * ffn_norm2(ffn); unmodulated blocks: gate 1).
// Shapes: x [B, L, C] updated in place (rows of x.ld), y [B, L, C] the branch output (rows of y.ld),
// weight [C], gate [B, gate.ld] whose first C values are the raw gate chunk g (the kernel uses
// tanh(g)); gate.data null: gate 1. shape = {B * L, L, C}. Every view in the kernel's dtype, x.dt.
// fp32 math: x = x + tanh(g) * (y * (1 / sqrt(mean(y^2) + eps)) * w), rounded once to storage.
// Versions: v2 (16-byte vectors, one per thread, y's row read once, each block over up to 8
//           consecutive rows with the weight and tanh(g) made once per item, not per row: common.h
//           row_kernel_rows_per_block; when rows, weight and mod start on 16 bytes and C is at most
//           1024 vectors), else v1 (one 256-thread block per row). Both: fp32 block-reduced sum of
//           squares, the same per-element expression.
#pragma once
#include "common.h"

namespace zimage::gpu {

void gated_residual(DevRows x, ConstDevRows y, const void* weight, ConstDevRows gate, RowShape shape, double eps,
                    cudaStream_t stream);

// One RMSNorm of a row kernel: weight [C], eps, and the per-item operand `mod` (gate.ld / scale.ld
// as above; mod.data null: none).
struct RowNorm {
  const void* weight = nullptr;
  ConstDevRows mod;
  double eps = 0;
};

// gated_residual followed by rms_norm_modulate of the updated x, in one kernel (docs/cuda.md, "One
// block": the residual stream is read once, not twice, between two GEMMs):
//   x = x + tanh(post.mod) * RMSNorm(y) * post.weight        (gated_residual, post.eps)
//   h = RMSNorm(x) * next.weight * (1 + next.mod)            (rms_norm_modulate, next.eps)
// Twin: reference/dit/transformer_block.h add_gated, then rms_norm + mul_rows of the next norm
//       (ZImageTransformerBlock.forward: the gated attention residual and ffn_norm1 x scale_mlp;
//       the gated FFN residual and the next block's attention_norm1 x scale_msa).
// h must not overlap x (refused: rows_overlap in common.h). Versions: v2 only (the row kernels' v2 conditions for every operand): the
// same threads, vectors, block sums and per-element expressions as gated_residual_v2 followed by
// rms_norm_modulate_v2, so its x and h are bitwise theirs (Cuda/GatedResidualRmsNorm.*); when v2
// does not fit it calls the two kernels.
void gated_residual_rms_norm(DevRows x, ConstDevRows y, RowNorm post, RowNorm next, DevRows h, RowShape shape,
                             cudaStream_t stream);

}  // namespace zimage::gpu

// RMSNorm with the adaLN scale folded in.
// Twin: reference/nn/norms.h rms_norm, then reference/dit/transformer_block.h
//       mul_rows(h, 1 + scale) (ZImageTransformerBlock.forward: attention_norm1(x) * scale_msa,
//       ffn_norm1(x) * scale_mlp); with an empty scale view it is rms_norm alone (cap_embedder.0,
//       unmodulated context_refiner blocks; and reference/text_encoder/qwen3_modules.h
//       qwen3_rms_norm for Qwen3's input_layernorm, post_attention_layernorm: qwen3_cuda.h).
// Shapes (PyTorch order): x [B, L, C] (rows of x.ld), weight [C], scale [B, scale.ld] whose first C
// values are the raw scale chunk s (the kernel uses 1 + s; scale.data null: no modulation), y [B, L, C]
// (rows of y.ld). shape = {B * L, L, C}. Every view in the kernel's dtype, x.dt.
// fp32 math: y = x * (1 / sqrt(mean(x^2) + eps)) * w * (1 + s).
// Versions: v2 (when rows, weight and mod start on 16 bytes and C is at most 1024 16-byte
//           vectors: every Z-Image width): one thread per 16-byte vector, the row read once into
//           registers, each block over up to 8 consecutive rows (common.h
//           row_kernel_rows_per_block) with the weight and 1 + s made once per item, not per row;
//           v1 otherwise: one 256-thread block per row, two reads of the row. Both: fp32
//           block-reduced sum of squares, the same per-element expression.
#pragma once
#include "common.h"

namespace zimage::gpu {

void rms_norm_modulate(ConstDevRows x, const void* weight, ConstDevRows scale, RowShape shape, double eps, DevRows y,
                       cudaStream_t stream);

}  // namespace zimage::gpu

// Final LayerNorm (no affine) with the adaLN scale folded in.
// Twin: reference/nn/norms.h layer_norm(x, 1e-6), then the `h *= 1 + scale` loop of
//       reference/dit/final_layer.h final_layer (FinalLayer.forward: norm_final(x) * (1 + scale)).
// Shapes: x [B, L, C], scale [B, C] (the raw adaLN_modulation output s; the kernel uses 1 + s),
// y [B, L, C]; rows = B * L, rows_per_batch = L. fp32 math, biased variance from a second pass
// over (x - mean): y = (x - mean) * (1 / sqrt(var + eps)) * (1 + s).
// Versions: v1 (only): one 256-thread block per row, two block reductions.
#pragma once
#include "common.h"

namespace zimage::gpu {

void final_layer_norm(DType dt, const void* x, const void* scale, int64_t rows, int64_t rows_per_batch, int64_t C,
                      double eps, void* y, cudaStream_t stream);

}  // namespace zimage::gpu

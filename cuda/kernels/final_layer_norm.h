// Final LayerNorm (no affine) with the adaLN scale folded in.
// Twin: reference/nn/norms.h layer_norm(x, 1e-6), then the `h *= 1 + scale` loop of
//       reference/dit/final_layer.h final_layer (FinalLayer.forward: norm_final(x) * (1 + scale)).
// Shapes (RowShape {rows = B * L, rows_per_batch = L, cols = C}): x, y: B * L rows of C values;
// scale: B rows of C values (the raw adaLN_modulation output s; the kernel uses 1 + s). Each view
// has its own row stride, and all three hold the kernel's dtype (x's). fp32 math, biased variance
// from a second pass over (x - mean): y = (x - mean) * (1 / sqrt(var + eps)) * (1 + s).
// Versions: v1 (only): one 256-thread block per row, two block reductions.
#pragma once
#include "common.h"

namespace zimage::gpu {

void final_layer_norm(ConstDevRows x, ConstDevRows scale, RowShape shape, double eps, DevRows y, cudaStream_t stream);

}  // namespace zimage::gpu

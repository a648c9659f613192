// Row softmax of scaled scores (the VAE mid-block attention as GEMM, softmax, GEMM: vae_cuda.cpp).
// Twin: reference/nn/softmax.h masked_softmax_row with every key allowed, on S * scale, as
//       reference/vae/layers.cpp vae_attention applies it (S = q k^T, then S *= scale).
// Shapes: s [R, L] (rows of s.ld, in s.dt), in place: p = exp(s * scale - max) / sum, fp32 math, one
// rounding to the storage dtype.
// Versions: v1 (only): one 256-thread block per row, three passes over the row (max, sum, write).
#pragma once
#include "common.h"

namespace zimage::gpu {

void softmax_rows(DevRows s, int64_t R, int64_t L, float scale, cudaStream_t stream);

}  // namespace zimage::gpu

// Batched 2-D transpose: NCHW <-> NHWC at the VAE's boundaries and V -> V^T for its attention.
// Twin: the [B, C, L] <-> [B, L, C] transposes of reference/vae/layers.cpp vae_attention (Eigen
//       transpose()); a copy, exact in every dtype.
// Shapes: x [B, R, Cols] contiguous -> y [B, Cols, R] contiguous.
// Versions: v1 (only): 32 x 32 tiles through shared memory (coalesced reads and writes).
#pragma once
#include "common.h"

namespace zimage::gpu {

void transpose_batched(DType dt, const void* x, void* y, int64_t B, int64_t R, int64_t Cols, cudaStream_t stream);

}  // namespace zimage::gpu

// Nearest-neighbour upsampling of an NHWC image by an integer factor: Upsample2D's interpolation
// materialized, for the convolution versions that cannot read through it (conv_cudnn.h; the im2col
// version fuses it into its gather, Im2colGeom::up).
// Twin: reference/vae/layers.h upsample_2d's F.interpolate(scale_factor=2, mode="nearest"), i.e.
//       the reference conv2d's ConvGeom::upsample read: out (oy, ox) = in (oy / up, ox / up).
// Shapes: x [B, H, W, C] -> y [B, H * up, W * up, C]; a copy, exact in every dtype.
// Versions: v1 (only): a grid-stride loop over the output in 16-byte units when a pixel's row is a
// multiple of 16 bytes (4-byte or 2-byte units otherwise).
#pragma once
#include "common.h"

namespace zimage::gpu {

void upsample_nearest_nhwc(DType dt, const void* x, int64_t B, int64_t H, int64_t W, int64_t C, int up, void* y,
                           cudaStream_t stream);

}  // namespace zimage::gpu

// GroupNorm over an NHWC tensor, optionally followed by SiLU.
// Twin: reference/vae/layers.h group_norm (torch.nn.GroupNorm: biased variance over C/G channels
//       x all pixels, y = (x - mean) / sqrt(var + eps) * weight[c] + bias[c]) and silu_.
// Shapes: x, y [B, P, C] (P pixels, NHWC rows); weight, bias [C]; G divides C. y must not overlap
// x (the kernels take __restrict__ pointers).
// Statistics in two passes (mean, then the mean of squared deviations, as the reference's blocked
// sums): each pass sums fixed chunks of kPixelsPerChunk pixels in fp32 per (b, g, chunk), then the
// chunk sums are added in double in chunk order (deterministic: no atomics). `scratch` holds
// B * G * chunks doubles (grown as needed) plus 2 B G statistics.
// Versions: v1 (only), its index arithmetic 32-bit where the sizes allow (the chunk sums always,
// the apply pass below 2^32 elements): the same values, in the same order, as with 64-bit indices.
#pragma once
#include "common.h"
#include "device_tensor.h"

namespace zimage::gpu {

// B items of P pixels (NHWC rows) of C channels in G groups.
struct GroupNormShape {
  int64_t B = 0, P = 0, C = 0, G = 0;
};
void group_norm_nhwc(DType dt, const void* x, void* y, GroupNormShape shape, const void* weight, const void* bias,
                     double eps, bool silu, DeviceBuffer& scratch, cudaStream_t stream);

}  // namespace zimage::gpu

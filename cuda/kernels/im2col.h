// im2col of an NHWC image for convolutions as GEMMs (the VAE on the GPU, vae_cuda.h).
// Twin: reference/vae/layers.cpp conv2d's im2col bands (torch.nn.Conv2d.forward: cross-correlation,
//       zero padding, stride, dilation 1), with Upsample2D's nearest x2 fused into the gather as in
//       the reference's ConvGeom::upsample.
// Shapes: x [B, H, W, C] (NHWC); output pixel q = (b * Ho + oy) * Wo + ox for q in [q0, q0 + P);
// out [P, kh * kw * C] row-major with column (dy * kw + dx) * C + c = the input value at
// (iy, ix) = (oy * stride + dy - pad_top, ox * stride + dx - pad_left) of the (virtually upsampled,
// H * up x W * up) image, read at (iy / up, ix / up); 0 outside. The conv weight is uploaded
// permuted to [C_out, kh, kw, C] to match (vae_cuda.cpp). A copy: exact in every dtype.
// Versions, chosen per call: v2 when C is a multiple of E = 16 / sizeof(T) (bf16: 8, fp32: 4), x and
// out are 16-byte aligned and the sizes fit 32-bit indices (kernels/im2col_map.h): one thread per
// 16-byte vector of E channels, 32-bit index arithmetic once per vector. v1 otherwise (the encoder's
// 3-channel conv_in): one thread per output element, consecutive threads along c (coalesced), 64-bit
// index arithmetic.
#pragma once
#include "common.h"

namespace zimage::gpu {

struct Im2colGeom {
  int kh = 3, kw = 3, stride = 1, pad_top = 1, pad_left = 1, pad_bottom = 1, pad_right = 1, up = 1;
  int64_t out_h(int64_t H) const { return (H * up + pad_top + pad_bottom - kh) / stride + 1; }
  int64_t out_w(int64_t W) const { return (W * up + pad_left + pad_right - kw) / stride + 1; }
};

void im2col_nhwc(DType dt, const void* x, int64_t B, int64_t H, int64_t W, int64_t C, const Im2colGeom& g, int64_t q0,
                 int64_t P, void* out, cudaStream_t stream);

// Host side of the choice: E, the elements of a 16-byte vector, when v2 runs this call; 0 when v1 does.
int im2col_nhwc_v2_elems(DType dt, int64_t B, int64_t H, int64_t W, int64_t C, const Im2colGeom& g, int64_t q0,
                         int64_t P, const void* x, const void* out);

}  // namespace zimage::gpu

// The index map of im2col_nhwc v2 (kernels/im2col.h), one function that both the kernel and its
// host test run (tests/cuda/test_cuda_vae.cpp, Im2colNhwc.VectorMapIsTheDefinition, in CI), so the
// test checks the arithmetic the device executes.
// Twin: reference/vae/layers.cpp conv2d's im2col bands, the gather kernels/im2col.h documents.
// v2 copies whole 16-byte vectors: E = 16 / sizeof(T) consecutive channels of one pixel (C a
// multiple of E, both pointers 16-byte aligned). Output vector v of the band is elements
// [v E, v E + E) of out [P, kh * kw * C], i.e. row p = v / (kh kw C/E), tap (dy, dx) and channel
// group cv within it; its source is vector cv of input pixel (b, iy / up, ix / up) of x [B, H, W, C]
// (index in vectors), or none (a zero vector) in the padding. All index arithmetic is 32-bit (v1
// does twelve 64-bit divisions and remainders per element): im2col_vec_map refuses sizes that do not
// fit, and the call falls back to v1.
#pragma once
#include <cstdint>
#include <optional>

#include "common.h"

namespace zimage::gpu {

struct Im2colGeom;

struct Im2colVecMap {
  uint32_t H = 0, W = 0, Cv = 0;    // input image, channels in vectors
  uint32_t kw = 0, taps_cv = 0;     // kernel width; kh * kw * Cv vectors a row of out
  uint32_t Wo = 0, HoWo = 0;        // output image
  uint32_t stride = 1, up = 1;      // conv stride; nearest upsampling factor read through
  uint32_t pad_top = 0, pad_left = 0;
  uint32_t Hup = 0, Wup = 0;        // H * up, W * up
  uint32_t q0 = 0;                  // the band's first output pixel

  // The input vector output vector v copies, or -1 for a zero vector (padding).
  __host__ __device__ int64_t source(uint32_t v) const {
    const uint32_t p = v / taps_cv, r = v - p * taps_cv;
    const uint32_t tap = r / Cv, cv = r - tap * Cv;
    const uint32_t dy = tap / kw, dx = tap - dy * kw;
    const uint32_t q = q0 + p, b = q / HoWo, rem = q - b * HoWo, oy = rem / Wo, ox = rem - oy * Wo;
    // Padded coordinates: iy + pad_top, so that "iy < 0" is "below pad_top" in unsigned arithmetic.
    const uint32_t iy_p = oy * stride + dy, ix_p = ox * stride + dx;
    if (iy_p < pad_top || ix_p < pad_left) return -1;
    const uint32_t iy = iy_p - pad_top, ix = ix_p - pad_left;
    if (iy >= Hup || ix >= Wup) return -1;
    return ((int64_t(b) * H + iy / up) * W + ix / up) * Cv + cv;
  }
};

// The map of one im2col_nhwc call with `vec` elements a vector (C % vec == 0), or nullopt when a
// size does not fit 32-bit arithmetic: the band's vectors P kh kw C / vec (below 2^31, so that a
// grid-stride loop never wraps), the output pixels B Ho Wo, and the padded coordinates
// (Ho - 1) stride + kh, (Wo - 1) stride + kw. Host only.
std::optional<Im2colVecMap> im2col_vec_map(int64_t B, int64_t H, int64_t W, int64_t C, int64_t vec,
                                           const Im2colGeom& g, int64_t q0, int64_t P);

}  // namespace zimage::gpu

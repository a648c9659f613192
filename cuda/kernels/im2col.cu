#include "kernels/device_common.cuh"
#include "kernels/im2col.h"

namespace zimage::gpu {
namespace {

template <class T>
__global__ void im2col_nhwc_v1(const T* __restrict__ x, int64_t H, int64_t W, int64_t C, Im2colGeom g, int64_t Ho,
                               int64_t Wo, int64_t q0, int64_t P, T* __restrict__ out) {
  const int64_t K = int64_t(g.kh) * g.kw * C, n = P * K;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = e / K, k = e % K;
    const int64_t c = k % C, tap = k / C, dy = tap / g.kw, dx = tap % g.kw;
    const int64_t q = q0 + p, ox = q % Wo, oy = (q / Wo) % Ho, b = q / (Wo * Ho);
    const int64_t iy = oy * g.stride + dy - g.pad_top, ix = ox * g.stride + dx - g.pad_left;
    T v = from_f32<T>(0.f);
    if (iy >= 0 && iy < H * g.up && ix >= 0 && ix < W * g.up)
      v = x[((b * H + iy / g.up) * W + ix / g.up) * C + c];
    out[e] = v;
  }
}

}  // namespace

void im2col_nhwc(DType dt, const void* x, int64_t B, int64_t H, int64_t W, int64_t C, const Im2colGeom& g, int64_t q0,
                 int64_t P, void* out, cudaStream_t stream) {
  const int64_t Ho = g.out_h(H), Wo = g.out_w(W);
  ZIMAGE_CHECK(Ho > 0 && Wo > 0 && q0 >= 0 && P >= 0 && q0 + P <= B * Ho * Wo && g.up >= 1 && g.stride >= 1,
               "im2col_nhwc: bad geometry");
  if (P == 0) return;
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    im2col_nhwc_v1<T><<<grid_for(P * g.kh * g.kw * C, 256), 256, 0, stream>>>(static_cast<const T*>(x), H, W, C, g, Ho,
                                                                             Wo, q0, P, static_cast<T*>(out));
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("im2col_nhwc_v1");
}

}  // namespace zimage::gpu

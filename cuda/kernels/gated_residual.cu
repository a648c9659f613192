#include "kernels/device_common.cuh"
#include "kernels/gated_residual.h"

namespace zimage::gpu {
namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void __launch_bounds__(kThreads)
    gated_residual_v1(T* __restrict__ x, int64_t ldx, const T* __restrict__ y, int64_t ldy, const T* __restrict__ w,
                      const T* __restrict__ mod, int64_t ld_mod, int64_t rows_per_batch, int C, float eps) {
  const int64_t r = blockIdx.x;
  T* xr = x + r * ldx;
  const T* yr = y + r * ldy;
  const T* g = mod ? mod + (r / rows_per_batch) * ld_mod : nullptr;
  float ss = 0.f;
  for (int c = threadIdx.x; c < C; c += kThreads) {
    const float v = to_f32(yr[c]);
    ss += v * v;
  }
  ss = block_sum(ss);
  const float inv = 1.0f / sqrtf(ss / float(C) + eps);
  for (int c = threadIdx.x; c < C; c += kThreads) {
    const float n = to_f32(yr[c]) * inv * to_f32(w[c]);
    const float gate = g ? tanhf(to_f32(g[c])) : 1.0f;
    xr[c] = from_f32<T>(to_f32(xr[c]) + gate * n);
  }
}

}  // namespace

void gated_residual(DType dt, void* x, int64_t ldx, const void* y, int64_t ldy, const void* weight, const void* mod,
                    int64_t ld_mod, int64_t rows, int64_t rows_per_batch, int64_t C, double eps, cudaStream_t stream) {
  if (rows == 0) return;
  ZIMAGE_CHECK(rows_per_batch > 0 && rows % rows_per_batch == 0 && C > 0 && rows <= 0x7fffffff,
               "gated_residual: bad shape");
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    gated_residual_v1<T><<<unsigned(rows), kThreads, 0, stream>>>(
        static_cast<T*>(x), ldx, static_cast<const T*>(y), ldy, static_cast<const T*>(weight),
        static_cast<const T*>(mod), ld_mod, rows_per_batch, int(C), float(eps));
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("gated_residual_v1");
}

}  // namespace zimage::gpu

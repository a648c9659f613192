#include "kernels/device_common.cuh"
#include "kernels/rms_norm_modulate.h"

namespace zimage::gpu {
namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void __launch_bounds__(kThreads)
    rms_norm_modulate_v1(const T* __restrict__ x, int64_t ldx, const T* __restrict__ w, const T* __restrict__ mod,
                         int64_t ld_mod, int64_t rows_per_batch, int C, float eps, T* __restrict__ y, int64_t ldy) {
  const int64_t r = blockIdx.x;
  const T* xr = x + r * ldx;
  T* yr = y + r * ldy;
  const T* s = mod ? mod + (r / rows_per_batch) * ld_mod : nullptr;
  float ss = 0.f;
  for (int c = threadIdx.x; c < C; c += kThreads) {
    const float v = to_f32(xr[c]);
    ss += v * v;
  }
  ss = block_sum(ss);
  const float inv = 1.0f / sqrtf(ss / float(C) + eps);
  for (int c = threadIdx.x; c < C; c += kThreads) {
    float v = to_f32(xr[c]) * inv * to_f32(w[c]);
    if (s) v *= 1.0f + to_f32(s[c]);
    yr[c] = from_f32<T>(v);
  }
}

}  // namespace

void rms_norm_modulate(DType dt, const void* x, int64_t ldx, const void* weight, const void* mod, int64_t ld_mod,
                       int64_t rows, int64_t rows_per_batch, int64_t C, double eps, void* y, int64_t ldy,
                       cudaStream_t stream) {
  if (rows == 0) return;
  ZIMAGE_CHECK(rows_per_batch > 0 && rows % rows_per_batch == 0 && C > 0 && rows <= 0x7fffffff,
               "rms_norm_modulate: bad shape");
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    rms_norm_modulate_v1<T><<<unsigned(rows), kThreads, 0, stream>>>(
        static_cast<const T*>(x), ldx, static_cast<const T*>(weight), static_cast<const T*>(mod), ld_mod,
        rows_per_batch, int(C), float(eps), static_cast<T*>(y), ldy);
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("rms_norm_modulate_v1");
}

}  // namespace zimage::gpu

#include "kernels/device_common.cuh"
#include "kernels/final_layer_norm.h"

namespace zimage::gpu {
namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void __launch_bounds__(kThreads) final_layer_norm_v1(const T* __restrict__ x, const T* __restrict__ scale,
                                                                int64_t rows_per_batch, int C, float eps,
                                                                T* __restrict__ y) {
  const int64_t r = blockIdx.x;
  const T* xr = x + r * C;
  T* yr = y + r * C;
  const T* s = scale + (r / rows_per_batch) * C;
  float sum = 0.f;
  for (int c = threadIdx.x; c < C; c += kThreads) sum += to_f32(xr[c]);
  const float mean = block_sum(sum) / float(C);
  float var = 0.f;
  for (int c = threadIdx.x; c < C; c += kThreads) {
    const float d = to_f32(xr[c]) - mean;
    var += d * d;
  }
  var = block_sum(var) / float(C);
  const float inv = 1.0f / sqrtf(var + eps);
  for (int c = threadIdx.x; c < C; c += kThreads) yr[c] = from_f32<T>((to_f32(xr[c]) - mean) * inv * (1.0f + to_f32(s[c])));
}

}  // namespace

void final_layer_norm(DType dt, const void* x, const void* scale, int64_t rows, int64_t rows_per_batch, int64_t C,
                      double eps, void* y, cudaStream_t stream) {
  if (rows == 0) return;
  ZIMAGE_CHECK(rows_per_batch > 0 && rows % rows_per_batch == 0 && C > 0 && rows <= 0x7fffffff,
               "final_layer_norm: bad shape");
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    final_layer_norm_v1<T><<<unsigned(rows), kThreads, 0, stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(scale), rows_per_batch, int(C), float(eps), static_cast<T*>(y));
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("final_layer_norm_v1");
}

}  // namespace zimage::gpu

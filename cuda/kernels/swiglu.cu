#include "kernels/device_common.cuh"
#include "kernels/swiglu.h"

namespace zimage::gpu {
namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void swiglu_v1(const T* __restrict__ h13, int64_t N, int64_t F, T* __restrict__ out) {
  const int64_t total = N * F;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / F, f = i % F;
    const float a = to_f32(h13[n * 2 * F + f]), b = to_f32(h13[n * 2 * F + F + f]);
    out[i] = from_f32<T>(a / (1.0f + expf(-a)) * b);
  }
}

template <class T>
__global__ void silu_v1(const T* x, T* y, int64_t n) {  // no __restrict__: x == y is allowed
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float a = to_f32(x[i]);
    y[i] = from_f32<T>(a / (1.0f + expf(-a)));
  }
}

}  // namespace

void swiglu(DType dt, const void* h13, int64_t N, int64_t F, void* out, cudaStream_t stream) {
  if (N * F == 0) return;
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    swiglu_v1<T><<<grid_for(N * F, kThreads), kThreads, 0, stream>>>(static_cast<const T*>(h13), N, F,
                                                                      static_cast<T*>(out));
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("swiglu_v1");
}

void silu(DType dt, const void* x, void* y, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    silu_v1<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y), n);
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("silu_v1");
}

}  // namespace zimage::gpu

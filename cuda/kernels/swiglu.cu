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

// 16-byte vectors: kVec elements of h1 and of h3 per thread, one 16-byte store. The per-element math
// is v1's (the same bits); only the loads, stores and indexing change: rows on the grid's y axis
// (grid-stride when N > 65535), 32-bit column indices (F < 2^31).
template <class T>
__global__ void __launch_bounds__(256) swiglu_v2(const T* __restrict__ h13, int64_t N, int F, T* __restrict__ out) {
  constexpr int kVec = 16 / sizeof(T);
  const int64_t f64 = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * kVec;
  if (f64 >= F) return;
  const int f = int(f64);
  for (int64_t n = blockIdx.y; n < N; n += gridDim.y) {
    const T* a_row = h13 + n * 2 * int64_t(F);
    alignas(16) T a[kVec], b[kVec], o[kVec];
    *reinterpret_cast<uint4*>(a) = *reinterpret_cast<const uint4*>(a_row + f);
    *reinterpret_cast<uint4*>(b) = *reinterpret_cast<const uint4*>(a_row + F + f);
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      const float x = to_f32(a[i]), y = to_f32(b[i]);
      o[i] = from_f32<T>(x / (1.0f + expf(-x)) * y);
    }
    *reinterpret_cast<uint4*>(out + n * int64_t(F) + f) = *reinterpret_cast<const uint4*>(o);
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
  const size_t vec_bytes = 16;
  const bool aligned = reinterpret_cast<uintptr_t>(h13) % vec_bytes == 0 && reinterpret_cast<uintptr_t>(out) % vec_bytes == 0;
  if (aligned && (F * int64_t(dtype_size(dt))) % int64_t(vec_bytes) == 0 && F < 0x7fffffff) {
    ZIMAGE_DISPATCH_STORAGE(dt, T, {
      constexpr int kVec = 16 / sizeof(T);
      const int64_t per_row = (F / kVec + kThreads - 1) / kThreads;
      const dim3 grid(unsigned(per_row), unsigned(N < 65535 ? N : 65535));
      swiglu_v2<T><<<grid, kThreads, 0, stream>>>(static_cast<const T*>(h13), N, int(F), static_cast<T*>(out));
    });
    ZIMAGE_CUDA_CHECK_LAUNCH("swiglu_v2");
    return;
  }
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

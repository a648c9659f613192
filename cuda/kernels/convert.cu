#include "kernels/convert.h"
#include "kernels/device_common.cuh"

namespace zimage::gpu {
namespace {

template <class T>
__global__ void from_f32_v1(const float* __restrict__ src, T* __restrict__ dst, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = from_f32<T>(src[i]);
}

template <class T>
__global__ void to_f32_v1(const T* __restrict__ src, float* __restrict__ dst, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = to_f32(src[i]);
}

}  // namespace

// fp16 conversions are built here (and only here) so tests can round values to fp16 on the device.
#define ZIMAGE_DISPATCH_ALL(dt, T, ...)          \
  do {                                           \
    if ((dt) == DType::F16) {                    \
      using T = __half;                          \
      __VA_ARGS__;                               \
    } else {                                     \
      ZIMAGE_DISPATCH_STORAGE(dt, T, __VA_ARGS__); \
    }                                            \
  } while (0)

void convert_from_f32(DType dt, const float* src, void* dst, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  ZIMAGE_DISPATCH_ALL(dt, T, {
    from_f32_v1<T><<<grid_for(n, 256), 256, 0, stream>>>(src, static_cast<T*>(dst), n);
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("convert_from_f32");
}

void convert_to_f32(DType dt, const void* src, float* dst, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  ZIMAGE_DISPATCH_ALL(dt, T, { to_f32_v1<T><<<grid_for(n, 256), 256, 0, stream>>>(static_cast<const T*>(src), dst, n); });
  ZIMAGE_CUDA_CHECK_LAUNCH("convert_to_f32");
}

}  // namespace zimage::gpu

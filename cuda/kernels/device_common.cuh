// Device-side helpers shared by the kernels (included by .cu files only):
// storage <-> fp32 conversion, warp and block sums, the storage dispatch.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>

#include "common.h"

namespace zimage::gpu {

template <class T>
__device__ __forceinline__ float to_f32(T v);
template <>
__device__ __forceinline__ float to_f32<float>(float v) { return v; }
template <>
__device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <>
__device__ __forceinline__ float to_f32<__half>(__half v) { return __half2float(v); }

template <class T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024), returned to
// every thread. Fixed reduction order: deterministic. Safe to call repeatedly
// in one kernel (the result is read before the next call can overwrite it).
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float warp_part[32];
  __shared__ float total;
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  if (lane == 0) warp_part[wid] = v;
  __syncthreads();
  if (wid == 0) {
    const int nw = int(blockDim.x + 31) >> 5;
    float s = lane < nw ? warp_part[lane] : 0.f;
    s = warp_sum(s);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}

// Host side of the row kernels (rms_norm_modulate, gated_residual): v2 runs when every row of x, y and mod and the weight start on 16 bytes and C is a whole number
// of 16-byte vectors, at most 1024 of them.
inline bool row_kernel_v2_fits(DType dt, int64_t C, std::initializer_list<const void*> ptrs,
                        std::initializer_list<int64_t> strides) {
  const int64_t es = int64_t(dtype_size(dt)), V = 16 / es;
  if (C % V != 0 || C / V > 1024) return false;
  for (const void* p : ptrs)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  for (int64_t ld : strides)
    if ((ld * es) % 16 != 0) return false;
  return true;
}

// Grid size for a grid-stride loop over n elements with `threads` per block.
inline unsigned grid_for(int64_t n, int threads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return unsigned(blocks < 1 ? 1 : (blocks > 65535 * 8 ? 65535 * 8 : blocks));
}

}  // namespace zimage::gpu

// Runs the statement with T bound to the storage type of `dt`. The kernels are
// instantiated for float32 and bfloat16 only (float16 is refused: docs/cuda.md).
#define ZIMAGE_DISPATCH_STORAGE(dt, T, ...)                                                              \
  do {                                                                                                   \
    switch (dt) {                                                                                        \
      case ::zimage::gpu::DType::F32: {                                                                  \
        using T = float;                                                                                 \
        __VA_ARGS__;                                                                                     \
        break;                                                                                           \
      }                                                                                                  \
      case ::zimage::gpu::DType::BF16: {                                                                 \
        using T = __nv_bfloat16;                                                                         \
        __VA_ARGS__;                                                                                     \
        break;                                                                                           \
      }                                                                                                  \
      default:                                                                                           \
        throw ::zimage::Error("CUDA kernels are built for float32 and bfloat16 storage only, not " +     \
                              std::string(::zimage::gpu::dtype_name(dt)) + " (docs/cuda.md: fp16 policy)"); \
    }                                                                                                    \
  } while (0)

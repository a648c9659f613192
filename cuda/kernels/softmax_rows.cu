#include "kernels/device_common.cuh"
#include "kernels/softmax_rows.h"

namespace zimage::gpu {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float block_max(float v) {
  __shared__ float warp_part[32];
  __shared__ float total;
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  if (lane == 0) warp_part[wid] = v;
  __syncthreads();
  if (wid == 0) {
    float m = lane < int(blockDim.x >> 5) ? warp_part[lane] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    if (lane == 0) total = m;
  }
  __syncthreads();
  return total;
}

template <class T>
__global__ void __launch_bounds__(kThreads) softmax_rows_v1(T* __restrict__ s, int64_t lds, int64_t L, float scale) {
  T* row = s + int64_t(blockIdx.x) * lds;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < L; j += kThreads) m = fmaxf(m, to_f32(row[j]) * scale);
  m = block_max(m);
  float sum = 0.f;
  for (int64_t j = threadIdx.x; j < L; j += kThreads) sum += expf(to_f32(row[j]) * scale - m);
  sum = block_sum(sum);
  const float inv = 1.0f / sum;
  for (int64_t j = threadIdx.x; j < L; j += kThreads) row[j] = from_f32<T>(expf(to_f32(row[j]) * scale - m) * inv);
}

}  // namespace

void softmax_rows(DevRows sv, int64_t R, int64_t L, float scale, cudaStream_t stream) {
  const DType dt = sv.dt;
  void* s = sv.data;
  const int64_t lds = sv.ld;
  if (R == 0 || L == 0) return;
  ZIMAGE_CHECK(R <= 0x7fffffff && lds >= L, "softmax_rows: bad shape");
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    softmax_rows_v1<T><<<unsigned(R), kThreads, 0, stream>>>(static_cast<T*>(s), lds, L, scale);
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("softmax_rows_v1");
}

}  // namespace zimage::gpu

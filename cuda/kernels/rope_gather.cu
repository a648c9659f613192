#include <cmath>
#include <string>

#include "kernels/device_common.cuh"
#include "kernels/rope_gather.h"

namespace zimage::gpu {
namespace {

__global__ void rope_gather_v1(const float* __restrict__ tables, RopeAxes axes, const int32_t* __restrict__ ids, int64_t N,
                               float* __restrict__ freqs, int* error_flag) {
  const int P = axes.pairs[0] + axes.pairs[1] + axes.pairs[2];
  const int64_t total = N * P;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / P;
    int pair = int(i % P), a = 0;
    while (a < axes.n_axes - 1 && pair >= axes.pairs[a]) pair -= axes.pairs[a++];
    const int32_t pos = ids[n * 3 + a];
    float c = NAN, s = NAN;
    if (pos >= 0 && pos < axes.len[a]) {
      const float* row = tables + axes.offset[a] + (int64_t(pos) * axes.pairs[a] + pair) * 2;
      c = row[0];
      s = row[1];
    } else {
      atomicExch(error_flag, 1);
    }
    freqs[i * 2] = c;
    freqs[i * 2 + 1] = s;
  }
}

}  // namespace

void rope_gather_async(const float* tables, const RopeAxes& axes, const int32_t* ids, int64_t N, float* freqs,
                       int* error_flag, cudaStream_t stream) {
  if (N == 0) return;
  ZIMAGE_CHECK(axes.n_axes >= 1 && axes.n_axes <= 3, "rope_gather: 1 to 3 axes");
  rope_gather_v1<<<grid_for(N * axes.total_pairs(), 256), 256, 0, stream>>>(tables, axes, ids, N, freqs, error_flag);
  ZIMAGE_CUDA_CHECK_LAUNCH("rope_gather_v1");
}

void rope_gather(const float* tables, const RopeAxes& axes, const std::vector<int32_t>& ids, int32_t* ids_dev,
                 float* freqs, int* error_flag, cudaStream_t stream) {
  const int64_t N = int64_t(ids.size()) / 3;
  for (int64_t n = 0; n < N; ++n)
    for (int a = 0; a < axes.n_axes; ++a) {
      const int64_t pos = ids[size_t(n * 3 + a)];
      ZIMAGE_CHECK(pos >= 0 && pos < axes.len[a],
                   "rope_embedder: position " + std::to_string(pos) + " on axis " + std::to_string(a) +
                       " is outside the RoPE table of " + std::to_string(axes.len[a]) + " rows (axes_lens[" +
                       std::to_string(a) + "])");
    }
  if (N == 0) return;
  ZIMAGE_CUDA_CHECK(cudaMemsetAsync(error_flag, 0, sizeof(int), stream));
  ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(ids_dev, ids.data(), ids.size() * sizeof(int32_t), cudaMemcpyHostToDevice, stream));
  rope_gather_async(tables, axes, ids_dev, N, freqs, error_flag, stream);
  int flag = 0;
  ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(&flag, error_flag, sizeof(int), cudaMemcpyDeviceToHost, stream));
  ZIMAGE_CUDA_CHECK(cudaStreamSynchronize(stream));
  ZIMAGE_CHECK(flag == 0, "rope_gather: a position outside its RoPE table reached the device (kernel guard)");
}

}  // namespace zimage::gpu

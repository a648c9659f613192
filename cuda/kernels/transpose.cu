#include <algorithm>

#include "kernels/device_common.cuh"
#include "kernels/transpose.h"

namespace zimage::gpu {
namespace {

constexpr int kTile = 32, kRowsPerPass = 8;

template <class T>
__global__ void transpose_v1(const T* __restrict__ x, T* __restrict__ y, int64_t R, int64_t Cols) {
  __shared__ T tile[kTile][kTile + 1];
  const int64_t b = blockIdx.z, r0 = int64_t(blockIdx.x) * kTile;
  const T* xb = x + b * R * Cols;
  T* yb = y + b * R * Cols;
  // Column tiles grid-stride on y (an image of more than 65535 x 32 pixels has more tiles than
  // gridDim.y holds); c0 depends on the block only, so every thread takes the same passes.
  for (int64_t c0 = int64_t(blockIdx.y) * kTile; c0 < Cols; c0 += int64_t(gridDim.y) * kTile) {
    for (int i = threadIdx.y; i < kTile; i += kRowsPerPass) {
      const int64_t r = r0 + i, c = c0 + threadIdx.x;
      if (r < R && c < Cols) tile[i][threadIdx.x] = xb[r * Cols + c];
    }
    __syncthreads();
    for (int i = threadIdx.y; i < kTile; i += kRowsPerPass) {
      const int64_t c = c0 + i, r = r0 + threadIdx.x;
      if (r < R && c < Cols) yb[c * R + r] = tile[threadIdx.x][i];
    }
    __syncthreads();  // the tile is read before the next pass writes it
  }
}

}  // namespace

void transpose_batched(DType dt, const void* x, void* y, int64_t B, int64_t R, int64_t Cols, cudaStream_t stream) {
  if (B == 0 || R == 0 || Cols == 0) return;
  // Row tiles on x (up to 2^31 - 1: any image), column tiles on y (at most 65535 blocks, each
  // striding over the column tiles: any image; upload_nchw's Cols is H x W).
  const int64_t gx = (R + kTile - 1) / kTile, gy = std::min<int64_t>((Cols + kTile - 1) / kTile, 65535);
  ZIMAGE_CHECK(gx <= 0x7fffffff && B <= 65535, "transpose_batched: too large (" + std::to_string(B) + " x " +
                                                   std::to_string(R) + " x " + std::to_string(Cols) + ")");
  const dim3 grid{unsigned(gx), unsigned(gy), unsigned(B)}, block{unsigned(kTile), unsigned(kRowsPerPass), 1u};
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    transpose_v1<T><<<grid, block, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y), R, Cols);
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("transpose_v1");
}

}  // namespace zimage::gpu

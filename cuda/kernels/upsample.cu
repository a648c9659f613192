#include "kernels/device_common.cuh"
#include "kernels/upsample.h"

namespace zimage::gpu {
namespace {

// U: the copy unit (uint4, uint32_t or uint16_t); `units` of them make one pixel's channels.
template <class U>
__global__ void upsample_nearest_v1(const U* __restrict__ x, U* __restrict__ y, int64_t B, int64_t H, int64_t W,
                                    int64_t units, int up) {
  const int64_t Ho = H * up, Wo = W * up, n = B * Ho * Wo * units;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t p = i / units;
    const int64_t u = i - p * units, ox = p % Wo;
    p /= Wo;
    const int64_t oy = p % Ho, b = p / Ho;
    y[i] = x[((b * H + oy / up) * W + ox / up) * units + u];
  }
}

template <class U>
void launch(const void* x, void* y, int64_t B, int64_t H, int64_t W, int64_t row_bytes, int up, cudaStream_t stream) {
  const int64_t units = row_bytes / int64_t(sizeof(U)), n = B * H * up * W * up * units;
  upsample_nearest_v1<U><<<grid_for(n, 256), 256, 0, stream>>>(static_cast<const U*>(x), static_cast<U*>(y), B, H, W,
                                                                units, up);
}

}  // namespace

void upsample_nearest_nhwc(DType dt, const void* x, int64_t B, int64_t H, int64_t W, int64_t C, int up, void* y,
                           cudaStream_t stream) {
  ZIMAGE_CHECK(B >= 0 && H >= 0 && W >= 0 && C >= 0 && up >= 1,
               "upsample_nearest_nhwc: bad shape B " + std::to_string(B) + ", H " + std::to_string(H) + ", W " +
                   std::to_string(W) + ", C " + std::to_string(C) + ", up " + std::to_string(up));
  if (B * H * W * C == 0) return;
  const int64_t row = C * int64_t(dtype_size(dt));
  const bool aligned16 = reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(y) % 16 == 0;
  const bool aligned4 = reinterpret_cast<uintptr_t>(x) % 4 == 0 && reinterpret_cast<uintptr_t>(y) % 4 == 0;
  if (row % 16 == 0 && aligned16) launch<uint4>(x, y, B, H, W, row, up, stream);
  else if (row % 4 == 0 && aligned4) launch<uint32_t>(x, y, B, H, W, row, up, stream);
  else launch<uint16_t>(x, y, B, H, W, row, up, stream);
  ZIMAGE_CUDA_CHECK_LAUNCH("upsample_nearest_v1");
}

}  // namespace zimage::gpu

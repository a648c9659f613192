#include "kernels/device_common.cuh"
#include "kernels/final_layer_norm.h"

namespace zimage::gpu {
namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void __launch_bounds__(kThreads) final_layer_norm_v1(const T* __restrict__ x, int64_t ldx,
                                                                const T* __restrict__ scale, int64_t lds,
                                                                int64_t rows_per_batch, int C, float eps,
                                                                T* __restrict__ y, int64_t ldy) {
  const int64_t r = blockIdx.x;
  const T* xr = x + r * ldx;
  T* yr = y + r * ldy;
  const T* s = scale + (r / rows_per_batch) * lds;
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

void final_layer_norm(ConstDevRows x, ConstDevRows scale, RowShape shape, double eps, DevRows y, cudaStream_t stream) {
  const DType dt = x.dt;
  check_view_dtype("final_layer_norm", "scale", scale.dt, dt);
  check_view_dtype("final_layer_norm", "y", y.dt, dt);
  const int64_t rows = shape.rows, rows_per_batch = shape.rows_per_batch, C = shape.cols;
  if (rows == 0) return;
  ZIMAGE_CHECK(rows_per_batch > 0 && rows % rows_per_batch == 0 && C > 0 && C <= 0x7fffffff && rows <= 0x7fffffff &&
                   x.ld >= C && y.ld >= C && scale.ld >= C,
               "final_layer_norm: bad shape");
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    final_layer_norm_v1<T><<<unsigned(rows), kThreads, 0, stream>>>(
        static_cast<const T*>(x.data), x.ld, static_cast<const T*>(scale.data), scale.ld, rows_per_batch, int(C),
        float(eps), static_cast<T*>(y.data), y.ld);
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("final_layer_norm_v1");
}

}  // namespace zimage::gpu

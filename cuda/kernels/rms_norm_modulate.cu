#include "kernels/device_common.cuh"
#include "kernels/rms_norm_modulate.h"

namespace zimage::gpu {
namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void __launch_bounds__(kThreads)
    rms_norm_modulate_v1(const T* __restrict__ x, int64_t ldx, const T* __restrict__ w, const T* __restrict__ mod,
                         int64_t ld_mod, int64_t rows_per_batch, int C, float eps, T* __restrict__ y, int64_t ldy) {
  const int64_t r = blockIdx.x;
  const T* xr = x + r * ldx;
  T* yr = y + r * ldy;
  const T* s = mod ? mod + (r / rows_per_batch) * ld_mod : nullptr;
  float ss = 0.f;
  for (int c = threadIdx.x; c < C; c += kThreads) {
    const float v = to_f32(xr[c]);
    ss += v * v;
  }
  ss = block_sum(ss);
  const float inv = 1.0f / sqrtf(ss / float(C) + eps);
  for (int c = threadIdx.x; c < C; c += kThreads) {
    float v = to_f32(xr[c]) * inv * to_f32(w[c]);
    if (s) v *= 1.0f + to_f32(s[c]);
    yr[c] = from_f32<T>(v);
  }
}

// One 16-byte vector per thread (8 bf16 or 4 fp32), the row held in registers: one read of x,
// 16-byte loads and stores; blockDim = C / V rounded up to a warp (at most 1024). Per element the
// same fp32 expression as v1; only the partition of the sum of squares differs.
template <class T>
__global__ void __launch_bounds__(1024)
    rms_norm_modulate_v2(const T* __restrict__ x, int64_t ldx, const T* __restrict__ w, const T* __restrict__ mod,
                         int64_t ld_mod, int64_t rows_per_batch, int C, float eps, T* __restrict__ y, int64_t ldy) {
  constexpr int V = 16 / sizeof(T);
  const int64_t r = blockIdx.x;
  const int c0 = threadIdx.x * V;
  const bool on = c0 < C;
  alignas(16) T xv[V];
  float ss = 0.f;
  if (on) {
    *reinterpret_cast<uint4*>(xv) = *reinterpret_cast<const uint4*>(x + r * ldx + c0);
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const float v = to_f32(xv[i]);
      ss += v * v;
    }
  }
  ss = block_sum(ss);
  const float inv = 1.0f / sqrtf(ss / float(C) + eps);
  if (!on) return;
  alignas(16) T wv[V], sv[V], yv[V];
  *reinterpret_cast<uint4*>(wv) = *reinterpret_cast<const uint4*>(w + c0);
  if (mod) *reinterpret_cast<uint4*>(sv) = *reinterpret_cast<const uint4*>(mod + (r / rows_per_batch) * ld_mod + c0);
#pragma unroll
  for (int i = 0; i < V; ++i) {
    float v = to_f32(xv[i]) * inv * to_f32(wv[i]);
    if (mod) v *= 1.0f + to_f32(sv[i]);
    yv[i] = from_f32<T>(v);
  }
  *reinterpret_cast<uint4*>(y + r * ldy + c0) = *reinterpret_cast<const uint4*>(yv);
}

}  // namespace

void rms_norm_modulate(ConstDevRows xv, const void* weight, ConstDevRows scale, RowShape shape, double eps, DevRows yv,
                       cudaStream_t stream) {
  const DType dt = xv.dt;
  check_view_dtype("rms_norm_modulate", "y", yv.dt, dt);
  if (scale.data) check_view_dtype("rms_norm_modulate", "scale", scale.dt, dt);
  const void *x = xv.data, *mod = scale.data;
  void* y = yv.data;
  const int64_t ldx = xv.ld, ld_mod = scale.data ? scale.ld : 0, ldy = yv.ld;
  const int64_t rows = shape.rows, rows_per_batch = shape.rows_per_batch, C = shape.cols;
  if (rows == 0) return;
  ZIMAGE_CHECK(rows_per_batch > 0 && rows % rows_per_batch == 0 && C > 0 && rows <= 0x7fffffff,
               "rms_norm_modulate: bad shape");
  if (row_kernel_v2_fits(dt, C, {x, weight, mod, y}, {ldx, ld_mod, ldy})) {
    const int64_t vecs = C / int64_t(16 / dtype_size(dt)), threads = (vecs + 31) / 32 * 32;
    ZIMAGE_DISPATCH_STORAGE(dt, T, {
      rms_norm_modulate_v2<T><<<unsigned(rows), unsigned(threads), 0, stream>>>(
          static_cast<const T*>(x), ldx, static_cast<const T*>(weight), static_cast<const T*>(mod), ld_mod,
          rows_per_batch, int(C), float(eps), static_cast<T*>(y), ldy);
    });
    ZIMAGE_CUDA_CHECK_LAUNCH("rms_norm_modulate_v2");
    return;
  }
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    rms_norm_modulate_v1<T><<<unsigned(rows), kThreads, 0, stream>>>(
        static_cast<const T*>(x), ldx, static_cast<const T*>(weight), static_cast<const T*>(mod), ld_mod,
        rows_per_batch, int(C), float(eps), static_cast<T*>(y), ldy);
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("rms_norm_modulate_v1");
}

}  // namespace zimage::gpu

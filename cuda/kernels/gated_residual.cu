#include "kernels/device_common.cuh"
#include "kernels/gated_residual.h"

namespace zimage::gpu {
namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void __launch_bounds__(kThreads)
    gated_residual_v1(T* __restrict__ x, int64_t ldx, const T* __restrict__ y, int64_t ldy, const T* __restrict__ w,
                      const T* __restrict__ mod, int64_t ld_mod, int64_t rows_per_batch, int C, float eps) {
  const int64_t r = blockIdx.x;
  T* xr = x + r * ldx;
  const T* yr = y + r * ldy;
  const T* g = mod ? mod + (r / rows_per_batch) * ld_mod : nullptr;
  float ss = 0.f;
  for (int c = threadIdx.x; c < C; c += kThreads) {
    const float v = to_f32(yr[c]);
    ss += v * v;
  }
  ss = block_sum(ss);
  const float inv = 1.0f / sqrtf(ss / float(C) + eps);
  for (int c = threadIdx.x; c < C; c += kThreads) {
    const float n = to_f32(yr[c]) * inv * to_f32(w[c]);
    const float gate = g ? tanhf(to_f32(g[c])) : 1.0f;
    xr[c] = from_f32<T>(to_f32(xr[c]) + gate * n);
  }
}

// One 16-byte vector per thread, y's row in registers (one read), 16-byte loads and stores;
// blockDim = C / V rounded up to a warp. Per element v1's fp32 expression.
template <class T>
__global__ void __launch_bounds__(1024)
    gated_residual_v2(T* __restrict__ x, int64_t ldx, const T* __restrict__ y, int64_t ldy, const T* __restrict__ w,
                      const T* __restrict__ mod, int64_t ld_mod, int64_t rows_per_batch, int C, float eps) {
  constexpr int V = 16 / sizeof(T);
  const int64_t r = blockIdx.x;
  const int c0 = threadIdx.x * V;
  const bool on = c0 < C;
  alignas(16) T yv[V];
  float ss = 0.f;
  if (on) {
    *reinterpret_cast<uint4*>(yv) = *reinterpret_cast<const uint4*>(y + r * ldy + c0);
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const float v = to_f32(yv[i]);
      ss += v * v;
    }
  }
  ss = block_sum(ss);
  const float inv = 1.0f / sqrtf(ss / float(C) + eps);
  if (!on) return;
  alignas(16) T xv[V], wv[V], gv[V];
  T* xr = x + r * ldx + c0;
  *reinterpret_cast<uint4*>(xv) = *reinterpret_cast<const uint4*>(xr);
  *reinterpret_cast<uint4*>(wv) = *reinterpret_cast<const uint4*>(w + c0);
  if (mod) *reinterpret_cast<uint4*>(gv) = *reinterpret_cast<const uint4*>(mod + (r / rows_per_batch) * ld_mod + c0);
#pragma unroll
  for (int i = 0; i < V; ++i) {
    const float n = to_f32(yv[i]) * inv * to_f32(wv[i]);
    const float gate = mod ? tanhf(to_f32(gv[i])) : 1.0f;
    xv[i] = from_f32<T>(to_f32(xv[i]) + gate * n);
  }
  *reinterpret_cast<uint4*>(xr) = *reinterpret_cast<const uint4*>(xv);
}

}  // namespace

void gated_residual(DevRows xv, ConstDevRows yv, const void* weight, ConstDevRows gate, RowShape shape, double eps,
                    cudaStream_t stream) {
  const DType dt = xv.dt;
  check_view_dtype("gated_residual", "y", yv.dt, dt);
  if (gate.data) check_view_dtype("gated_residual", "gate", gate.dt, dt);
  void* x = xv.data;
  const void *y = yv.data, *mod = gate.data;
  const int64_t ldx = xv.ld, ldy = yv.ld, ld_mod = gate.data ? gate.ld : 0;
  const int64_t rows = shape.rows, rows_per_batch = shape.rows_per_batch, C = shape.cols;
  if (rows == 0) return;
  ZIMAGE_CHECK(rows_per_batch > 0 && rows % rows_per_batch == 0 && C > 0 && rows <= 0x7fffffff,
               "gated_residual: bad shape");
  if (row_kernel_v2_fits(dt, C, {x, y, weight, mod}, {ldx, ldy, ld_mod})) {
    const int64_t vecs = C / int64_t(16 / dtype_size(dt)), threads = (vecs + 31) / 32 * 32;
    ZIMAGE_DISPATCH_STORAGE(dt, T, {
      gated_residual_v2<T><<<unsigned(rows), unsigned(threads), 0, stream>>>(
          static_cast<T*>(x), ldx, static_cast<const T*>(y), ldy, static_cast<const T*>(weight),
          static_cast<const T*>(mod), ld_mod, rows_per_batch, int(C), float(eps));
    });
    ZIMAGE_CUDA_CHECK_LAUNCH("gated_residual_v2");
    return;
  }
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    gated_residual_v1<T><<<unsigned(rows), kThreads, 0, stream>>>(
        static_cast<T*>(x), ldx, static_cast<const T*>(y), ldy, static_cast<const T*>(weight),
        static_cast<const T*>(mod), ld_mod, rows_per_batch, int(C), float(eps));
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("gated_residual_v1");
}

}  // namespace zimage::gpu

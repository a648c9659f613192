#include "kernels/device_common.cuh"
#include "kernels/rms_norm_modulate.h"
#include "kernels/row_vector.cuh"

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
// 16-byte loads and stores; blockDim = C / V rounded up to a warp (at most 1024). The block's rows
// are [r0, r1) (rows_per_block consecutive rows, common.h row_kernel_rows_per_block): the weight
// is loaded once and 1 + scale made once per item, not per row. Per element the same fp32
// expression as v1; only the partition of the sum of squares differs. Every thread runs every
// row's block sum, also those past C.
template <class T>
__global__ void __launch_bounds__(1024)
    rms_norm_modulate_v2(const T* __restrict__ x, int64_t ldx, const T* __restrict__ w, const T* __restrict__ mod,
                         int64_t ld_mod, int rows_per_batch, int C, float eps, T* __restrict__ y, int64_t ldy,
                         int rows, int rows_per_block) {
  using namespace row_vec;
  const int c0 = threadIdx.x * kLanes<T>;
  const bool on = c0 < C;
  alignas(16) T wv[kLanes<T>];
  float sf[kLanes<T>];
  if (on) load(wv, w + c0);
  const int r0 = int(blockIdx.x) * rows_per_block, r1 = min(rows, r0 + rows_per_block);
  ItemRows items(r0, rows_per_batch);
  for (int r = r0; r < r1; ++r) {
    alignas(16) T xv[kLanes<T>];
    if (on) load(xv, x + r * ldx + c0);
    const float inv = inv_rms(block_sum(on ? sum_squares(xv) : 0.f), C, eps);
    if (!on) continue;
    if (items.enter(r)) scale_factors(sf, mod ? mod + items.item * ld_mod + c0 : nullptr);
    alignas(16) T yv[kLanes<T>];
    norm_modulate(yv, xv, inv, wv, sf, mod != nullptr);
    store(y + r * ldy + c0, yv);
  }
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
  check_row_operands("rms_norm_modulate", shape, {{"x", xv}, {"y", yv}});
  if (row_kernel_v2_fits(dt, C, {x, weight, mod, y}, {ldx, ld_mod, ldy})) {
    const int64_t vecs = C / int64_t(16 / dtype_size(dt)), threads = (vecs + 31) / 32 * 32;
    ZIMAGE_DISPATCH_STORAGE(dt, T, {
      const int R = row_kernel_rows_per_block(rows, row_vec::resident_blocks(rms_norm_modulate_v2<T>, int(threads)),
                                              device_sm_count());
      rms_norm_modulate_v2<T><<<unsigned((rows + R - 1) / R), unsigned(threads), 0, stream>>>(
          static_cast<const T*>(x), ldx, static_cast<const T*>(weight), static_cast<const T*>(mod), ld_mod,
          int(rows_per_batch), int(C), float(eps), static_cast<T*>(y), ldy, int(rows), R);
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

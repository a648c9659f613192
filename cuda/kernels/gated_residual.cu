#include "kernels/device_common.cuh"
#include "kernels/gated_residual.h"
#include "kernels/rms_norm_modulate.h"
#include "kernels/row_vector.cuh"

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
// blockDim = C / V rounded up to a warp. The block's rows are [r0, r1) (rows_per_block
// consecutive rows, common.h row_kernel_rows_per_block): the weight is loaded once and tanh(gate)
// made once per item, not per row. Per element v1's fp32 expression (row_vector.cuh). Every
// thread runs every row's block sum, also those past C.
template <class T>
__global__ void __launch_bounds__(1024)
    gated_residual_v2(T* __restrict__ x, int64_t ldx, const T* __restrict__ y, int64_t ldy, const T* __restrict__ w,
                      const T* __restrict__ mod, int64_t ld_mod, int rows_per_batch, int C, float eps, int rows,
                      int rows_per_block) {
  using namespace row_vec;
  const int c0 = threadIdx.x * kLanes<T>;
  const bool on = c0 < C;
  alignas(16) T wv[kLanes<T>];
  float gf[kLanes<T>];
  if (on) load(wv, w + c0);
  const int r0 = int(blockIdx.x) * rows_per_block, r1 = min(rows, r0 + rows_per_block);
  ItemRows items(r0, rows_per_batch);
  for (int r = r0; r < r1; ++r) {
    alignas(16) T yv[kLanes<T>];
    if (on) load(yv, y + r * ldy + c0);
    const float inv = inv_rms(block_sum(on ? sum_squares(yv) : 0.f), C, eps);
    if (!on) continue;
    if (items.enter(r)) gate_factors(gf, mod ? mod + items.item * ld_mod + c0 : nullptr);
    alignas(16) T xv[kLanes<T>];
    T* xr = x + r * ldx + c0;
    load(xv, xr);
    add_gated(xv, yv, inv, wv, gf, mod != nullptr);
    store(xr, xv);
  }
}

// gated_residual_v2, then rms_norm_modulate_v2 on the updated row still in registers: the x the
// first writes is the x the second reads (rounded to storage), every thread reaches both block
// sums of every row, and each step is the one of its twin kernel (row_vector.cuh); the same rows
// per block and per-item factors (tanh(gate), 1 + scale) as they make.
template <class T>
__global__ void __launch_bounds__(1024)
    gated_residual_rms_norm_v2(T* __restrict__ x, int64_t ldx, const T* __restrict__ y, int64_t ldy,
                               const T* __restrict__ w_post, const T* __restrict__ gate, int64_t ld_gate, float eps_post,
                               const T* __restrict__ w_next, const T* __restrict__ scale, int64_t ld_scale,
                               float eps_next, T* __restrict__ h, int64_t ldh, int rows_per_batch, int C,
                               int rows, int rows_per_block) {
  using namespace row_vec;
  const int c0 = threadIdx.x * kLanes<T>;
  const bool on = c0 < C;
  alignas(16) T wpv[kLanes<T>], wnv[kLanes<T>];
  float gf[kLanes<T>], sf[kLanes<T>];
  if (on) {
    load(wpv, w_post + c0);
    load(wnv, w_next + c0);
  }
  const int r0 = int(blockIdx.x) * rows_per_block, r1 = min(rows, r0 + rows_per_block);
  ItemRows items(r0, rows_per_batch);
  for (int r = r0; r < r1; ++r) {
    alignas(16) T yv[kLanes<T>], xv[kLanes<T>];
    if (on) load(yv, y + r * ldy + c0);
    const float inv = inv_rms(block_sum(on ? sum_squares(yv) : 0.f), C, eps_post);
    if (on) {
      if (items.enter(r)) {
        gate_factors(gf, gate ? gate + items.item * ld_gate + c0 : nullptr);
        scale_factors(sf, scale ? scale + items.item * ld_scale + c0 : nullptr);
      }
      T* xr = x + r * ldx + c0;
      load(xv, xr);
      add_gated(xv, yv, inv, wpv, gf, gate != nullptr);
      store(xr, xv);
    }
    const float inv_next = inv_rms(block_sum(on ? sum_squares(xv) : 0.f), C, eps_next);
    if (!on) continue;
    alignas(16) T hv[kLanes<T>];
    norm_modulate(hv, xv, inv_next, wnv, sf, scale != nullptr);
    store(h + r * ldh + c0, hv);
  }
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
  check_row_operands("gated_residual", shape, {{"x", xv}, {"y", yv}});
  if (row_kernel_v2_fits(dt, C, {x, y, weight, mod}, {ldx, ldy, ld_mod})) {
    const int64_t vecs = C / int64_t(16 / dtype_size(dt)), threads = (vecs + 31) / 32 * 32;
    ZIMAGE_DISPATCH_STORAGE(dt, T, {
      const int R = row_kernel_rows_per_block(rows, row_vec::resident_blocks(gated_residual_v2<T>, int(threads)),
                                              device_sm_count());
      gated_residual_v2<T><<<unsigned((rows + R - 1) / R), unsigned(threads), 0, stream>>>(
          static_cast<T*>(x), ldx, static_cast<const T*>(y), ldy, static_cast<const T*>(weight),
          static_cast<const T*>(mod), ld_mod, int(rows_per_batch), int(C), float(eps), int(rows), R);
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

void gated_residual_rms_norm(DevRows xv, ConstDevRows yv, RowNorm post, RowNorm next, DevRows hv, RowShape shape,
                             cudaStream_t stream) {
  const DType dt = xv.dt;
  check_view_dtype("gated_residual_rms_norm", "y", yv.dt, dt);
  check_view_dtype("gated_residual_rms_norm", "h", hv.dt, dt);
  if (post.mod.data) check_view_dtype("gated_residual_rms_norm", "gate", post.mod.dt, dt);
  if (next.mod.data) check_view_dtype("gated_residual_rms_norm", "scale", next.mod.dt, dt);
  const int64_t rows = shape.rows, rows_per_batch = shape.rows_per_batch, C = shape.cols;
  if (rows == 0) return;
  check_row_operands("gated_residual_rms_norm", shape, {{"x", xv}, {"y", yv}, {"h", hv}});
  ZIMAGE_CHECK(!rows_overlap(hv, xv, shape), "gated_residual_rms_norm: h overlaps x (one block's h row would be "
                                             "another block's x row)");
  ZIMAGE_CHECK(!rows_overlap(hv, yv, shape),
               "gated_residual_rms_norm: h overlaps y (one block's h row would be "
               "another block's y row)");
  const int64_t ld_gate = post.mod.data ? post.mod.ld : 0, ld_scale = next.mod.data ? next.mod.ld : 0;
  if (!row_kernel_v2_fits(dt, C, {xv.data, yv.data, post.weight, post.mod.data, next.weight, next.mod.data, hv.data},
                          {xv.ld, yv.ld, ld_gate, ld_scale, hv.ld})) {
    gated_residual(xv, yv, post.weight, post.mod, shape, post.eps, stream);
    rms_norm_modulate(xv, next.weight, next.mod, shape, next.eps, hv, stream);
    return;
  }
  const int64_t vecs = C / int64_t(16 / dtype_size(dt)), threads = (vecs + 31) / 32 * 32;
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    const int R = row_kernel_rows_per_block(rows, row_vec::resident_blocks(gated_residual_rms_norm_v2<T>, int(threads)),
                                            device_sm_count());
    gated_residual_rms_norm_v2<T><<<unsigned((rows + R - 1) / R), unsigned(threads), 0, stream>>>(
        static_cast<T*>(xv.data), xv.ld, static_cast<const T*>(yv.data), yv.ld, static_cast<const T*>(post.weight),
        static_cast<const T*>(post.mod.data), ld_gate, float(post.eps), static_cast<const T*>(next.weight),
        static_cast<const T*>(next.mod.data), ld_scale, float(next.eps), static_cast<T*>(hv.data), hv.ld,
        int(rows_per_batch), int(C), int(rows), R);
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("gated_residual_rms_norm_v2");
}

}  // namespace zimage::gpu

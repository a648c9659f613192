// The per-thread steps of the v2 row kernels (rms_norm_modulate_v2, gated_residual_v2 and their
// fusion gated_residual_rms_norm_v2): one 16-byte vector of a row per thread, V = 16 / sizeof(T)
// elements, over the block's consecutive rows (the weight and the per-item factors held in
// registers from row to row). Each step is the fp32 expression of its v1 twin, written once, so the fused kernel
// computes exactly what the two kernels compute one after the other.
#pragma once
#include "kernels/device_common.cuh"

namespace zimage::gpu::row_vec {

template <class T>
constexpr int kLanes = 16 / int(sizeof(T));

// Which item (batch entry) a block's row belongs to, from its first row on: one division for the
// block, then a comparison per row. enter(r) (rows in increasing order) says whether r starts
// another item than the last row entered, the first row included; `item` is then r's item.
// Rows are 32-bit (the launchers refuse more than 2^31 - 1 rows).
struct ItemRows {
  int item, end, per_item;
  bool fresh = true;
  __device__ ItemRows(int r0, int rows_per_batch)
      : item(r0 / rows_per_batch), end((r0 / rows_per_batch + 1) * rows_per_batch), per_item(rows_per_batch) {}
  __device__ bool enter(int r) {
    if (r >= end) {
      ++item;
      end += per_item;
      return true;
    }
    const bool f = fresh;
    fresh = false;
    return f;
  }
};

// Resident blocks an SM holds of `kernel` at `threads` a block (registers included), at least 1:
// what row_kernel_rows_per_block takes. Host only.
template <class Kernel>
int resident_blocks(Kernel kernel, int threads) {
  int n = 0;
  ZIMAGE_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, threads, 0));
  return n > 0 ? n : 1;
}

template <class T>
__device__ __forceinline__ void load(T (&v)[kLanes<T>], const T* src) {
  *reinterpret_cast<uint4*>(v) = *reinterpret_cast<const uint4*>(src);
}

template <class T>
__device__ __forceinline__ void store(T* dst, const T (&v)[kLanes<T>]) {
  *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(v);
}

// This thread's part of the row's sum of squares, in lane order, one fma per lane.
// The roundings of every expression below are spelled with intrinsics (__fmaf_rn, __fmul_rn), not
// left to nvcc's contraction of a * b + c, which depends on the surrounding code: each kernel
// that uses these steps (the two v2 kernels and their fusion) then rounds exactly alike.
template <class T>
__device__ __forceinline__ float sum_squares(const T (&v)[kLanes<T>]) {
  float ss = 0.f;
#pragma unroll
  for (int i = 0; i < kLanes<T>; ++i) {
    const float f = to_f32(v[i]);
    ss = __fmaf_rn(f, f, ss);
  }
  return ss;
}

// 1 / sqrt(mean(v^2) + eps) from the block's sum of squares.
__device__ __forceinline__ float inv_rms(float block_ss, int C, float eps) {
  return 1.0f / sqrtf(block_ss / float(C) + eps);
}

// The per-item factors, made once per item a block meets (common.h row_kernel_rows_per_block), in
// fp32: tanh(gate) (1 without a gate, unused) and 1 + scale (1 without a scale, unused). The
// values v1 makes per element; with the expressions below, the same per-element results.
template <class T>
__device__ __forceinline__ void gate_factors(float (&g)[kLanes<T>], const T* gate) {
  if (!gate) {
#pragma unroll
    for (int i = 0; i < kLanes<T>; ++i) g[i] = 1.0f;
    return;
  }
  alignas(16) T v[kLanes<T>];
  load(v, gate);
#pragma unroll
  for (int i = 0; i < kLanes<T>; ++i) g[i] = tanhf(to_f32(v[i]));
}

template <class T>
__device__ __forceinline__ void scale_factors(float (&s)[kLanes<T>], const T* scale) {
  if (!scale) {
#pragma unroll
    for (int i = 0; i < kLanes<T>; ++i) s[i] = 1.0f;
    return;
  }
  alignas(16) T v[kLanes<T>];
  load(v, scale);
#pragma unroll
  for (int i = 0; i < kLanes<T>; ++i) s[i] = 1.0f + to_f32(v[i]);
}

// x + g * n with n = (y * inv) * w, g = tanh(gate) (gated_residual's expression): fma(n, g, x);
// without a gate fma(y * inv, w, x), the one rounding v1's `x + 1.0f * n` gets once nvcc folds the
// 1 and contracts (a run-time g of 1 would round n first).
template <class T>
__device__ __forceinline__ void add_gated(T (&x)[kLanes<T>], const T (&y)[kLanes<T>], float inv, const T (&w)[kLanes<T>],
                                          const float (&g)[kLanes<T>], bool has_gate) {
#pragma unroll
  for (int i = 0; i < kLanes<T>; ++i) {
    const float yi = __fmul_rn(to_f32(y[i]), inv), wi = to_f32(w[i]), xi = to_f32(x[i]);
    x[i] = from_f32<T>(has_gate ? __fmaf_rn(__fmul_rn(yi, wi), g[i], xi) : __fmaf_rn(yi, wi, xi));
  }
}

// out = x * inv * w * s, s = 1 + scale, no factor without a scale (rms_norm_modulate's expression).
template <class T>
__device__ __forceinline__ void norm_modulate(T (&out)[kLanes<T>], const T (&x)[kLanes<T>], float inv,
                                              const T (&w)[kLanes<T>], const float (&s)[kLanes<T>], bool has_scale) {
#pragma unroll
  for (int i = 0; i < kLanes<T>; ++i) {
    float v = __fmul_rn(__fmul_rn(to_f32(x[i]), inv), to_f32(w[i]));
    if (has_scale) v = __fmul_rn(v, s[i]);
    out[i] = from_f32<T>(v);
  }
}

}  // namespace zimage::gpu::row_vec

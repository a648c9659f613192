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

template <class T>
__device__ __forceinline__ void load(T (&v)[kLanes<T>], const T* src) {
  *reinterpret_cast<uint4*>(v) = *reinterpret_cast<const uint4*>(src);
}

template <class T>
__device__ __forceinline__ void store(T* dst, const T (&v)[kLanes<T>]) {
  *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(v);
}

// This thread's part of the row's sum of squares, in lane order.
template <class T>
__device__ __forceinline__ float sum_squares(const T (&v)[kLanes<T>]) {
  float ss = 0.f;
#pragma unroll
  for (int i = 0; i < kLanes<T>; ++i) {
    const float f = to_f32(v[i]);
    ss += f * f;
  }
  return ss;
}

// 1 / sqrt(mean(v^2) + eps) from the block's sum of squares.
__device__ __forceinline__ float inv_rms(float block_ss, int C, float eps) {
  return 1.0f / sqrtf(block_ss / float(C) + eps);
}

// The per-item factors, made once per item a block meets (common.h row_kernel_rows_per_block), in
// fp32: tanh(gate) (1 without a gate) and 1 + scale (1 without a scale). The values v1 makes per
// element, so the per-element results below are v1's bit for bit.
template <class T>
__device__ __forceinline__ void gate_factors(float (&g)[kLanes<T>], const T* gate) {
  alignas(16) T v[kLanes<T>];
  if (gate) load(v, gate);
#pragma unroll
  for (int i = 0; i < kLanes<T>; ++i) g[i] = gate ? tanhf(to_f32(v[i])) : 1.0f;
}

template <class T>
__device__ __forceinline__ void scale_factors(float (&s)[kLanes<T>], const T* scale) {
  alignas(16) T v[kLanes<T>];
  if (scale) load(v, scale);
#pragma unroll
  for (int i = 0; i < kLanes<T>; ++i) s[i] = scale ? 1.0f + to_f32(v[i]) : 1.0f;
}

// x += g * (y * inv * w), g = tanh(gate) (gated_residual's expression; g 1 without a gate).
template <class T>
__device__ __forceinline__ void add_gated(T (&x)[kLanes<T>], const T (&y)[kLanes<T>], float inv, const T (&w)[kLanes<T>],
                                          const float (&g)[kLanes<T>]) {
#pragma unroll
  for (int i = 0; i < kLanes<T>; ++i) {
    const float n = to_f32(y[i]) * inv * to_f32(w[i]);
    x[i] = from_f32<T>(to_f32(x[i]) + g[i] * n);
  }
}

// out = x * inv * w * s, s = 1 + scale, no factor without a scale (rms_norm_modulate's expression).
template <class T>
__device__ __forceinline__ void norm_modulate(T (&out)[kLanes<T>], const T (&x)[kLanes<T>], float inv,
                                              const T (&w)[kLanes<T>], const float (&s)[kLanes<T>], bool has_scale) {
#pragma unroll
  for (int i = 0; i < kLanes<T>; ++i) {
    float v = to_f32(x[i]) * inv * to_f32(w[i]);
    if (has_scale) v *= s[i];
    out[i] = from_f32<T>(v);
  }
}

}  // namespace zimage::gpu::row_vec

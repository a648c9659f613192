#include "kernels/device_common.cuh"
#include "kernels/qwen3_qk_norm_rope.h"

namespace zimage::gpu {
namespace {

constexpr int kWarps = 4;

// Warp gw handles token n = gw / (H + G) and head slot hs = gw % (H + G): query head hs when
// hs < H, else key head hs - H.
template <class T>
__global__ void __launch_bounds__(32 * kWarps)
    qwen3_qk_norm_rope_v1(T* __restrict__ q, T* __restrict__ k, int64_t ld, const T* __restrict__ wq,
                          const T* __restrict__ wk, const float* __restrict__ cos_sin, int64_t n_tokens, int L, int H,
                          int G, int D, float eps) {
  const int64_t gw = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (gw >= n_tokens * (H + G)) return;  // whole warp leaves together
  const int hs = int(gw % (H + G));
  const int64_t n = gw / (H + G);
  const bool is_k = hs >= H;
  T* v = is_k ? k + n * ld + int64_t(hs - H) * D : q + n * ld + int64_t(hs) * D;
  const T* w = is_k ? wk : wq;
  const int half = D / 2;
  const float* cs = cos_sin + int64_t(n % L) * D;  // [D/2, 2] of position l
  float ss = 0.f;
  for (int d = lane; d < D; d += 32) {
    const float a = to_f32(v[d]);
    ss += a * a;
  }
  ss = warp_sum(ss);
  const float inv = 1.0f / sqrtf(ss / float(D) + eps);
  for (int i = lane; i < half; i += 32) {
    const float x1 = to_f32(v[i]) * inv * to_f32(w[i]);
    const float x2 = to_f32(v[i + half]) * inv * to_f32(w[i + half]);
    const float c = cs[2 * i], s = cs[2 * i + 1];
    v[i] = from_f32<T>(x1 * c - x2 * s);
    v[i + half] = from_f32<T>(x2 * c + x1 * s);
  }
}

}  // namespace

void qwen3_qk_norm_rope(DevRows qv, DevRows kv, QkNorm norm, const float* cos_sin, AttentionShape shape,
                        int64_t kv_heads, cudaStream_t stream) {
  const DType dt = qv.dt;
  const void *norm_q = norm.q, *norm_k = norm.k;
  const int64_t B = shape.B, L = shape.L, H = shape.H, G = kv_heads, D = shape.D;
  const double eps = norm.eps;
  check_view_dtype("qwen3_qk_norm_rope", "k", kv.dt, dt);
  ZIMAGE_CHECK(qv.ld == kv.ld, "qwen3_qk_norm_rope: q and k must share one row stride (" + std::to_string(qv.ld) +
                                   " vs " + std::to_string(kv.ld) + ")");
  void *q = qv.data, *k = kv.data;
  const int64_t ld = qv.ld;
  if (B == 0 || L == 0) return;
  ZIMAGE_CHECK(D % 2 == 0 && D > 0 && H > 0 && G > 0 && ld >= (H + 2 * G) * D && norm_q && norm_k && cos_sin,
               "qwen3_qk_norm_rope: bad shape or missing weight");
  const int64_t warps = B * L * (H + G), blocks = (warps + kWarps - 1) / kWarps;
  ZIMAGE_CHECK(blocks <= 0x7fffffff && L < 0x7fffffff, "qwen3_qk_norm_rope: too many tokens");
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    qwen3_qk_norm_rope_v1<T><<<unsigned(blocks), 32 * kWarps, 0, stream>>>(
        static_cast<T*>(q), static_cast<T*>(k), ld, static_cast<const T*>(norm_q), static_cast<const T*>(norm_k),
        cos_sin, B * L, int(L), int(H), int(G), int(D), float(eps));
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("qwen3_qk_norm_rope_v1");
}

}  // namespace zimage::gpu

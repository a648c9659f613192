#include "kernels/device_common.cuh"
#include "kernels/qk_norm_rope.h"

namespace zimage::gpu {
namespace {

constexpr int kWarps = 4;

template <class T>
__global__ void __launch_bounds__(32 * kWarps)
    qk_norm_rope_v1(T* __restrict__ q, T* __restrict__ k, int64_t ld, const T* __restrict__ wq,
                    const T* __restrict__ wk, const float* __restrict__ freqs, int64_t n_tokens, int H, int D,
                    float eps) {
  const int64_t gw = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (gw >= n_tokens * H * 2) return;  // whole warp leaves together: no shuffle below is split
  const int which = int(gw % 2);
  const int h = int((gw / 2) % H);
  const int64_t n = gw / (2 * int64_t(H));
  T* v = (which ? k : q) + n * ld + int64_t(h) * D;
  const T* w = which ? wk : wq;
  const float* f = freqs + n * D;  // [D/2, 2] of token n
  const int pairs = D / 2;
  float inv = 1.0f;
  if (w) {
    float ss = 0.f;
    for (int p = lane; p < pairs; p += 32) {
      const float a = to_f32(v[2 * p]), b = to_f32(v[2 * p + 1]);
      ss += a * a + b * b;
    }
    ss = warp_sum(ss);
    inv = 1.0f / sqrtf(ss / float(D) + eps);
  }
  for (int p = lane; p < pairs; p += 32) {
    float re = to_f32(v[2 * p]), im = to_f32(v[2 * p + 1]);
    if (w) {
      re = re * inv * to_f32(w[2 * p]);
      im = im * inv * to_f32(w[2 * p + 1]);
    }
    const float c = f[2 * p], s = f[2 * p + 1];
    v[2 * p] = from_f32<T>(re * c - im * s);
    v[2 * p + 1] = from_f32<T>(re * s + im * c);
  }
}

}  // namespace

void qk_norm_rope(DevRows qv, DevRows kv, const void* norm_q, const void* norm_k, const float* freqs, int64_t n_tokens,
                  int64_t H, int64_t D, double eps, cudaStream_t stream) {
  const DType dt = qv.dt;
  check_view_dtype("qk_norm_rope", "k", kv.dt, dt);
  ZIMAGE_CHECK(qv.ld == kv.ld, "qk_norm_rope: q and k must share one row stride (" + std::to_string(qv.ld) + " vs " +
                                   std::to_string(kv.ld) + ")");
  void *q = qv.data, *k = kv.data;
  const int64_t ld = qv.ld;
  if (n_tokens == 0) return;
  ZIMAGE_CHECK(D % 2 == 0 && D > 0 && H > 0 && ld >= H * D, "qk_norm_rope: bad shape");
  ZIMAGE_CHECK((norm_q == nullptr) == (norm_k == nullptr), "qk_norm_rope: norm_q and norm_k must both be given or both null");
  const int64_t warps = n_tokens * H * 2, blocks = (warps + kWarps - 1) / kWarps;
  ZIMAGE_CHECK(blocks <= 0x7fffffff, "qk_norm_rope: too many tokens");
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    qk_norm_rope_v1<T><<<unsigned(blocks), 32 * kWarps, 0, stream>>>(
        static_cast<T*>(q), static_cast<T*>(k), ld, static_cast<const T*>(norm_q), static_cast<const T*>(norm_k),
        freqs, n_tokens, int(H), int(D), float(eps));
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("qk_norm_rope_v1");
}

}  // namespace zimage::gpu

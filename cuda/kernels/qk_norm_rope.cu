#include "kernels/device_common.cuh"
#include "kernels/qk_norm_rope.h"

#include <algorithm>
#include <type_traits>

namespace zimage::gpu {
namespace {

constexpr int kWarps = 4;

// This warp's (token n, head h, q|k) and its lane; valid false past the last one (the whole warp
// leaves together: no shuffle is split).
struct WarpHead {
  int64_t n;
  int h, which, lane;
  bool valid;
};
__device__ __forceinline__ WarpHead warp_head(int64_t n_tokens, int H) {
  const int64_t gw = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  WarpHead r;
  r.lane = threadIdx.x & 31;
  r.valid = gw < n_tokens * H * 2;
  r.which = int(gw % 2);
  r.h = int((gw / 2) % H);
  r.n = gw / (2 * int64_t(H));
  return r;
}

template <class T>
__global__ void __launch_bounds__(32 * kWarps)
    qk_norm_rope_v1(T* __restrict__ q, T* __restrict__ k, int64_t ld, const T* __restrict__ wq,
                    const T* __restrict__ wk, const float* __restrict__ freqs, int64_t n_tokens, int H, int D,
                    float eps) {
  const WarpHead wh = warp_head(n_tokens, H);
  if (!wh.valid) return;
  const int lane = wh.lane, which = wh.which, h = wh.h;
  const int64_t n = wh.n;
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

// A head's D values as E = D / 32 contiguous elements per lane (E in {2, 4, 8}; E * sizeof(T) at
// most 16 bytes), one vector load of q|k, weight and freqs each: the head is read once and held in
// registers. Per pair v1's fp32 expressions; only the partition of the sum of squares over the
// lanes differs (contiguous pairs per lane here, strided in v1).
template <class T, int E>
struct alignas(E * sizeof(T)) HeadVec {
  T v[E];
};
template <int E>
struct alignas(E * sizeof(float) > 16 ? 16 : E * sizeof(float)) FreqVec {
  float v[E];  // E / 2 (cos, sin) pairs
};

template <class T, int E>
__global__ void __launch_bounds__(32 * kWarps)
    qk_norm_rope_v2(T* __restrict__ q, T* __restrict__ k, int64_t ld, const T* __restrict__ wq,
                    const T* __restrict__ wk, const float* __restrict__ freqs, int64_t n_tokens, int H, float eps) {
  constexpr int D = 32 * E;
  const WarpHead wh = warp_head(n_tokens, H);
  if (!wh.valid) return;
  const int lane = wh.lane, which = wh.which, h = wh.h;
  const int64_t n = wh.n;
  HeadVec<T, E>* vp = reinterpret_cast<HeadVec<T, E>*>((which ? k : q) + n * ld + int64_t(h) * D + lane * E);
  const T* w = which ? wk : wq;
  HeadVec<T, E> x = *vp;
  const FreqVec<E> f = *reinterpret_cast<const FreqVec<E>*>(freqs + n * D + lane * E);
  float inv = 1.0f;
  HeadVec<T, E> wv;
  if (w) {
    wv = *reinterpret_cast<const HeadVec<T, E>*>(w + lane * E);
    float ss = 0.f;
#pragma unroll
    for (int i = 0; i < E; i += 2) {
      const float a = to_f32(x.v[i]), b = to_f32(x.v[i + 1]);
      ss += a * a + b * b;
    }
    ss = warp_sum(ss);
    inv = 1.0f / sqrtf(ss / float(D) + eps);
  }
#pragma unroll
  for (int i = 0; i < E; i += 2) {
    float re = to_f32(x.v[i]), im = to_f32(x.v[i + 1]);
    if (w) {
      re = re * inv * to_f32(wv.v[i]);
      im = im * inv * to_f32(wv.v[i + 1]);
    }
    const float c = f.v[i], s = f.v[i + 1];
    x.v[i] = from_f32<T>(re * c - im * s);
    x.v[i + 1] = from_f32<T>(re * s + im * c);
  }
  *vp = x;
}


}  // namespace

int qk_norm_rope_v2_lanes(DType dt, int64_t D, int64_t ld, std::initializer_list<const void*> ptrs,
                          const float* freqs) {
  const int64_t es = int64_t(dtype_size(dt)), E = D / 32;
  if (D % 32 != 0 || (E != 2 && E != 4 && E != 8) || E * es > 16 || ld % E != 0) return 0;  // D 192: v1
  for (const void* p : ptrs)
    if (p && reinterpret_cast<uintptr_t>(p) % uintptr_t(E * es) != 0) return 0;
  const int64_t fa = std::min<int64_t>(E * 4, 16);
  if (reinterpret_cast<uintptr_t>(freqs) % uintptr_t(fa) != 0) return 0;
  return int(E);
}

void qk_norm_rope(DevRows qv, DevRows kv, QkNorm norm, const float* freqs, AttentionShape shape, cudaStream_t stream) {
  const DType dt = qv.dt;
  const void *norm_q = norm.q, *norm_k = norm.k;
  const int64_t n_tokens = shape.B * shape.L, H = shape.H, D = shape.D;
  const double eps = norm.eps;
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
  const int E = qk_norm_rope_v2_lanes(dt, D, ld, {q, k, norm_q, norm_k}, freqs);
  if (E != 0) {
    ZIMAGE_DISPATCH_STORAGE(dt, T, {
      // Only the instances of at most 16 bytes a lane exist (qk_norm_rope_v2_lanes never asks for
      // more): the discarded branch of a generic lambda's `if constexpr` is not instantiated.
      auto launch = [&](auto e) {
        constexpr int kE = decltype(e)::value;
        if constexpr (kE * sizeof(T) <= 16) {
          qk_norm_rope_v2<T, kE><<<unsigned(blocks), 32 * kWarps, 0, stream>>>(
              static_cast<T*>(q), static_cast<T*>(k), ld, static_cast<const T*>(norm_q), static_cast<const T*>(norm_k),
              freqs, n_tokens, int(H), float(eps));
        } else {
          throw Error("qk_norm_rope: no v2 instance for " + std::to_string(kE) + " fp32 elements per lane");
        }
      };
      if (E == 2) {
        launch(std::integral_constant<int, 2>());
      } else if (E == 4) {
        launch(std::integral_constant<int, 4>());
      } else {
        launch(std::integral_constant<int, 8>());
      }
    });
    ZIMAGE_CUDA_CHECK_LAUNCH("qk_norm_rope_v2");
    return;
  }
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    qk_norm_rope_v1<T><<<unsigned(blocks), 32 * kWarps, 0, stream>>>(
        static_cast<T*>(q), static_cast<T*>(k), ld, static_cast<const T*>(norm_q), static_cast<const T*>(norm_k),
        freqs, n_tokens, int(H), int(D), float(eps));
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("qk_norm_rope_v1");
}

}  // namespace zimage::gpu

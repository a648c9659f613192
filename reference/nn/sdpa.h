// The math-backend SDPA loop that both models' attention runs (reference/dit/attention.h
// scaled_dot_product_attention, reference/text_encoder/qwen3_modules.h qwen3_sdpa): each names its
// torch function in its // Ref: line and passes its own scale and mask.
#pragma once
#include "core/gemm.h"
#include "nn/common.h"
#include "nn/softmax.h"

namespace zimage {

// q [B, L, H, D], k, v [B, L, G, D] -> [B, L, H, D], G dividing H: query head h reads key/value
// head h / (H / G) (transformers' repeat_kv; G = H for one each). Per (b, h): S = (q_h k^T) * scale,
// the [L, L] scores of one (b, h) at a time per thread; row i a masked softmax over the keys j that
// allowed(b, i, j) keeps (a row with none stays zero: torch >= 2.5's _safe_softmax); out_h = S v.
// Both products are the packed GEMM of core/gemm.h.
template <class T, class Allowed>
Tensor<T> sdpa_math(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v, T scale, Allowed allowed) {
  const int64_t B = q.dim(0), L = q.dim(1), H = q.dim(2), D = q.dim(3), G = k.dim(2), rep = H / G;
  Tensor<T> out(q.shape);
#pragma omp parallel
  {
    MatrixRM<T> S(L, L);
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t g = h / rep, qoff = b * L * H * D + h * D, kvoff = b * L * G * D + g * D;
        gemm_serial<T>(L, L, D, {q.ptr() + qoff, H * D, 1}, {k.ptr() + kvoff, 1, G * D}, S.data(), L);  // q k^T
        S *= scale;
        for (int64_t i = 0; i < L; ++i)
          masked_softmax_row(S.data() + i * L, L, [&](int64_t j) { return allowed(b, i, j); });
        gemm_serial<T>(L, D, L, {S.data(), L, 1}, {v.ptr() + kvoff, G * D, 1}, out.ptr() + qoff, H * D);  // p v
      }
  }
  return out;
}

}  // namespace zimage

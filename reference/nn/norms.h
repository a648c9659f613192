#pragma once
#include "nn/common.h"

namespace zimage {

// Ref: diffusers/models/normalization.py RMSNorm.forward
//   variance = x.float().pow(2).mean(-1); x * rsqrt(variance + eps) * weight
// x [..., C], weight [C] -> [..., C]. Computed in T (fp32 or the fp64 truth).
template <class T>
Tensor<T> rms_norm(const Tensor<T>& x, const Tensor<T>& weight, double eps) {
  if (mutated(Mutation::RmsNormEps1e6)) eps = 1e-6;
  const int64_t C = x.dim(-1), N = x.rows();
  ZIMAGE_CHECK(weight.numel() == C, "rms_norm: weight " + shape_str(weight.shape) + " for width " + std::to_string(C));
  Tensor<T> y(x.shape);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const T* in = x.ptr() + n * C;
    T* out = y.ptr() + n * C;
    T ss = 0;
    for (int64_t c = 0; c < C; ++c) ss += in[c] * in[c];
    const T r = T(1) / std::sqrt(ss / T(C) + T(eps));
    for (int64_t c = 0; c < C; ++c) out[c] = in[c] * r * weight[c];
  }
  return y;
}

// Ref: torch.nn.LayerNorm(C, elementwise_affine=False, eps).forward
// Biased variance. x [..., C] -> [..., C].
template <class T>
Tensor<T> layer_norm(const Tensor<T>& x, double eps) {
  const int64_t C = x.dim(-1), N = x.rows();
  Tensor<T> y(x.shape);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const T* in = x.ptr() + n * C;
    T* out = y.ptr() + n * C;
    T mean = 0;
    for (int64_t c = 0; c < C; ++c) mean += in[c];
    mean /= T(C);
    T var = 0;
    for (int64_t c = 0; c < C; ++c) var += (in[c] - mean) * (in[c] - mean);
    var /= T(C);
    const T r = T(1) / std::sqrt(var + T(eps));
    for (int64_t c = 0; c < C; ++c) out[c] = (in[c] - mean) * r;
  }
  return y;
}

}  // namespace zimage

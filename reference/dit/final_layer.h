#pragma once
#include "nn/linear.h"
#include "nn/norms.h"

namespace zimage {

// FinalLayer's norm_final = LayerNorm(C, eps=1e-6) (the CUDA twin uses this constant too).
inline constexpr double kFinalNormEps = 1e-6;

// FinalLayer parameters: linear Linear(C, p*p*pf*out), adaLN_modulation.1 Linear(A, C).
template <class T>
struct FinalLayerW {
  LinearW<T> linear, adaLN_modulation;
};

// Ref: transformer_z_image.py FinalLayer.forward (noise_mask None)
// x [B, L, C], c [B, A] -> [B, L, P]:
//   linear(norm_final(x) * (1 + adaLN_modulation(c)))
//   norm_final = LayerNorm(C, eps 1e-6, no affine); adaLN_modulation = SiLU, Linear.
template <class T>
Tensor<T> final_layer(const Tensor<T>& x, const Tensor<T>& c, const FinalLayerW<T>& w, Activations<T>* acts = nullptr,
                      const std::string& path = "all_final_layer.2-1") {
  const int64_t B = x.dim(0), L = x.dim(1), C = x.dim(2);
  Tensor<T> cs = c;
  for (auto& v : cs.data) v = silu(v);
  const Tensor<T> scale = linear(cs, w.adaLN_modulation);  // [B, C]
  record(acts, path + ".adaLN_modulation.1", scale);
  record(acts, path + ".adaLN_modulation", scale);
  Tensor<T> h = layer_norm(x, kFinalNormEps);
  record(acts, path + ".norm_final", h);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l)
      for (int64_t k = 0; k < C; ++k) h[(b * L + l) * C + k] *= T(1) + scale[b * C + k];
  Tensor<T> out = linear(h, w.linear);
  record(acts, path + ".linear", out);
  record(acts, path, out);
  return out;
}

}  // namespace zimage

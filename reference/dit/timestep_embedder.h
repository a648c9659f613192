#pragma once
#include "nn/linear.h"
#include "dit/timestep_frequencies.h"

namespace zimage {

// TimestepEmbedder parameters: mlp.0 Linear(256, 1024), mlp.2 Linear(1024, A).
template <class T>
struct TimestepEmbedderW {
  LinearW<T> mlp0, mlp2;
};

// Ref: transformer_z_image.py TimestepEmbedder.timestep_embedding
// t [B] (already multiplied by t_scale) -> [B, dim], cos first, then sin.
//
// diffusers computes freqs and args in fp32 under autocast(enabled=False); we
// keep that as part of the definition: freqs_k = exp(fp32(-ln(max_period)) * k
// / half) and args = t * freqs_k are fp32 values in both paths, and only cos
// and sin are evaluated in T. Args reach ~1000, where an fp32 rounding of the
// argument moves cos by ~6e-5: treating it as "exact" in the fp64 path would
// compare two different functions. See docs/timestep.md.
template <class T>
Tensor<T> timestep_embedding(const Tensor<T>& t, int dim, double max_period = kTimestepMaxPeriod) {
  const int half = dim / 2;
  const int64_t B = t.numel();
  Tensor<T> emb({B, int64_t(dim)});
  const std::vector<float> freqs = timestep_frequencies(dim, max_period);
  const bool sin_first = mutated(Mutation::TimestepSinFirst);
  for (int64_t b = 0; b < B; ++b) {
    const float tb = float(t[b]);
    for (int k = 0; k < half; ++k) {
      const float arg = tb * freqs[size_t(k)];
      const T c = std::cos(T(arg)), s = std::sin(T(arg));
      emb[b * dim + k] = sin_first ? s : c;
      emb[b * dim + half + k] = sin_first ? c : s;
    }
    if (dim % 2) emb[b * dim + dim - 1] = T(0);
  }
  return emb;
}

// Ref: transformer_z_image.py TimestepEmbedder.forward
// t [B] -> [B, A]: mlp.2(silu(mlp.0(timestep_embedding(t, 256)))).
template <class T>
Tensor<T> timestep_embedder(const Tensor<T>& t, const TimestepEmbedderW<T>& w, Activations<T>* acts = nullptr,
                            const std::string& path = "t_embedder") {
  Tensor<T> h = linear(timestep_embedding(t, int(w.mlp0.weight.dim(1))), w.mlp0);
  record(acts, path + ".mlp.0", h);
  for (auto& v : h.data) v = silu(v);
  Tensor<T> out = linear(h, w.mlp2);
  record(acts, path + ".mlp.2", out);
  record(acts, path + ".mlp", out);
  record(acts, path, out);
  return out;
}

}  // namespace zimage

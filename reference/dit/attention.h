#pragma once
#include <limits>

#include "nn/linear.h"
#include "nn/norms.h"
#include "nn/sdpa.h"
#include "dit/rope.h"

namespace zimage {

// Attention(..., eps=1e-5): the q/k RMSNorm's eps, fixed, not the config's norm_eps (the CUDA twin
// uses this constant too).
inline constexpr double kQkNormEps = 1e-5;

// Attention parameters (diffusers Attention with ZSingleStreamAttnProcessor):
// to_q/to_k/to_v/to_out.0 [C, C] without bias; norm_q/norm_k [D] (qk_norm).
template <class T>
struct AttentionW {
  LinearW<T> to_q, to_k, to_v, to_out;
  Tensor<T> norm_q, norm_k;  // empty when qk_norm is false
};

// Ref: torch.nn.functional.scaled_dot_product_attention (math backend),
// boolean key mask broadcast as mask[:, None, None, :].
// q, k, v [B, L, H, D] -> [B, L, H, D]; softmax(q k^T / sqrt(D)) v per (b, h) (nn/sdpa.h).
template <class T>
Tensor<T> scaled_dot_product_attention(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v, const KeyMask* mask) {
  const int64_t L = q.dim(1), D = q.dim(3);
  const T scale = mutated(Mutation::NoAttentionScale) ? T(1) : T(1) / std::sqrt(T(D));
  const int32_t* keep = mask ? mask->ptr() : nullptr;
  return sdpa_math(q, k, v, scale, [keep, L](int64_t b, int64_t, int64_t j) { return !keep || keep[b * L + j] != 0; });
}

// Ref: transformer_z_image.py ZSingleStreamAttnProcessor.__call__
// x [B, L, C], freqs [B, L, D/2, 2] -> [B, L, C]:
//   q,k,v = to_q/k/v(x) as [B, L, H, D]; q,k = norm_q/k (RMSNorm over D, eps 1e-5);
//   rotate q,k (interleaved pairs); sdpa with key mask; to_out.0.
template <class T>
Tensor<T> attention(const Tensor<T>& x, const AttentionW<T>& w, const KeyMask* mask, const Tensor<T>& freqs, int n_heads,
                    Activations<T>* acts = nullptr, const std::string& path = "attention") {
  const int64_t B = x.dim(0), L = x.dim(1), C = x.dim(2), H = n_heads, D = C / H;
  const Shape heads{B, L, H, D};
  Tensor<T> q = linear(x, w.to_q), k = linear(x, w.to_k), v = linear(x, w.to_v);
  record(acts, path + ".to_q", q);
  record(acts, path + ".to_k", k);
  record(acts, path + ".to_v", v);
  q = q.reshaped(heads), k = k.reshaped(heads), v = v.reshaped(heads);
  if (w.norm_q.numel()) {
    q = rms_norm(q, w.norm_q, kQkNormEps);
    k = rms_norm(k, w.norm_k, kQkNormEps);
    record(acts, path + ".norm_q", q);
    record(acts, path + ".norm_k", k);
  }
  apply_rotary_emb(q, freqs);
  apply_rotary_emb(k, freqs);
  Tensor<T> o = scaled_dot_product_attention(q, k, v, mask).reshaped({B, L, C});
  Tensor<T> out = linear(o, w.to_out);
  record(acts, path + ".to_out.0", out);
  record(acts, path, out);
  return out;
}

}  // namespace zimage

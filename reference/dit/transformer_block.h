#pragma once
#include "dit/attention.h"
#include "dit/feed_forward.h"

namespace zimage {

// ZImageTransformerBlock parameters. adaLN_modulation.0 is Linear(A, 4C) and
// exists only in modulated blocks (noise_refiner, layers).
template <class T>
struct TransformerBlockW {
  AttentionW<T> attention;
  FeedForwardW<T> feed_forward;
  Tensor<T> attention_norm1, attention_norm2, ffn_norm1, ffn_norm2;  // [C]
  bool modulation = true;
  LinearW<T> adaLN_modulation;
};

// Broadcast multiply over tokens: x [B, L, C] *= v [B, C] (row b of v).
template <class T>
void mul_rows(Tensor<T>& x, const Tensor<T>& v) {
  const int64_t B = x.dim(0), L = x.dim(1), C = x.dim(2);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l)
      for (int64_t c = 0; c < C; ++c) x[(b * L + l) * C + c] *= v[b * C + c];
}

// x [B, L, C] += gate [B, C] * y [B, L, C]; gate null means 1 (unmodulated).
template <class T>
void add_gated(Tensor<T>& x, const Tensor<T>* gate, const Tensor<T>& y) {
  const int64_t B = x.dim(0), L = x.dim(1), C = x.dim(2);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l)
      for (int64_t c = 0; c < C; ++c) {
        const int64_t i = (b * L + l) * C + c;
        x[i] += gate ? (*gate)[b * C + c] * y[i] : y[i];
      }
}

// Ref: transformer_z_image.py ZImageTransformerBlock.forward (noise_mask None)
// x [B, L, C], mask [B, L] or null, freqs [B, L, D/2, 2], adaln_input [B, A]
// (modulated blocks only) -> [B, L, C]:
//   scale_msa, gate_msa, scale_mlp, gate_mlp = adaLN_modulation(adaln_input).chunk(4)
//   (no SiLU; scales 1 + s, gates tanh(g), no shift)
//   x += gate_msa * attention_norm2(attention(attention_norm1(x) * scale_msa))
//   x += gate_mlp * ffn_norm2(feed_forward(ffn_norm1(x) * scale_mlp))
template <class T>
Tensor<T> transformer_block(const Tensor<T>& x_in, const KeyMask* mask, const Tensor<T>& freqs,
                            const Tensor<T>* adaln_input, const TransformerBlockW<T>& w, int n_heads, double norm_eps,
                            Activations<T>* acts = nullptr, const std::string& path = "block") {
  const int64_t B = x_in.dim(0), C = x_in.dim(2);
  Tensor<T> scale_msa, gate_msa, scale_mlp, gate_mlp;
  if (w.modulation) {
    ZIMAGE_CHECK(adaln_input != nullptr, path + ": modulated block needs adaln_input");
    Tensor<T> a = *adaln_input;
    if (mutated(Mutation::SiluBeforeBlockAdaLN))
      for (auto& v : a.data) v = silu(v);
    const Tensor<T> mod = linear(a, w.adaLN_modulation);  // [B, 4C]
    record(acts, path + ".adaLN_modulation.0", mod);
    record(acts, path + ".adaLN_modulation", mod);
    Tensor<T>* chunks[4] = {&scale_msa, &gate_msa, &scale_mlp, &gate_mlp};
    for (int j = 0; j < 4; ++j) {
      *chunks[j] = Tensor<T>({B, C});
      for (int64_t b = 0; b < B; ++b)
        for (int64_t c = 0; c < C; ++c) (*chunks[j])[b * C + c] = mod[b * 4 * C + j * C + c];
    }
    const T one = mutated(Mutation::ScaleWithoutOne) ? T(0) : T(1);
    for (auto& v : scale_msa.data) v += one;
    for (auto& v : scale_mlp.data) v += one;
    if (!mutated(Mutation::NoGateTanh)) {
      for (auto& v : gate_msa.data) v = std::tanh(v);
      for (auto& v : gate_mlp.data) v = std::tanh(v);
    }
  }
  const Tensor<T>* g_msa = w.modulation ? &gate_msa : nullptr;
  const Tensor<T>* g_mlp = w.modulation ? &gate_mlp : nullptr;

  Tensor<T> x = x_in;
  Tensor<T> h = rms_norm(x, w.attention_norm1, norm_eps);
  record(acts, path + ".attention_norm1", h);
  if (w.modulation) mul_rows(h, scale_msa);
  const Tensor<T> attn = attention(h, w.attention, mask, freqs, n_heads, acts, path + ".attention");
  const Tensor<T> attn_n = rms_norm(attn, w.attention_norm2, norm_eps);
  record(acts, path + ".attention_norm2", attn_n);
  add_gated(x, g_msa, attn_n);

  h = rms_norm(x, w.ffn_norm1, norm_eps);
  record(acts, path + ".ffn_norm1", h);
  if (w.modulation) mul_rows(h, scale_mlp);
  const Tensor<T> ff = feed_forward(h, w.feed_forward, acts, path + ".feed_forward");
  const Tensor<T> ff_n = rms_norm(ff, w.ffn_norm2, norm_eps);
  record(acts, path + ".ffn_norm2", ff_n);
  add_gated(x, g_mlp, ff_n);
  record(acts, path, x);
  return x;
}

}  // namespace zimage

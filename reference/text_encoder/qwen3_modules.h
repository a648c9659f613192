// Qwen3 text encoder modules, one function per transformers module
// (transformers/models/qwen3/modeling_qwen3.py, transformers 5.x). Shape
// letters: B batch, L tokens, C hidden_size, H attention heads, G KV heads
// (H / G query heads share one KV head), D head_dim, F intermediate_size.
// Activations are recorded under transformers' named_modules() paths
// ("layers.3.self_attn.q_norm"). docs/text_encoder.md has the PyTorch lines.
#pragma once
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "nn/linear.h"
#include "nn/norms.h"
#include "nn/sdpa.h"
#include "text_encoder/qwen3_config.h"

namespace zimage {

template <class T>
struct Qwen3AttentionW {
  LinearW<T> q_proj, k_proj, v_proj, o_proj;  // [H*D, C], [G*D, C], [G*D, C], [C, H*D]
  Tensor<T> q_norm, k_norm;                   // [D]
};

template <class T>
struct Qwen3MlpW {
  LinearW<T> gate_proj, up_proj, down_proj;  // [F, C], [F, C], [C, F]
};

template <class T>
struct Qwen3LayerW {
  Tensor<T> input_layernorm, post_attention_layernorm;  // [C]
  Qwen3AttentionW<T> self_attn;
  Qwen3MlpW<T> mlp;
};

// Ref: modeling_qwen3.py Qwen3RMSNorm.forward
//   x.to(float32); variance = x.pow(2).mean(-1); x * rsqrt(variance + eps); weight * x.to(input_dtype)
// x [..., C] -> [..., C]. The variance is taken in T (fp32 or the fp64 truth),
// never below fp32, as transformers does for bf16 inputs.
template <class T>
Tensor<T> qwen3_rms_norm(const Tensor<T>& x, const Tensor<T>& weight, double eps) {
  return rms_norm(x, weight, eps);
}

// Ref: torch.nn.Embedding.forward (Qwen3Model.embed_tokens)
// ids [B, L], weight [V, C] -> [B, L, C]. An id outside [0, V) is an error.
template <class T>
Tensor<T> qwen3_embedding(const Tensor<int32_t>& ids, const Tensor<T>& weight) {
  const int64_t V = weight.dim(0), C = weight.dim(1);
  Tensor<T> out({ids.dim(0), ids.dim(1), C});
  for (int64_t n = 0; n < ids.numel(); ++n) {
    ZIMAGE_CHECK(ids[n] >= 0 && ids[n] < V, "embed_tokens: token id " + std::to_string(ids[n]) + " at flat index " +
                                                std::to_string(n) + " is outside the vocabulary of " + std::to_string(V));
    std::copy(weight.ptr() + ids[n] * C, weight.ptr() + (ids[n] + 1) * C, out.ptr() + n * C);
  }
  return out;
}

// The fp32 RoPE angles transformers uses: inv_freq = 1 / theta^(arange(0, D, 2) / D)
// computed in fp32 (Qwen3RotaryEmbedding.compute_default_rope_parameters),
// angle[p, k] = fp32(p * inv_freq[k]) (the fp32 matmul with K = 1). [L, D/2].
inline Tensor<float> qwen3_rope_angles(int D, int64_t L, double theta) {
  Tensor<float> a({L, int64_t(D / 2)});
  for (int k = 0; k < D / 2; ++k) {
    const float e = float(2 * k) / float(D);
    const float inv = 1.0f / std::pow(float(theta), e);
    for (int64_t p = 0; p < L; ++p) a[p * (D / 2) + k] = float(p) * inv;
  }
  return a;
}

// Ref: modeling_qwen3.py Qwen3RotaryEmbedding.forward with position_ids = arange(L)
// (Qwen3Model.forward: positions do not skip padding, left or right).
// -> cos, sin [L, D]: emb = cat(freqs, freqs), cos/sin evaluated in T.
template <class T>
std::pair<Tensor<T>, Tensor<T>> qwen3_rotary_embedding(const Qwen3Config& cfg, int64_t L) {
  const int D = cfg.head_dim, half = D / 2;
  const Tensor<float> a = qwen3_rope_angles(D, L, cfg.rope_theta);
  Tensor<T> cos({L, int64_t(D)}), sin({L, int64_t(D)});
  for (int64_t p = 0; p < L; ++p)
    for (int k = 0; k < half; ++k) {
      const T c = std::cos(T(a[p * half + k])), s = std::sin(T(a[p * half + k]));
      cos[p * D + k] = cos[p * D + k + half] = c;
      sin[p * D + k] = sin[p * D + k + half] = s;
    }
  return {cos, sin};
}

// Ref: modeling_qwen3.py apply_rotary_pos_emb / rotate_half
//   x * cos + cat(-x2, x1) * sin, x1 = x[..., :D/2], x2 = x[..., D/2:]
// x [B, L, H, D] rotated in place; cos, sin [L, D] shared by batch and heads.
// The pairs are (x[k], x[k + D/2]): the half-split layout, not the DiT's
// interleaved pairs (Mutation::TextRopeInterleaved injects that bug).
template <class T>
void qwen3_apply_rotary_pos_emb(Tensor<T>& x, const Tensor<T>& cos, const Tensor<T>& sin) {
  const int64_t B = x.dim(0), L = x.dim(1), H = x.dim(2), D = x.dim(3), half = D / 2;
  ZIMAGE_CHECK(cos.dim(0) >= L && cos.dim(1) == D, "apply_rotary_pos_emb: cos " + shape_str(cos.shape) + " for x " + shape_str(x.shape));
  const bool interleaved = mutated(Mutation::TextRopeInterleaved);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l) {
      const T* c = cos.ptr() + l * D;
      const T* s = sin.ptr() + l * D;
      for (int64_t h = 0; h < H; ++h) {
        T* v = x.ptr() + ((b * L + l) * H + h) * D;
        for (int64_t k = 0; k < half; ++k) {
          const int64_t i1 = interleaved ? 2 * k : k, i2 = interleaved ? 2 * k + 1 : k + half;
          const T x1 = v[i1], x2 = v[i2];
          v[i1] = x1 * c[k] - x2 * s[k];
          v[i2] = x2 * c[k + half] + x1 * s[k + half];
        }
      }
    }
}

// Ref: torch.nn.functional.scaled_dot_product_attention (math backend) as
// transformers' sdpa_attention_forward calls it for Qwen3: GQA (query head h
// reads KV head h / (H / G), repeat_kv), scale D^-0.5, boolean mask
// allowed(b, i, j) = j <= i (causal) and pad_mask[b, j] (create_causal_mask).
// A query whose keys are all masked (a left-pad row) gets a zero output, as
// torch >= 2.5's math backend (_safe_softmax) gives it.
// q [B, L, H, D], k, v [B, L, G, D], pad_mask [B, L] (1 = real token) -> [B, L, H, D].
template <class T>
Tensor<T> qwen3_sdpa(const Tensor<T>& q, const Tensor<T>& k, const Tensor<T>& v, const Tensor<int32_t>& pad_mask) {
  const int64_t L = q.dim(1), D = q.dim(3);
  const bool causal = !mutated(Mutation::TextNoCausalMask);
  const int32_t* pad = pad_mask.ptr();
  return sdpa_math(q, k, v, T(1) / std::sqrt(T(D)), [=](int64_t b, int64_t i, int64_t j) {
    return (!causal || j <= i) && pad[b * L + j] != 0;
  });
}

// Ref: modeling_qwen3.py Qwen3Attention.forward
//   q = q_norm(q_proj(x).view(B, L, H, D)); k = k_norm(k_proj(x).view(B, L, G, D)); v = v_proj(x)
//   q, k = apply_rotary_pos_emb(q, k, cos, sin); o = sdpa(q, k, v, causal + padding mask); o_proj(o)
// x [B, L, C] -> [B, L, C]. q_norm / k_norm: RMSNorm over D with rms_norm_eps.
template <class T>
Tensor<T> qwen3_attention(const Tensor<T>& x, const Qwen3AttentionW<T>& w, const Tensor<int32_t>& pad_mask,
                          const Tensor<T>& cos, const Tensor<T>& sin, const Qwen3Config& cfg,
                          Activations<T>* acts = nullptr, const std::string& path = "self_attn") {
  const int64_t B = x.dim(0), L = x.dim(1), H = cfg.num_attention_heads, G = cfg.num_key_value_heads, D = cfg.head_dim;
  Tensor<T> q = linear(x, w.q_proj), k = linear(x, w.k_proj), v = linear(x, w.v_proj);
  record(acts, path + ".q_proj", q);
  record(acts, path + ".k_proj", k);
  record(acts, path + ".v_proj", v);
  q = qwen3_rms_norm(q.reshaped({B, L, H, D}), w.q_norm, cfg.rms_norm_eps);
  k = qwen3_rms_norm(k.reshaped({B, L, G, D}), w.k_norm, cfg.rms_norm_eps);
  v = v.reshaped({B, L, G, D});
  record(acts, path + ".q_norm", q);
  record(acts, path + ".k_norm", k);
  qwen3_apply_rotary_pos_emb(q, cos, sin);
  qwen3_apply_rotary_pos_emb(k, cos, sin);
  const Tensor<T> o = qwen3_sdpa(q, k, v, pad_mask).reshaped({B, L, H * D});
  Tensor<T> out = linear(o, w.o_proj);
  record(acts, path + ".o_proj", out);
  record(acts, path, out);
  return out;
}

// Ref: modeling_qwen3.py Qwen3MLP.forward
//   down_proj(silu(gate_proj(x)) * up_proj(x)); x [..., C] -> [..., C]
template <class T>
Tensor<T> qwen3_mlp(const Tensor<T>& x, const Qwen3MlpW<T>& w, Activations<T>* acts = nullptr,
                    const std::string& path = "mlp") {
  Tensor<T> g = linear(x, w.gate_proj);
  const Tensor<T> u = linear(x, w.up_proj);
  record(acts, path + ".gate_proj", g);
  record(acts, path + ".up_proj", u);
  silu_(g.ptr(), g.numel(), u.ptr());
  Tensor<T> out = linear(g, w.down_proj);
  record(acts, path + ".down_proj", out);
  record(acts, path, out);
  return out;
}

// Ref: modeling_qwen3.py Qwen3DecoderLayer.forward
//   h = x + self_attn(input_layernorm(x)); h + mlp(post_attention_layernorm(h))
// x [B, L, C] -> [B, L, C].
template <class T>
Tensor<T> qwen3_decoder_layer(const Tensor<T>& x, const Qwen3LayerW<T>& w, const Tensor<int32_t>& pad_mask,
                              const Tensor<T>& cos, const Tensor<T>& sin, const Qwen3Config& cfg,
                              Activations<T>* acts = nullptr, const std::string& path = "layers.0") {
  const Tensor<T> n1 = qwen3_rms_norm(x, w.input_layernorm, cfg.rms_norm_eps);
  record(acts, path + ".input_layernorm", n1);
  Tensor<T> h = qwen3_attention(n1, w.self_attn, pad_mask, cos, sin, cfg, acts, path + ".self_attn");
  for (int64_t i = 0; i < h.numel(); ++i) h[i] += x[i];
  const Tensor<T> n2 = qwen3_rms_norm(h, w.post_attention_layernorm, cfg.rms_norm_eps);
  record(acts, path + ".post_attention_layernorm", n2);
  Tensor<T> out = qwen3_mlp(n2, w.mlp, acts, path + ".mlp");
  for (int64_t i = 0; i < out.numel(); ++i) out[i] += h[i];
  record(acts, path, out);
  return out;
}

}  // namespace zimage

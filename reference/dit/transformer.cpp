#include "dit/transformer.h"

#include "dit/rope_limits.h"
#include "dit/model_folder.h"

#include <functional>
#include <type_traits>

namespace zimage {

namespace {

template <class T>
Tensor<T> param(const ParamSource& src, const std::string& name) {
  if constexpr (std::is_same_v<T, float>)
    return src.load_float(name);  // bitwise load(name).cast<float>(), without the double copy
  else
    return src.load(name).template cast<T>();
}

template <class T>
std::vector<Tensor<T>> split_rows(const Tensor<T>& x, const std::vector<Tensor<T>>& like) {
  std::vector<Tensor<T>> out;
  int64_t off = 0;
  const int64_t w = x.dim(1);
  for (const auto& l : like) {
    const int64_t n = l.dim(0);
    out.emplace_back(Shape{n, w}, std::vector<T>(x.data.begin() + off * w, x.data.begin() + (off + n) * w));
    off += n;
  }
  return out;
}

template <class T>
Tensor<T> as_t(const Tensor<int32_t>& ids) { return ids.template cast<T>(); }

}  // namespace

template <class T>
LinearW<T> load_linear(const ParamSource& src, const std::string& prefix, bool bias) {
  LinearW<T> l;
  l.weight = param<T>(src, prefix + ".weight");
  if (bias) l.bias = param<T>(src, prefix + ".bias");
  return l;
}

template <class T>
TransformerBlockW<T> load_block(const ParamSource& src, const std::string& p, bool modulation, bool qk_norm) {
  TransformerBlockW<T> b;
  b.attention.to_q = load_linear<T>(src, p + ".attention.to_q", false);
  b.attention.to_k = load_linear<T>(src, p + ".attention.to_k", false);
  b.attention.to_v = load_linear<T>(src, p + ".attention.to_v", false);
  b.attention.to_out = load_linear<T>(src, p + ".attention.to_out.0", false);
  if (qk_norm) {
    b.attention.norm_q = param<T>(src, p + ".attention.norm_q.weight");
    b.attention.norm_k = param<T>(src, p + ".attention.norm_k.weight");
  }
  b.feed_forward.w1 = load_linear<T>(src, p + ".feed_forward.w1", false);
  b.feed_forward.w2 = load_linear<T>(src, p + ".feed_forward.w2", false);
  b.feed_forward.w3 = load_linear<T>(src, p + ".feed_forward.w3", false);
  b.attention_norm1 = param<T>(src, p + ".attention_norm1.weight");
  b.attention_norm2 = param<T>(src, p + ".attention_norm2.weight");
  b.ffn_norm1 = param<T>(src, p + ".ffn_norm1.weight");
  b.ffn_norm2 = param<T>(src, p + ".ffn_norm2.weight");
  b.modulation = modulation;
  if (modulation) b.adaLN_modulation = load_linear<T>(src, p + ".adaLN_modulation.0", true);
  return b;
}

template <class T>
TimestepEmbedderW<T> load_timestep_embedder(const ParamSource& src, const std::string& p) {
  return {load_linear<T>(src, p + ".mlp.0", true), load_linear<T>(src, p + ".mlp.2", true)};
}

template <class T>
FinalLayerW<T> load_final_layer(const ParamSource& src, const std::string& p) {
  return {load_linear<T>(src, p + ".linear", true), load_linear<T>(src, p + ".adaLN_modulation.1", true)};
}

template <class T>
ZImageWeights<T> load_shared_weights(const ZImageConfig& cfg, const ParamSource& src) {
  ZImageWeights<T> w;
  w.config = cfg;
  const std::string key = cfg.embedder_key();
  w.t_embedder = load_timestep_embedder<T>(src, "t_embedder");
  w.cap_embedder_norm = param<T>(src, "cap_embedder.0.weight");
  w.cap_embedder_linear = load_linear<T>(src, "cap_embedder.1", true);
  w.x_embedder = load_linear<T>(src, "all_x_embedder." + key, true);
  w.final_layer = load_final_layer<T>(src, "all_final_layer." + key);
  w.x_pad_token = param<T>(src, "x_pad_token");
  w.cap_pad_token = param<T>(src, "cap_pad_token");
  return w;
}

template <class T>
ZImageWeights<T> load_weights(const ZImageConfig& cfg, const ParamSource& src) {
  check_complete(src, expected_parameter_shapes(cfg));
  ZImageWeights<T> w = load_shared_weights<T>(cfg, src);
  for (int i = 0; i < cfg.n_refiner_layers; ++i) {
    w.noise_refiner.push_back(load_block<T>(src, "noise_refiner." + std::to_string(i), true, cfg.qk_norm));
    w.context_refiner.push_back(load_block<T>(src, "context_refiner." + std::to_string(i), false, cfg.qk_norm));
  }
  for (int i = 0; i < cfg.n_layers; ++i)
    w.layers.push_back(load_block<T>(src, "layers." + std::to_string(i), true, cfg.qk_norm));
  return w;
}

void check_dit_inputs(const ZImageConfig& cfg, const std::vector<Shape>& x, const std::vector<Shape>& cap, const Shape& t,
                      bool rope_extend, bool captions_scaled) {
  ZIMAGE_CHECK(!x.empty(), "inputs: no x.0 tensor");
  ZIMAGE_CHECK(x.size() == cap.size(), "inputs: " + std::to_string(x.size()) + " x.{i} tensors but " +
                                           std::to_string(cap.size()) + " cap_feats.{i} tensors");
  ZIMAGE_CHECK(t.size() == 1 && t[0] == int64_t(x.size()),
               "inputs: t has shape " + shape_str(t) + ", expected [" + std::to_string(x.size()) + "]");
  const int p = cfg.patch_size(), pf = cfg.f_patch_size();
  for (size_t i = 0; i < x.size(); ++i) {
    const std::string xi = "x." + std::to_string(i), ci = "cap_feats." + std::to_string(i);
    ZIMAGE_CHECK(x[i].size() == 4 && x[i][0] == cfg.in_channels,
                 "inputs: " + xi + " has shape " + shape_str(x[i]) + ", expected [" + std::to_string(cfg.in_channels) +
                     ", F, H, W]");
    ZIMAGE_CHECK(x[i][1] > 0 && x[i][2] > 0 && x[i][3] > 0 && x[i][1] % pf == 0 && x[i][2] % p == 0 && x[i][3] % p == 0,
                 "inputs: " + xi + " has shape " + shape_str(x[i]) + ": F must be a positive multiple of f_patch_size " +
                     std::to_string(pf) + " and H, W positive multiples of patch_size " + std::to_string(p));
    ZIMAGE_CHECK(cap[i].size() == 2 && cap[i][0] > 0 && cap[i][1] == cfg.cap_feat_dim,
                 "inputs: " + ci + " has shape " + shape_str(cap[i]) + ", expected [L > 0, cap_feat_dim " +
                     std::to_string(cfg.cap_feat_dim) + "]");
  }
  if (!rope_extend)
    for (size_t i = 0; i < x.size(); ++i)
      check_rope_positions(cfg, captions_scaled ? std::min(cap[i][0], rope_limits(cfg).max_caption) : cap[i][0], x[i], i);
}

void check_dit_inputs(const ZImageConfig& cfg, const std::vector<Shape>& x, const std::vector<Shape>& cap, const Shape& t,
                      const ForwardOptions& opts) {
  check_dit_inputs(cfg, x, cap, t, opts.extends_tables(), opts.scales_captions());
}

std::vector<int> rope_table_lens(const ZImageConfig& cfg, const std::vector<Shape>& x, const std::vector<Shape>& cap,
                                 bool rope_extend) {
  std::vector<int> lens = cfg.axes_lens;
  if (!rope_extend) return lens;
  for (size_t i = 0; i < x.size(); ++i) {
    const auto need = rope_rows_needed(cfg, cap[i][0], x[i]);
    for (size_t a = 0; a < 3; ++a) lens[a] = std::max(lens[a], int(need[a]));
  }
  return lens;
}

template <class T>
Tensor<T> cap_embedder(const Tensor<T>& cap, const ZImageWeights<T>& w, Activations<T>* acts) {
  const Tensor<T> n = rms_norm(cap, w.cap_embedder_norm, w.config.norm_eps);
  record(acts, "cap_embedder.0", n);
  Tensor<T> out = linear(n, w.cap_embedder_linear);
  record(acts, "cap_embedder.1", out);
  record(acts, "cap_embedder", out);
  return out;
}

namespace {

// The blocks of one forward, by stack ("noise_refiner", "context_refiner",
// "layers") and index: from memory, or loaded when the forward reaches them.
template <class T>
struct BlockSource {
  int n_noise = 0, n_context = 0, n_layers = 0;
  std::function<const TransformerBlockW<T>&(const std::string& stack, int i)> get;
};

// The forward itself, shared by zimage_forward and zimage_forward_streaming:
// one body, so the two are the same computation (bitwise, tested).
template <class T>
std::vector<Tensor<T>> forward_impl(const ZImageWeights<T>& w, const BlockSource<T>& blocks, const DitInputs<T>& in,
                                    Activations<T>* acts, const ForwardOptions& opts) {
  const ZImageConfig& cfg = w.config;
  std::vector<Shape> x_shapes, cap_shapes;
  for (const auto& x : in.x) x_shapes.push_back(x.shape);
  for (const auto& c : in.cap_feats) cap_shapes.push_back(c.shape);
  check_dit_inputs(cfg, x_shapes, cap_shapes, in.t.shape, opts);
  const int p = cfg.patch_size(), pf = cfg.f_patch_size();
  const std::string key = cfg.embedder_key();

  // t_embedder(t * t_scale)
  Tensor<T> t = in.t;
  const double t_scale = mutated(Mutation::TScaleOne) ? 1.0 : cfg.t_scale;
  for (auto& v : t.data) v = T(v * T(t_scale));
  const Tensor<T> adaln_input = timestep_embedder(t, w.t_embedder, acts, "t_embedder");

  Patchified<T> pt = patchify_and_embed(in.x, in.cap_feats, p, pf);
  if (acts)
    for (size_t i = 0; i < pt.x.size(); ++i) {
      const std::string s = "." + std::to_string(i);
      record(acts, "patchify.x" + s, pt.x[i]);
      record(acts, "patchify.cap_feats" + s, pt.cap[i]);
      record(acts, "patchify.x_pos_ids" + s, as_t<T>(pt.x_pos_ids[i]));
      record(acts, "patchify.cap_pos_ids" + s, as_t<T>(pt.cap_pos_ids[i]));
      record(acts, "patchify.x_pad_mask" + s, as_t<T>(pt.x_pad_mask[i]));
      record(acts, "patchify.cap_pad_mask" + s, as_t<T>(pt.cap_pad_mask[i]));
      record(acts, "patchify.x_size" + s, Tensor<T>({3}, {T(pt.x_size[i][0]), T(pt.x_size[i][1]), T(pt.x_size[i][2])}));
    }

  const std::vector<Tensor<T>> tables =
      precompute_freqs_cis<T>(cfg.axes_dims, rope_table_lens(cfg, x_shapes, cap_shapes, opts.extends_tables()), cfg.rope_theta);
  // --rope-scaling linear|ntk: items whose caption pads past the limit get their RoPE from the
  // formula (dit/dit_knobs.h); the others gather from the tables as always.
  std::vector<Tensor<T>> x_freqs, cap_freqs;
  bool scaled = false;
  if (opts.scales_captions())
    for (size_t i = 0; i < pt.x.size(); ++i) {
      const RopeItemScaling sc = rope_item_scaling(cfg, opts.rope_scaling, pt.cap[i].dim(0));
      scaled = scaled || sc.active;
      x_freqs.push_back(sc.active ? rope_freqs_scaled<T>(cfg.axes_dims, sc, pt.x_pos_ids[i], false)
                                  : rope_embedder(tables, pt.x_pos_ids[i]));
      cap_freqs.push_back(sc.active ? rope_freqs_scaled<T>(cfg.axes_dims, sc, pt.cap_pos_ids[i], true)
                                    : rope_embedder(tables, pt.cap_pos_ids[i]));
    }
  for (size_t a = 0; a < tables.size() && acts; ++a) record(acts, "rope_embedder.freqs_cis." + std::to_string(a), tables[a]);

  // Image tokens: embed, pad tokens, noise_refiner.
  const Tensor<T> x_emb = linear(cat_rows(pt.x), w.x_embedder);
  record(acts, "all_x_embedder." + key, x_emb);
  Sequence<T> x = prepare_sequence(split_rows(x_emb, pt.x), pt.x_pos_ids, pt.x_pad_mask, w.x_pad_token, tables, acts,
                                   "rope_embedder.x", scaled ? &x_freqs : nullptr);
  for (int i = 0; i < blocks.n_noise; ++i)
    x.feats = transformer_block(x.feats, x.mask_ptr(), x.freqs, &adaln_input, blocks.get("noise_refiner", i), cfg.n_heads,
                                cfg.norm_eps, acts, "noise_refiner." + std::to_string(i));

  // Caption tokens: embed, pad tokens, context_refiner.
  const Tensor<T> cap_emb = cap_embedder(cat_rows(pt.cap), w, acts);
  Sequence<T> cap = prepare_sequence(split_rows(cap_emb, pt.cap), pt.cap_pos_ids, pt.cap_pad_mask, w.cap_pad_token,
                                     tables, acts, "rope_embedder.cap", scaled ? &cap_freqs : nullptr);
  const int n_context = opts.skip_context_refiner ? 0 : blocks.n_context;
  for (int i = 0; i < n_context; ++i)
    cap.feats = transformer_block(cap.feats, cap.mask_ptr(), cap.freqs, static_cast<const Tensor<T>*>(nullptr),
                                  blocks.get("context_refiner", i), cfg.n_heads, cfg.norm_eps, acts,
                                  "context_refiner." + std::to_string(i));

  // [image, caption] through the main layers, then the final layer.
  Sequence<T> u = build_unified_sequence(x, cap);
  for (int i = 0; i < blocks.n_layers; ++i)
    u.feats = transformer_block(u.feats, u.mask_ptr(), u.freqs, &adaln_input, blocks.get("layers", i), cfg.n_heads, cfg.norm_eps,
                                acts, "layers." + std::to_string(i));
  const Tensor<T> out = final_layer(u.feats, adaln_input, w.final_layer, acts, "all_final_layer." + key);

  std::vector<Tensor<T>> samples;
  const int64_t L = out.dim(1), P = out.dim(2);
  for (size_t b = 0; b < in.x.size(); ++b) {
    const Tensor<T> item({L, P}, std::vector<T>(out.data.begin() + int64_t(b) * L * P, out.data.begin() + int64_t(b + 1) * L * P));
    samples.push_back(unpatchify(item, pt.x_size[b], p, pf, cfg.in_channels));
    record(acts, "sample." + std::to_string(b), samples.back());
  }
  return samples;
}

}  // namespace

template <class T>
std::vector<Tensor<T>> zimage_forward(const ZImageWeights<T>& w, const DitInputs<T>& in, Activations<T>* acts,
                                      const ForwardOptions& opts) {
  BlockSource<T> blocks;
  blocks.n_noise = int(w.noise_refiner.size());
  blocks.n_context = int(w.context_refiner.size());
  blocks.n_layers = int(w.layers.size());
  blocks.get = [&w](const std::string& stack, int i) -> const TransformerBlockW<T>& {
    const auto& v = stack == "noise_refiner" ? w.noise_refiner : stack == "context_refiner" ? w.context_refiner : w.layers;
    return v[size_t(i)];
  };
  return forward_impl(w, blocks, in, acts, opts);
}

template <class T>
std::vector<Tensor<T>> zimage_forward_streaming(const ZImageConfig& cfg, const ParamSource& src, const DitInputs<T>& in,
                                                Activations<T>* acts, const ForwardOptions& opts,
                                                const std::function<void(const std::string&)>& on_block) {
  check_complete(src, expected_parameter_shapes(cfg));
  const ZImageWeights<T> w = load_shared_weights<T>(cfg, src);
  TransformerBlockW<T> held;  // the one block in memory
  BlockSource<T> blocks;
  blocks.n_noise = blocks.n_context = cfg.n_refiner_layers;
  blocks.n_layers = cfg.n_layers;
  blocks.get = [&](const std::string& stack, int i) -> const TransformerBlockW<T>& {
    const std::string path = stack + "." + std::to_string(i);
    held = TransformerBlockW<T>{};  // free the previous block before loading the next
    held = load_block<T>(src, path, stack != "context_refiner", cfg.qk_norm);
    if (on_block) on_block(path);
    return held;
  };
  return forward_impl(w, blocks, in, acts, opts);
}

#define ZIMAGE_INSTANTIATE(T)                                                                                   \
  template ZImageWeights<T> load_weights<T>(const ZImageConfig&, const ParamSource&);                           \
  template ZImageWeights<T> load_shared_weights<T>(const ZImageConfig&, const ParamSource&);                    \
  template std::vector<Tensor<T>> zimage_forward_streaming<T>(const ZImageConfig&, const ParamSource&,          \
                                                              const DitInputs<T>&, Activations<T>*,             \
                                                              const ForwardOptions&,                            \
                                                              const std::function<void(const std::string&)>&);  \
  template LinearW<T> load_linear<T>(const ParamSource&, const std::string&, bool);                            \
  template TransformerBlockW<T> load_block<T>(const ParamSource&, const std::string&, bool, bool);             \
  template TimestepEmbedderW<T> load_timestep_embedder<T>(const ParamSource&, const std::string&);              \
  template FinalLayerW<T> load_final_layer<T>(const ParamSource&, const std::string&);                         \
  template Tensor<T> cap_embedder<T>(const Tensor<T>&, const ZImageWeights<T>&, Activations<T>*);              \
  template std::vector<Tensor<T>> zimage_forward<T>(const ZImageWeights<T>&, const DitInputs<T>&, Activations<T>*,       \
                                                    const ForwardOptions&);
ZIMAGE_INSTANTIATE(float)
ZIMAGE_INSTANTIATE(double)
#undef ZIMAGE_INSTANTIATE

}  // namespace zimage

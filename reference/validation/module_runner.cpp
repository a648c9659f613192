#include "validation/module_runner.h"

#include <regex>

#include "dit/transformer.h"

namespace zimage {

namespace {

template <class T>
struct Inputs {
  const GoldenFile& g;
  std::string path;
  bool has(const std::string& arg) const { return g.has(path + ":in." + arg); }
  Tensor<T> get(const std::string& arg) const { return g.get<T>(path + ":in." + arg); }
  std::optional<KeyMask> mask(const std::string& arg) const {
    if (!has(arg)) return std::nullopt;
    return g.get<int32_t>(path + ":in." + arg);
  }
};

// The [N, D/2, 2] freqs of a golden flattened back to [B, L, D/2, 2] works as is.
template <class T>
std::optional<Tensor<T>> run(const GoldenFile& g, const std::string& path) {
  const ZImageConfig& cfg = g.config;
  const ParamSource& src = *g.params;
  const Inputs<T> in{g, path};
  std::smatch m;
  static const std::regex block_re(R"(^((noise_refiner|context_refiner|layers)\.\d+)(\.(.*))?$)");
  static const std::regex final_re(R"(^(all_final_layer\.\d+-\d+)(\.(.*))?$)");
  static const std::regex rope_re(R"(^rope_embedder\.(x|cap)$)");
  static const std::regex table_re(R"(^rope_embedder\.freqs_cis\.(\d+)$)");

  if (std::regex_match(path, m, table_re)) {
    const auto tables = precompute_freqs_cis<T>(cfg.axes_dims, cfg.axes_lens, cfg.rope_theta);
    return tables.at(size_t(std::stoi(m[1])));
  }
  if (std::regex_match(path, m, rope_re)) {
    if (!in.has("ids")) return std::nullopt;
    const auto tables = precompute_freqs_cis<T>(cfg.axes_dims, cfg.axes_lens, cfg.rope_theta);
    return rope_embedder(tables, g.get<int32_t>(path + ":in.ids"));
  }
  if (std::regex_match(path, m, block_re)) {
    const std::string block = m[1], sub = m[4];
    const bool modulated = m[2] != "context_refiner";
    if (sub.empty()) {
      if (!in.has("x")) return std::nullopt;
      const TransformerBlockW<T> w = load_block<T>(src, block, modulated, cfg.qk_norm);
      const auto mask = in.mask("attn_mask");
      const std::optional<Tensor<T>> adaln = in.has("adaln_input") ? std::optional(in.get("adaln_input")) : std::nullopt;
      return transformer_block(in.get("x"), mask ? &*mask : nullptr, in.get("freqs_cis"), adaln ? &*adaln : nullptr, w,
                               cfg.n_heads, cfg.norm_eps);
    }
    if (sub == "attention") {
      if (!in.has("hidden_states")) return std::nullopt;
      const TransformerBlockW<T> w = load_block<T>(src, block, modulated, cfg.qk_norm);
      const auto mask = in.mask("attention_mask");
      return attention(in.get("hidden_states"), w.attention, mask ? &*mask : nullptr, in.get("freqs_cis"), cfg.n_heads);
    }
    if (sub == "feed_forward") {
      if (!in.has("x")) return std::nullopt;
      FeedForwardW<T> w{load_linear<T>(src, block + ".feed_forward.w1", false),
                        load_linear<T>(src, block + ".feed_forward.w2", false),
                        load_linear<T>(src, block + ".feed_forward.w3", false)};
      return feed_forward(in.get("x"), w);
    }
    if (sub == "attention.norm_q" || sub == "attention.norm_k") {
      if (!in.has("hidden_states")) return std::nullopt;
      return rms_norm(in.get("hidden_states"), src.load(path + ".weight").cast<T>(), 1e-5);
    }
    if (sub == "attention_norm1" || sub == "attention_norm2" || sub == "ffn_norm1" || sub == "ffn_norm2") {
      if (!in.has("hidden_states")) return std::nullopt;
      return rms_norm(in.get("hidden_states"), src.load(path + ".weight").cast<T>(), cfg.norm_eps);
    }
    if (sub == "adaLN_modulation" || sub == "adaLN_modulation.0") {
      if (!in.has("input")) return std::nullopt;
      Tensor<T> a = in.get("input");
      if (mutated(Mutation::SiluBeforeBlockAdaLN))
        for (auto& v : a.data) v = silu(v);
      return linear(a, load_linear<T>(src, block + ".adaLN_modulation.0", true));
    }
    if (sub == "attention.to_q" || sub == "attention.to_k" || sub == "attention.to_v" || sub == "attention.to_out.0" ||
        sub == "feed_forward.w1" || sub == "feed_forward.w2" || sub == "feed_forward.w3") {
      if (!in.has("input")) return std::nullopt;
      return linear(in.get("input"), load_linear<T>(src, path, false));
    }
  } else if (std::regex_match(path, m, final_re)) {
    const std::string layer = m[1], sub = m[3];
    if (sub.empty()) {
      if (!in.has("x")) return std::nullopt;
      return final_layer(in.get("x"), in.get("c"), load_final_layer<T>(src, layer));
    }
    if (sub == "norm_final") {
      if (!in.has("input")) return std::nullopt;
      return layer_norm(in.get("input"), 1e-6);
    }
    if (sub == "linear" || sub == "adaLN_modulation.1") {
      if (!in.has("input")) return std::nullopt;
      return linear(in.get("input"), load_linear<T>(src, path, true));
    }
    if (sub == "adaLN_modulation") {
      if (!in.has("input")) return std::nullopt;
      Tensor<T> c = in.get("input");
      for (auto& v : c.data) v = silu(v);
      return linear(c, load_linear<T>(src, layer + ".adaLN_modulation.1", true));
    }
  } else if (path == "t_embedder") {
    if (!in.has("t")) return std::nullopt;
    return timestep_embedder(in.get("t"), load_timestep_embedder<T>(src, "t_embedder"));
  } else if (path == "t_embedder.mlp") {
    if (!in.has("input")) return std::nullopt;
    const TimestepEmbedderW<T> w = load_timestep_embedder<T>(src, "t_embedder");
    Tensor<T> h = linear(in.get("input"), w.mlp0);
    for (auto& v : h.data) v = silu(v);
    return linear(h, w.mlp2);
  } else if (path == "t_embedder.mlp.0" || path == "t_embedder.mlp.2" || path == "cap_embedder.1" ||
             path.rfind("all_x_embedder.", 0) == 0) {
    if (!in.has("input")) return std::nullopt;
    return linear(in.get("input"), load_linear<T>(src, path, true));
  } else if (path == "cap_embedder.0") {
    if (!in.has("hidden_states")) return std::nullopt;
    return rms_norm(in.get("hidden_states"), src.load("cap_embedder.0.weight").cast<T>(), cfg.norm_eps);
  } else if (path == "cap_embedder") {
    if (!in.has("input")) return std::nullopt;
    const Tensor<T> n = rms_norm(in.get("input"), src.load("cap_embedder.0.weight").cast<T>(), cfg.norm_eps);
    return linear(n, load_linear<T>(src, "cap_embedder.1", true));
  } else if (path.rfind("patchify.", 0) == 0 || path.rfind("sample.", 0) == 0 || path.rfind("x.", 0) == 0 ||
             path.rfind("cap_feats.", 0) == 0 || path == "t") {
    return std::nullopt;  // model-level tensors: compared by the whole-model run
  }
  throw Error(g.path + ": no reference module for golden tensor '" + path + "'");
}

}  // namespace

template <class T>
std::optional<Tensor<T>> run_module(const GoldenFile& g, const std::string& path) {
  return run<T>(g, path);
}

int64_t module_seq_len(const GoldenFile& g, const std::string& path) {
  for (const char* arg : {"x", "hidden_states"}) {
    const std::string name = path + ":in." + arg;
    if (g.has(name)) {
      const auto& v = g.file->view(name);
      if (v.shape.size() >= 3) return v.shape[1];
    }
  }
  std::string p = path;  // submodules of a block: use the block's input
  for (size_t dot; (dot = p.rfind('.')) != std::string::npos;) {
    p = p.substr(0, dot);
    if (g.has(p + ":in.x") && g.file->view(p + ":in.x").shape.size() == 3) return g.file->view(p + ":in.x").shape[1];
  }
  return 1;
}

template std::optional<Tensor<float>> run_module<float>(const GoldenFile&, const std::string&);
template std::optional<Tensor<double>> run_module<double>(const GoldenFile&, const std::string&);

}  // namespace zimage

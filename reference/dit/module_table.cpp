// Ref: transformer_z_image.py ZImageTransformer2DModel and its submodules (the
// paths are its named_modules()); budgets: docs/tolerances.md.
#include "dit/module_table.h"

#include <regex>
#include <type_traits>

#include "dit/transformer.h"
#include "numerics/module_row.h"
#include "numerics/op_chain.h"

namespace zimage {

namespace {

using namespace numerics;

// ---------------------------------------------------------------- op chains

Ops timestep_embedding_ops() { return {{"timestep_embedding(cos,sin)", 1, 1, true}}; }
Ops t_embedder_ops() {
  Ops o = timestep_embedding_ops();
  append(o, {linear_op(T_FREQ_DIM), silu_op(), linear_op(T_EMBED_MID)});
  return o;
}
Op rope_op() { return {"rope", 2, 2, false}; }
Op cos_sin_op() { return {"cos/sin of an fp32 angle", 1, 1, true}; }
Ops attention_ops(const ZImageConfig& c, int64_t L) {
  Ops o{linear_op(c.dim), rms_op(c.head_dim()), rope_op()};
  append(o, sdpa_ops(c.head_dim(), double(L)));
  o.push_back(linear_op(c.dim));
  return o;
}
Ops feed_forward_ops(const ZImageConfig& c) {
  return {linear_op(c.dim), silu_op(), elementwise_op("gate mul"), linear_op(c.ffn_hidden())};
}
Ops block_ops(const ZImageConfig& c, int64_t L, bool modulated) {
  Ops o;
  if (modulated) append(o, {linear_op(c.adaln_dim()), tanh_op(), elementwise_op("scale")});
  o.push_back(rms_op(c.dim));
  append(o, attention_ops(c, L));
  append(o, {rms_op(c.dim), elementwise_op("gated residual"), rms_op(c.dim)});
  append(o, feed_forward_ops(c));
  append(o, {rms_op(c.dim), elementwise_op("gated residual")});
  return o;
}
Ops final_layer_ops(const ZImageConfig& c) {
  return {silu_op(), linear_op(c.adaln_dim()), layer_norm_op(c.dim), elementwise_op("scale"), linear_op(c.dim)};
}
Ops whole_model_ops(const ZImageConfig& c, int64_t L) {
  Ops o = t_embedder_ops();
  append(o, {rms_op(c.cap_feat_dim), linear_op(c.cap_feat_dim), linear_op(c.patch_dim())});
  for (int i = 0; i < 2 * c.n_refiner_layers + c.n_layers; ++i) append(o, block_ops(c, L, true));
  append(o, final_layer_ops(c));
  return o;
}

// ---------------------------------------------------------------- the table

// Group 1 of every block / final-layer pattern is the module's prefix
// ("layers.3", "all_final_layer.2-1"); group 2 of a block pattern its kind.
#define ZIMAGE_BLOCK R"(^((noise_refiner|context_refiner|layers)\.\d+))"
#define ZIMAGE_FINAL R"(^(all_final_layer\.\d+-\d+))"

struct OpsArgs {
  const ZImageConfig& c;
  int64_t L;
  const std::smatch& m;
  bool modulated() const { return m[2] != "context_refiner"; }
};

template <class T>
struct RunArgs {
  const GoldenFile& g;
  const std::string& path;
  const std::smatch& m;
  const ZImageConfig& cfg() const { return g.config; }
  const ParamSource& src() const { return *g.params; }
  std::string prefix() const { return m[1]; }
  bool modulated() const { return m[2] != "context_refiner"; }
  bool has(const std::string& arg) const { return g.has(path + ":in." + arg); }
  Tensor<T> in(const std::string& arg) const { return g.get<T>(path + ":in." + arg); }
  std::optional<KeyMask> mask(const std::string& arg) const {
    if (!has(arg)) return std::nullopt;
    return g.get<int32_t>(path + ":in." + arg);
  }
  Tensor<T> param(const std::string& name) const { return src().load(name).template cast<T>(); }
};

using OpsFn = Ops (*)(const OpsArgs&);
template <class T>
using Runner = std::optional<Tensor<T>> (*)(const RunArgs<T>&);

struct Row {
  std::regex pattern;
  std::string input;  // the recorded input the runner needs (<path>:in.<input>); "" none
  OpsFn ops;          // nullptr: no budget of its own
  Runner<float> run_float;
  Runner<double> run_double;  // nullptr: no runner
};

// A row whose runner is one generic lambda, instantiated for float and double.
template <class F>
Row row(const char* pattern, const char* input, OpsFn ops, F run) {
  return Row{std::regex(pattern), input, ops, run, run};
}
Row ops_only(const char* pattern, OpsFn ops) { return Row{std::regex(pattern), "", ops, nullptr, nullptr}; }

#define ZIMAGE_RUN []<class T>(const RunArgs<T>& a) -> std::optional<Tensor<T>>

const auto run_linear = ZIMAGE_RUN { return linear(a.in("input"), load_linear<T>(a.src(), a.path, false)); };
const auto run_linear_bias = ZIMAGE_RUN { return linear(a.in("input"), load_linear<T>(a.src(), a.path, true)); };
const auto model_level = ZIMAGE_RUN {
  (void)a;
  return std::nullopt;  // compared by the whole-model run
};

const std::vector<Row>& table() {
  static const std::vector<Row> rows = {
      // -------- transformer blocks: noise_refiner.i, context_refiner.i (unmodulated), layers.i
      row(ZIMAGE_BLOCK "$", "x", [](const OpsArgs& a) { return block_ops(a.c, a.L, a.modulated()); },
          ZIMAGE_RUN {
            const ZImageConfig& c = a.cfg();
            const TransformerBlockW<T> w = load_block<T>(a.src(), a.prefix(), a.modulated(), c.qk_norm);
            const auto mask = a.mask("attn_mask");
            const std::optional<Tensor<T>> adaln = a.has("adaln_input") ? std::optional(a.in("adaln_input")) : std::nullopt;
            return transformer_block(a.in("x"), mask ? &*mask : nullptr, a.in("freqs_cis"), adaln ? &*adaln : nullptr, w,
                                     c.n_heads, c.norm_eps);
          }),
      row(ZIMAGE_BLOCK R"(\.attention$)", "hidden_states", [](const OpsArgs& a) { return attention_ops(a.c, a.L); },
          ZIMAGE_RUN {
            const TransformerBlockW<T> w = load_block<T>(a.src(), a.prefix(), a.modulated(), a.cfg().qk_norm);
            const auto mask = a.mask("attention_mask");
            return attention(a.in("hidden_states"), w.attention, mask ? &*mask : nullptr, a.in("freqs_cis"),
                             a.cfg().n_heads);
          }),
      row(ZIMAGE_BLOCK R"(\.attention\.(to_q|to_k|to_v|to_out\.0)$)", "input",
          [](const OpsArgs& a) { return Ops{linear_op(a.c.dim)}; }, run_linear),
      row(ZIMAGE_BLOCK R"(\.attention\.(norm_q|norm_k)$)", "hidden_states",
          [](const OpsArgs& a) { return Ops{rms_op(a.c.head_dim())}; },
          ZIMAGE_RUN { return rms_norm(a.in("hidden_states"), a.param(a.path + ".weight"), kQkNormEps); }),
      row(ZIMAGE_BLOCK R"(\.(attention_norm1|attention_norm2|ffn_norm1|ffn_norm2)$)", "hidden_states",
          [](const OpsArgs& a) { return Ops{rms_op(a.c.dim)}; },
          ZIMAGE_RUN { return rms_norm(a.in("hidden_states"), a.param(a.path + ".weight"), a.cfg().norm_eps); }),
      row(ZIMAGE_BLOCK R"(\.feed_forward$)", "x", [](const OpsArgs& a) { return feed_forward_ops(a.c); },
          ZIMAGE_RUN {
            const std::string p = a.prefix() + ".feed_forward.";
            const FeedForwardW<T> w{load_linear<T>(a.src(), p + "w1", false), load_linear<T>(a.src(), p + "w2", false),
                                    load_linear<T>(a.src(), p + "w3", false)};
            return feed_forward(a.in("x"), w);
          }),
      row(ZIMAGE_BLOCK R"(\.feed_forward\.(w1|w3)$)", "input", [](const OpsArgs& a) { return Ops{linear_op(a.c.dim)}; },
          run_linear),
      row(ZIMAGE_BLOCK R"(\.feed_forward\.w2$)", "input",
          [](const OpsArgs& a) { return Ops{linear_op(a.c.ffn_hidden())}; }, run_linear),
      row(ZIMAGE_BLOCK R"(\.adaLN_modulation(\.0)?$)", "input",
          [](const OpsArgs& a) { return Ops{linear_op(a.c.adaln_dim())}; },
          ZIMAGE_RUN {
            Tensor<T> x = a.in("input");
            if (mutated(Mutation::SiluBeforeBlockAdaLN))
              for (auto& v : x.data) v = silu(v);
            return linear(x, load_linear<T>(a.src(), a.prefix() + ".adaLN_modulation.0", true));
          }),
      // -------- final layer
      row(ZIMAGE_FINAL "$", "x", [](const OpsArgs& a) { return final_layer_ops(a.c); },
          ZIMAGE_RUN { return final_layer(a.in("x"), a.in("c"), load_final_layer<T>(a.src(), a.prefix())); }),
      row(ZIMAGE_FINAL R"(\.norm_final$)", "input", [](const OpsArgs& a) { return Ops{layer_norm_op(a.c.dim)}; },
          ZIMAGE_RUN { return layer_norm(a.in("input"), kFinalNormEps); }),
      row(ZIMAGE_FINAL R"(\.linear$)", "input", [](const OpsArgs& a) { return Ops{linear_op(a.c.dim)}; },
          run_linear_bias),
      // The budget of .1 (its input is already SiLU'd) keeps the SiLU of the whole Sequential.
      row(ZIMAGE_FINAL R"(\.adaLN_modulation\.1$)", "input",
          [](const OpsArgs& a) { return Ops{silu_op(), linear_op(a.c.adaln_dim())}; }, run_linear_bias),
      row(ZIMAGE_FINAL R"(\.adaLN_modulation$)", "input",
          [](const OpsArgs& a) { return Ops{silu_op(), linear_op(a.c.adaln_dim())}; },
          ZIMAGE_RUN {
            Tensor<T> c = a.in("input");
            for (auto& v : c.data) v = silu(v);
            return linear(c, load_linear<T>(a.src(), a.prefix() + ".adaLN_modulation.1", true));
          }),
      // -------- embedders
      row(R"(^t_embedder$)", "t", [](const OpsArgs&) { return t_embedder_ops(); },
          ZIMAGE_RUN { return timestep_embedder(a.in("t"), load_timestep_embedder<T>(a.src(), "t_embedder")); }),
      row(R"(^t_embedder\.mlp$)", "input", [](const OpsArgs&) { return t_embedder_ops(); },
          ZIMAGE_RUN {
            const TimestepEmbedderW<T> w = load_timestep_embedder<T>(a.src(), "t_embedder");
            Tensor<T> h = linear(a.in("input"), w.mlp0);
            for (auto& v : h.data) v = silu(v);
            return linear(h, w.mlp2);
          }),
      row(R"(^t_embedder\.mlp\.0$)", "input", [](const OpsArgs&) { return Ops{linear_op(T_FREQ_DIM)}; },
          run_linear_bias),
      row(R"(^t_embedder\.mlp\.2$)", "input", [](const OpsArgs&) { return Ops{linear_op(T_EMBED_MID)}; },
          run_linear_bias),
      ops_only(R"(^t_embedder\.timestep_embedding$)", [](const OpsArgs&) { return timestep_embedding_ops(); }),
      row(R"(^cap_embedder$)", "input",
          [](const OpsArgs& a) { return Ops{rms_op(a.c.cap_feat_dim), linear_op(a.c.cap_feat_dim)}; },
          ZIMAGE_RUN {
            const Tensor<T> n = rms_norm(a.in("input"), a.param("cap_embedder.0.weight"), a.cfg().norm_eps);
            return linear(n, load_linear<T>(a.src(), "cap_embedder.1", true));
          }),
      row(R"(^cap_embedder\.0$)", "hidden_states", [](const OpsArgs& a) { return Ops{rms_op(a.c.cap_feat_dim)}; },
          ZIMAGE_RUN { return rms_norm(a.in("hidden_states"), a.param("cap_embedder.0.weight"), a.cfg().norm_eps); }),
      row(R"(^cap_embedder\.1$)", "input", [](const OpsArgs& a) { return Ops{linear_op(a.c.cap_feat_dim)}; },
          run_linear_bias),
      row(R"(^all_x_embedder\..*)", "input", [](const OpsArgs& a) { return Ops{linear_op(a.c.patch_dim())}; },
          run_linear_bias),
      // -------- RoPE (the tables; rotary.* are the CUDA kernels' own checks)
      ops_only(R"(^rotary\.(q|k)$)", [](const OpsArgs&) { return Ops{rope_op()}; }),
      ops_only(R"(^rotary\.attention$)",
               [](const OpsArgs& a) {
                 Ops o{rope_op()};
                 append(o, sdpa_ops(a.c.head_dim(), double(a.L)));
                 return o;
               }),
      // The [N, D/2, 2] freqs of a golden flattened back to [B, L, D/2, 2] work as they are.
      row(R"(^rope_embedder\.freqs_cis\.(\d+)$)", "", [](const OpsArgs&) { return Ops{cos_sin_op()}; },
          ZIMAGE_RUN {
            const ZImageConfig& c = a.cfg();
            return precompute_freqs_cis<T>(c.axes_dims, c.axes_lens, c.rope_theta).at(size_t(std::stoi(a.m[1])));
          }),
      row(R"(^rope_embedder\.(x|cap)$)", "ids", [](const OpsArgs&) { return Ops{cos_sin_op()}; },
          ZIMAGE_RUN {
            const ZImageConfig& c = a.cfg();
            return rope_embedder(precompute_freqs_cis<T>(c.axes_dims, c.axes_lens, c.rope_theta),
                                 a.g.template get<int32_t>(a.path + ":in.ids"));
          }),
      ops_only(R"(^rope_embedder.*)", [](const OpsArgs&) { return Ops{cos_sin_op()}; }),
      // -------- model-level tensors
      row(R"(^sample\..*)", "", [](const OpsArgs& a) { return whole_model_ops(a.c, a.L); }, model_level),
      row(R"(^(patchify|x|cap_feats)\..*|^t$)", "", nullptr, model_level),
  };
  return rows;
}

#undef ZIMAGE_RUN
#undef ZIMAGE_FINAL
#undef ZIMAGE_BLOCK

const Row* find_row(const std::string& path, std::smatch& m) { return numerics::match_row(table(), path, m); }

}  // namespace

std::vector<numerics::Op> dit_module_ops(const std::string& path, const ZImageConfig& cfg, int64_t seq_len) {
  std::smatch m;
  const Row* r = find_row(path, m);
  if (!r || !r->ops) throw Error("tolerance policy: no op chain for module '" + path + "'");
  return r->ops(OpsArgs{cfg, seq_len, m});
}

numerics::Budget dit_module_budget(numerics::Tier tier, const std::string& path, const ZImageConfig& cfg,
                                   int64_t seq_len) {
  return numerics::budget_for(tier, dit_module_ops(path, cfg, seq_len));
}

template <class T>
std::optional<Tensor<T>> run_dit_module(const GoldenFile& g, const std::string& path) {
  std::smatch m;
  const Row* r = find_row(path, m);
  const Runner<T> run = numerics::runner_for<T>(r);
  if (!run) throw Error(g.path + ": no reference module for golden tensor '" + path + "'");
  if (!r->input.empty() && !g.has(path + ":in." + r->input)) return std::nullopt;
  return run(RunArgs<T>{g, path, m});
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

template std::optional<Tensor<float>> run_dit_module<float>(const GoldenFile&, const std::string&);
template std::optional<Tensor<double>> run_dit_module<double>(const GoldenFile&, const std::string&);

}  // namespace zimage

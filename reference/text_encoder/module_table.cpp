// Ref: transformers models/qwen3/modeling_qwen3.py Qwen3Model and its
// submodules (the paths are its named_modules()); budgets: docs/text_encoder.md.
#include "text_encoder/module_table.h"

#include <regex>
#include <type_traits>

#include "numerics/module_row.h"
#include "numerics/op_chain.h"
#include "text_encoder/qwen3_modules.h"

namespace zimage {

namespace {

using namespace numerics;

// ---------------------------------------------------------------- op chains

Op gather_op() { return elementwise_op("embedding gather (exact)"); }
Ops te_attention_ops(const Qwen3Config& c, double L) {
  Ops o{linear_op(c.hidden_size), rms_op(c.head_dim), {"rope(rotate_half)", 2, 2, false}};
  append(o, sdpa_ops(c.head_dim, L));
  o.push_back(linear_op(c.q_dim()));
  return o;
}
Ops te_mlp_ops(const Qwen3Config& c) {
  return {linear_op(c.hidden_size), silu_op(), elementwise_op("gate mul"), linear_op(c.intermediate_size)};
}
Ops te_layer_ops(const Qwen3Config& c, double L) {
  Ops o{rms_op(c.hidden_size)};
  append(o, te_attention_ops(c, L));
  o.push_back(elementwise_op("residual"));
  o.push_back(rms_op(c.hidden_size));
  append(o, te_mlp_ops(c));
  o.push_back(elementwise_op("residual"));
  return o;
}

// ---------------------------------------------------------------- the table

// Group 1 of every layer pattern is the layer index.
#define ZIMAGE_LAYER R"(^layers\.(\d+))"

struct OpsArgs {
  const Qwen3Config& c;
  double L;
  const std::string& path;
  const std::smatch& m;
};

template <class T>
struct RunArgs {
  const TextEncoderGolden& g;
  const std::string& path;
  const std::smatch& m;
  const Qwen3Config& c() const { return g.config; }
  const Qwen3TextEncoder& enc() const { return *g.encoder; }
  Tensor<T> in(const std::string& arg) const { return g.get<T>(path + ":in." + arg); }
  std::string layer() const { return "layers." + std::string(m[1]) + "."; }
  Tensor<T> param(const std::string& n) const { return enc().template param<T>(layer() + n); }
  LinearW<T> lin(const std::string& n) const {
    LinearW<T> w;
    w.weight = param(n + ".weight");
    if (c().attention_bias && n.rfind("self_attn.", 0) == 0) w.bias = param(n + ".bias");
    return w;
  }
  Qwen3AttentionW<T> attn() const {
    return {lin("self_attn.q_proj"), lin("self_attn.k_proj"), lin("self_attn.v_proj"),
            lin("self_attn.o_proj"), param("self_attn.q_norm.weight"), param("self_attn.k_norm.weight")};
  }
  // The leaf of a layer path: "self_attn.q_proj" of "layers.3.self_attn.q_proj".
  std::string leaf() const { return path.substr(layer().size()); }
};

using Row = ModuleRow<OpsArgs, RunArgs>;
using OpsFn = Row::OpsFn;
template <class T>
using Runner = Row::Runner<T>;
constexpr auto& row = module_row<Row>;

#define ZIMAGE_RUN []<class T>(const RunArgs<T>& a) -> std::optional<Tensor<T>>

const auto run_layer_rms = ZIMAGE_RUN {
  return qwen3_rms_norm(a.in("hidden_states"), a.param(a.leaf() + ".weight"), a.c().rms_norm_eps);
};
const auto run_layer_linear = ZIMAGE_RUN { return linear(a.in("input"), a.lin(a.leaf())); };
const OpsFn hidden_linear_ops = [](const OpsArgs& a) { return Ops{linear_op(a.c.hidden_size)}; };
const OpsFn hidden_rms_ops = [](const OpsArgs& a) { return Ops{rms_op(a.c.hidden_size)}; };

const std::vector<Row>& table() {
  static const std::vector<Row> rows = {
      // -------- decoder layers
      row(ZIMAGE_LAYER "$", [](const OpsArgs& a) { return te_layer_ops(a.c, a.L); },
          ZIMAGE_RUN {
            const auto [cos, sin] = qwen3_rotary_embedding<T>(a.c(), a.g.seq_len());
            return qwen3_decoder_layer(a.in("hidden_states"), a.enc().template layer<T>(std::stoi(a.m[1])),
                                       a.g.attention_mask, cos, sin, a.c());
          }),
      row(ZIMAGE_LAYER R"(\.(input_layernorm|post_attention_layernorm)$)", hidden_rms_ops, run_layer_rms),
      row(ZIMAGE_LAYER R"(\.self_attn$)", [](const OpsArgs& a) { return te_attention_ops(a.c, a.L); },
          ZIMAGE_RUN {
            const auto [cos, sin] = qwen3_rotary_embedding<T>(a.c(), a.g.seq_len());
            return qwen3_attention(a.in("hidden_states"), a.attn(), a.g.attention_mask, cos, sin, a.c());
          }),
      row(ZIMAGE_LAYER R"(\.self_attn\.(q_proj|k_proj|v_proj)$)", hidden_linear_ops, run_layer_linear),
      row(ZIMAGE_LAYER R"(\.self_attn\.o_proj$)", [](const OpsArgs& a) { return Ops{linear_op(a.c.q_dim())}; },
          run_layer_linear),
      row(ZIMAGE_LAYER R"(\.self_attn\.(q_norm|k_norm)$)", [](const OpsArgs& a) { return Ops{rms_op(a.c.head_dim)}; },
          run_layer_rms),
      row(ZIMAGE_LAYER R"(\.mlp$)", [](const OpsArgs& a) { return te_mlp_ops(a.c); },
          ZIMAGE_RUN {
            return qwen3_mlp(a.in("x"), Qwen3MlpW<T>{a.lin("mlp.gate_proj"), a.lin("mlp.up_proj"), a.lin("mlp.down_proj")});
          }),
      row(ZIMAGE_LAYER R"(\.mlp\.(gate_proj|up_proj)$)", hidden_linear_ops, run_layer_linear),
      row(ZIMAGE_LAYER R"(\.mlp\.down_proj$)", [](const OpsArgs& a) { return Ops{linear_op(a.c.intermediate_size)}; },
          run_layer_linear),
      // -------- the model around the layers
      row(R"(^hidden_states\.(\d+)$)",
          [](const OpsArgs& a) {
            const int k = std::stoi(a.m[1]);
            ZIMAGE_CHECK(k <= a.c.num_hidden_layers, "tolerance policy: no hidden state '" + a.path + "' in this config");
            Ops o{gather_op()};
            for (int i = 0; i < std::min(k, a.c.num_hidden_layers); ++i) append(o, te_layer_ops(a.c, a.L));
            if (k == a.c.num_hidden_layers) o.push_back(rms_op(a.c.hidden_size));
            return o;
          },
          ZIMAGE_RUN { return a.enc().template hidden_state<T>(a.g.input_ids, a.g.attention_mask, std::stoi(a.m[1])); }),
      row(R"(^norm$)", hidden_rms_ops,
          ZIMAGE_RUN {
            return qwen3_rms_norm(a.in("hidden_states"), a.enc().template param<T>("norm.weight"), a.c().rms_norm_eps);
          }),
      row(R"(^embed_tokens$)", [](const OpsArgs&) { return Ops{gather_op()}; },
          ZIMAGE_RUN { return a.enc().template embed<T>(a.g.input_ids); }),
      row(R"(^rotary_emb\.(cos|sin)$)", [](const OpsArgs&) { return Ops{{"cos/sin of an fp32 angle", 1, 1, true}}; },
          ZIMAGE_RUN {
            auto [cos, sin] = qwen3_rotary_embedding<T>(a.c(), a.g.seq_len());
            return a.m[1] == "cos" ? cos : sin;
          }),
  };
  return rows;
}

#undef ZIMAGE_RUN
#undef ZIMAGE_LAYER

const Row* find_row(const std::string& path, std::smatch& m) { return numerics::match_row(table(), path, m); }

}  // namespace

std::vector<numerics::Op> text_encoder_module_ops(const std::string& path, const Qwen3Config& c, int64_t seq_len) {
  std::smatch m;
  const Row* r = find_row(path, m);
  if (!r) throw Error("tolerance policy: no op chain for text-encoder module '" + path + "'");
  return r->ops(OpsArgs{c, double(seq_len), path, m});
}

numerics::Budget text_encoder_module_budget(numerics::Tier tier, const std::string& path, const Qwen3Config& cfg,
                                            int64_t seq_len) {
  return numerics::budget_for(tier, text_encoder_module_ops(path, cfg, seq_len));
}

template <class T>
std::optional<Tensor<T>> run_text_encoder_check(const TextEncoderGolden& g, const std::string& check) {
  std::smatch m;
  const Row* r = find_row(check, m);
  if (!r) return std::nullopt;
  return numerics::runner_for<T>(r)(RunArgs<T>{g, check, m});
}

template std::optional<Tensor<float>> run_text_encoder_check<float>(const TextEncoderGolden&, const std::string&);
template std::optional<Tensor<double>> run_text_encoder_check<double>(const TextEncoderGolden&, const std::string&);

}  // namespace zimage

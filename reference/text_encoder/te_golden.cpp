#include "text_encoder/te_golden.h"

#include <regex>

#include "validation/golden_file.h"

namespace zimage {

TextEncoderGolden open_text_encoder_golden(const std::string& path) {
  TextEncoderGolden g;
  g.path = path;
  g.file = SafetensorsFile::open(path);
  const auto& md = g.file->metadata();
  auto meta = [&](const std::string& key) -> const std::string& {
    auto it = md.find(key);
    ZIMAGE_CHECK(it != md.end(), path + ": golden metadata lacks '" + key + "'");
    return it->second;
  };
  ZIMAGE_CHECK(meta("format") == "zimage-golden-v1", path + ": golden format '" + meta("format") + "' is not zimage-golden-v1");
  ZIMAGE_CHECK(meta("kind") == "text_encoder", path + ": golden kind '" + meta("kind") + "', expected 'text_encoder'");
  for (const char* k : {"transformers_version", "transformers_qwen3_blob", "torch_version", "dtype", "seed", "command",
                        "synthetic_weights", "padding_side"})
    meta(k);
  ZIMAGE_CHECK(meta("dtype") == "float32", path + ": golden dtype '" + meta("dtype") + "' is not float32");
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(meta("config"));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": golden metadata 'config' is not JSON");
  }
  g.config = Qwen3Config::from_json(cfg, path + " (metadata config)");
  for (const auto& name : g.file->names()) screen_golden_tensor(path, g.file->view(name));
  g.encoder = std::make_shared<Qwen3TextEncoder>(g.config, synthetic_param_source(meta("synthetic_weights")));
  if (md.count("input_aliases")) {
    try {
      const nlohmann::json aliases = nlohmann::json::parse(md.at("input_aliases"));
      for (const auto& [k, v] : aliases.items()) {
        ZIMAGE_CHECK(v.is_string() && g.file->contains(v.get<std::string>()),
                     path + ": input_aliases maps '" + k + "' to a tensor the file does not hold");
        g.aliases[k] = v.get<std::string>();
      }
    } catch (const nlohmann::json::exception&) {
      throw Error(path + ": golden metadata 'input_aliases' is not a JSON object of names");
    }
  }
  g.input_ids = g.file->get<int32_t>("input_ids");
  g.attention_mask = g.file->get<int32_t>("attention_mask");
  return g;
}

std::vector<std::string> TextEncoderGolden::checks() const {
  std::vector<std::string> out;
  for (const auto& n : file->names()) {
    if (n.find(':') != std::string::npos || n == "input_ids" || n == "attention_mask") continue;
    if (n.rfind("hidden_states.", 0) == 0 || n == "rotary_emb.cos" || n == "rotary_emb.sin" ||
        has(n + ":in.hidden_states") || has(n + ":in.x") || has(n + ":in.input"))
      out.push_back(n);
  }
  return out;
}

template <class T>
std::optional<Tensor<T>> run_text_encoder_check(const TextEncoderGolden& g, const std::string& check) {
  const Qwen3Config& c = g.config;
  const Qwen3TextEncoder& enc = *g.encoder;
  auto in = [&](const std::string& arg) { return g.get<T>(check + ":in." + arg); };
  if (check.rfind("hidden_states.", 0) == 0) return enc.hidden_state<T>(g.input_ids, g.attention_mask, std::stoi(check.substr(14)));
  if (check == "rotary_emb.cos" || check == "rotary_emb.sin") {
    auto [cos, sin] = qwen3_rotary_embedding<T>(c, g.seq_len());
    return check == "rotary_emb.cos" ? cos : sin;
  }
  if (check == "embed_tokens") return enc.embed<T>(g.input_ids);
  if (check == "norm") return qwen3_rms_norm(in("hidden_states"), enc.param<T>("norm.weight"), c.rms_norm_eps);
  static const std::regex layer_re(R"(^layers\.(\d+)(\.(.*))?$)");
  std::smatch m;
  if (!std::regex_match(check, m, layer_re)) return std::nullopt;
  const int i = std::stoi(m[1]);
  const std::string sub = m[3];
  const std::string l = "layers." + std::to_string(i) + ".";
  auto P = [&](const std::string& n) { return enc.param<T>(l + n); };
  auto lin = [&](const std::string& n) {
    LinearW<T> w;
    w.weight = P(n + ".weight");
    if (c.attention_bias && n.rfind("self_attn.", 0) == 0) w.bias = P(n + ".bias");
    return w;
  };
  auto attn = [&]() {
    return Qwen3AttentionW<T>{lin("self_attn.q_proj"), lin("self_attn.k_proj"), lin("self_attn.v_proj"),
                              lin("self_attn.o_proj"), P("self_attn.q_norm.weight"), P("self_attn.k_norm.weight")};
  };
  auto mlp = [&]() { return Qwen3MlpW<T>{lin("mlp.gate_proj"), lin("mlp.up_proj"), lin("mlp.down_proj")}; };
  // Only the weights a check needs are loaded (a real-size layer is 100M synthetic values).
  if (sub.empty() || sub == "self_attn") {
    const auto [cos, sin] = qwen3_rotary_embedding<T>(c, g.seq_len());
    if (sub == "self_attn") return qwen3_attention(in("hidden_states"), attn(), g.attention_mask, cos, sin, c);
    return qwen3_decoder_layer(in("hidden_states"), enc.layer<T>(i), g.attention_mask, cos, sin, c);
  }
  if (sub == "input_layernorm" || sub == "post_attention_layernorm")
    return qwen3_rms_norm(in("hidden_states"), P(sub + ".weight"), c.rms_norm_eps);
  if (sub == "self_attn.q_norm" || sub == "self_attn.k_norm")
    return qwen3_rms_norm(in("hidden_states"), P(sub + ".weight"), c.rms_norm_eps);
  if (sub == "mlp") return qwen3_mlp(in("x"), mlp());
  static const char* kLinears[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                   "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
  for (const char* n : kLinears)
    if (sub == n) return linear(in("input"), lin(n));
  return std::nullopt;
}

template std::optional<Tensor<float>> run_text_encoder_check<float>(const TextEncoderGolden&, const std::string&);
template std::optional<Tensor<double>> run_text_encoder_check<double>(const TextEncoderGolden&, const std::string&);

}  // namespace zimage

#include "text_encoder/te_golden.h"

#include "validation/golden_file.h"

namespace zimage {

TextEncoderGolden open_text_encoder_golden(const std::string& path) {
  TextEncoderGolden g;
  g.path = path;
  const GoldenHeader h = golden_header(path, "text_encoder",
                                       {"transformers_version", "transformers_qwen3_blob", "torch_version", "dtype",
                                        "seed", "command", "synthetic_weights", "padding_side"});
  g.file = h.file;
  const auto& md = g.file->metadata();
  auto meta = [&](const std::string& key) -> const std::string& { return h.meta(key); };
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

}  // namespace zimage

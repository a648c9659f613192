// Qwen3Config: the text encoder's config.json as transformers writes it
// (transformers/models/qwen3/configuration_qwen3.py). Z-Image's text encoder
// is Qwen3-4B: 36 layers, hidden 2560, 32 heads, 8 KV heads, head_dim 128,
// intermediate 9728, rope_theta 1e6, rms_norm_eps 1e-6 (docs/text_encoder.md).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace zimage {

struct Qwen3Config {
  int vocab_size = 151936;
  int hidden_size = 2560;
  int intermediate_size = 9728;
  int num_hidden_layers = 36;
  int num_attention_heads = 32;
  int num_key_value_heads = 8;
  int head_dim = 128;
  double rms_norm_eps = 1e-6;
  double rope_theta = 1000000.0;
  bool attention_bias = false;

  int q_dim() const { return num_attention_heads * head_dim; }
  int kv_dim() const { return num_key_value_heads * head_dim; }

  // Reads transformers' keys: rope_theta at the top level (transformers 4.x)
  // or in rope_parameters (5.x); head_dim defaults to hidden / heads as in
  // Qwen3Attention. Refuses what this reference does not implement (another
  // model_type, an activation other than silu, sliding-window layers, a
  // rope_type other than default) with an error naming `source` and the key.
  static Qwen3Config from_json(const nlohmann::json& j, const std::string& source);
  static Qwen3Config from_file(const std::string& path);
  nlohmann::json to_json() const;
  void validate(const std::string& source) const;
};

// Qwen3-4B's config (the real one, for tests and the memory measurement).
Qwen3Config qwen3_4b_config();

}  // namespace zimage

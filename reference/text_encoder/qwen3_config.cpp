#include "text_encoder/qwen3_config.h"

#include <fstream>
#include <limits>

#include "core/error.h"
#include "core/json_fields.h"
#include "core/json_file.h"

namespace zimage {

using json = nlohmann::json;

namespace {

// A key that is absent or null.
const json* find(const json& j, const std::string& key) {
  const json* v = json_find(j, key);
  return v && !v->is_null() ? v : nullptr;
}

// A positive int; an absent key takes `fallback` where one is given.
int get_int(const json& j, const std::string& key, const std::string& source, const int* fallback = nullptr) {
  const json* v = find(j, key);
  if (!v && fallback) return *fallback;
  ZIMAGE_CHECK(v, source + ": missing key '" + key + "'");
  const int n = json_int(*v, key, source);
  ZIMAGE_CHECK(n > 0, source + ": key '" + key + "' must be a positive integer, got " + json_brief(*v));
  return n;
}

double get_double(const json& j, const std::string& key, const std::string& source) {
  const json* v = find(j, key);
  ZIMAGE_CHECK(v, source + ": missing key '" + key + "'");
  return json_number(*v, key, source);
}

}  // namespace

Qwen3Config Qwen3Config::from_json(const json& j, const std::string& source) {
  ZIMAGE_CHECK(j.is_object(), source + ": config is not a JSON object");
  if (const json* mt = find(j, "model_type"))
    ZIMAGE_CHECK(mt->is_string() && mt->get<std::string>() == "qwen3",
                 source + ": model_type " + mt->dump() + " is not \"qwen3\" (only Qwen3 text encoders are supported)");
  Qwen3Config c;
  c.vocab_size = get_int(j, "vocab_size", source);
  c.hidden_size = get_int(j, "hidden_size", source);
  c.intermediate_size = get_int(j, "intermediate_size", source);
  c.num_hidden_layers = get_int(j, "num_hidden_layers", source);
  c.num_attention_heads = get_int(j, "num_attention_heads", source);
  c.num_key_value_heads = get_int(j, "num_key_value_heads", source);
  const int default_head_dim = c.hidden_size / c.num_attention_heads;  // Qwen3Attention's fallback
  c.head_dim = get_int(j, "head_dim", source, &default_head_dim);
  c.rms_norm_eps = get_double(j, "rms_norm_eps", source);
  if (const json* rp = find(j, "rope_parameters")) {
    ZIMAGE_CHECK(rp->is_object(), source + ": key 'rope_parameters' must be an object");
    if (const json* rt = find(*rp, "rope_type"))
      ZIMAGE_CHECK(rt->is_string() && rt->get<std::string>() == "default",
                   source + ": rope_parameters.rope_type " + rt->dump() + " is not supported (only \"default\")");
    c.rope_theta = get_double(*rp, "rope_theta", source + " rope_parameters");
  } else {
    c.rope_theta = get_double(j, "rope_theta", source);
  }
  if (const json* rs = find(j, "rope_scaling"))
    ZIMAGE_CHECK(rs->is_object() && rs->value("rope_type", rs->value("type", std::string("default"))) == "default",
                 source + ": rope_scaling " + rs->dump() + " is not supported (only the default RoPE)");
  if (const json* act = find(j, "hidden_act"))
    ZIMAGE_CHECK(act->is_string() && act->get<std::string>() == "silu",
                 source + ": hidden_act " + act->dump() + " is not supported (only \"silu\")");
  if (const json* sw = find(j, "use_sliding_window"))
    ZIMAGE_CHECK(sw->is_boolean() && !sw->get<bool>(), source + ": use_sliding_window true is not supported");
  if (const json* lt = find(j, "layer_types")) {
    ZIMAGE_CHECK(lt->is_array(), source + ": key 'layer_types' must be a list");
    for (const json& t : *lt)
      ZIMAGE_CHECK(t.is_string() && t.get<std::string>() == "full_attention",
                   source + ": layer_types holds " + t.dump() + "; only \"full_attention\" layers are supported");
  }
  if (const json* ab = find(j, "attention_bias")) {
    ZIMAGE_CHECK(ab->is_boolean(), source + ": key 'attention_bias' must be true or false");
    c.attention_bias = ab->get<bool>();
  }
  c.validate(source);
  return c;
}

Qwen3Config Qwen3Config::from_file(const std::string& path) {
  return from_json(read_json_file(path), path);
}

json Qwen3Config::to_json() const {
  return json{{"model_type", "qwen3"},
              {"vocab_size", vocab_size},
              {"hidden_size", hidden_size},
              {"intermediate_size", intermediate_size},
              {"num_hidden_layers", num_hidden_layers},
              {"num_attention_heads", num_attention_heads},
              {"num_key_value_heads", num_key_value_heads},
              {"head_dim", head_dim},
              {"rms_norm_eps", rms_norm_eps},
              {"rope_theta", rope_theta},
              {"attention_bias", attention_bias},
              {"hidden_act", "silu"}};
}

void Qwen3Config::validate(const std::string& source) const {
  ZIMAGE_CHECK(num_attention_heads % num_key_value_heads == 0,
               source + ": num_attention_heads " + std::to_string(num_attention_heads) +
                   " is not a multiple of num_key_value_heads " + std::to_string(num_key_value_heads));
  ZIMAGE_CHECK(head_dim > 0, source + ": head_dim " + std::to_string(head_dim) +
                                 " must be positive (when the key is absent it is hidden_size / num_attention_heads)");
  ZIMAGE_CHECK(head_dim % 2 == 0, source + ": head_dim " + std::to_string(head_dim) + " must be even (RoPE rotates halves)");
  ZIMAGE_CHECK(rms_norm_eps > 0, source + ": rms_norm_eps must be positive");
  ZIMAGE_CHECK(rope_theta > 1, source + ": rope_theta must be > 1");
}

Qwen3Config qwen3_4b_config() { return Qwen3Config{}; }

}  // namespace zimage

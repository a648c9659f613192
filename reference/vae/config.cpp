// VaeConfig <-> config.json. See config.h for which keys are required.
#include "vae/config.h"

#include <cmath>
#include <fstream>
#include <limits>

#include "core/error.h"
#include "core/json_fields.h"
#include "core/json_file.h"

namespace zimage {

using json = nlohmann::json;

namespace {

std::optional<std::vector<double>> as_opt_double_list(const json* v, const std::string& key, const std::string& source) {
  if (!v || v->is_null()) return std::nullopt;
  const std::string msg =
      source + ": key '" + key + "' must be null or a list of finite numbers, got " + json_brief(*v);
  ZIMAGE_CHECK(v->is_array(), msg);
  std::vector<double> out;
  for (const json& e : *v) {
    ZIMAGE_CHECK(e.is_number() && std::isfinite(e.get<double>()), msg);
    out.push_back(e.get<double>());
  }
  return out;
}

std::string list_str(const std::vector<int>& v) { return json(v).dump(); }

// A string from the file for a message, on one line (newlines and NUL become
// spaces), cut to 100 bytes.
std::string one_line(std::string s) {
  if (s.size() > 100) s = s.substr(0, 100) + "...";
  for (char& c : s)
    if (c == '\n' || c == '\r' || c == '\0') c = ' ';
  return s;
}

}  // namespace

VaeConfig VaeConfig::from_json(const json& j, const std::string& source) {
  ZIMAGE_CHECK(j.is_object(), source + ": config is not a JSON object");
  if (const json* cls = json_find(j, "_class_name"))
    ZIMAGE_CHECK(cls->is_string() && cls->get<std::string>() == "AutoencoderKL",
                 source + ": key '_class_name' is " + json_brief(*cls) + ": only AutoencoderKL is supported");
  VaeConfig c;
  c.in_channels = json_get_int(j, "in_channels", source);
  c.out_channels = json_get_int(j, "out_channels", source);
  c.down_block_types = json_string_list(json_require(j, "down_block_types", source), "down_block_types", source);
  c.up_block_types = json_string_list(json_require(j, "up_block_types", source), "up_block_types", source);
  c.block_out_channels = json_get_int_list(j, "block_out_channels", source);
  c.layers_per_block = json_get_int(j, "layers_per_block", source);
  {
    const json& v = json_require(j, "act_fn", source);
    ZIMAGE_CHECK(v.is_string(), source + ": key 'act_fn' must be a string, got " + json_brief(v));
    c.act_fn = v.get<std::string>();
  }
  c.latent_channels = json_get_int(j, "latent_channels", source);
  c.norm_num_groups = json_get_int(j, "norm_num_groups", source);
  c.scaling_factor = json_finite_number(json_require(j, "scaling_factor", source), "scaling_factor", source);

  if (const json* v = json_find(j, "sample_size")) {
    if (v->is_array()) {
      c.sample_size = json_int_list(*v, "sample_size", source);
    } else {
      c.sample_size = {json_int(*v, "sample_size", source)};
    }
  }
  if (const json* v = json_find(j, "shift_factor"); v && !v->is_null())
    c.shift_factor = json_finite_number(*v, "shift_factor", source);
  c.latents_mean = as_opt_double_list(json_find(j, "latents_mean"), "latents_mean", source);
  c.latents_std = as_opt_double_list(json_find(j, "latents_std"), "latents_std", source);
  if (const json* v = json_find(j, "force_upcast")) c.force_upcast = json_bool(*v, "force_upcast", source);
  if (const json* v = json_find(j, "use_quant_conv")) c.use_quant_conv = json_bool(*v, "use_quant_conv", source);
  if (const json* v = json_find(j, "use_post_quant_conv"))
    c.use_post_quant_conv = json_bool(*v, "use_post_quant_conv", source);
  if (const json* v = json_find(j, "mid_block_add_attention"))
    c.mid_block_add_attention = json_bool(*v, "mid_block_add_attention", source);
  c.validate(source);
  return c;
}

json VaeConfig::to_json() const {
  json j{{"_class_name", "AutoencoderKL"},
         {"in_channels", in_channels},
         {"out_channels", out_channels},
         {"down_block_types", down_block_types},
         {"up_block_types", up_block_types},
         {"block_out_channels", block_out_channels},
         {"layers_per_block", layers_per_block},
         {"act_fn", act_fn},
         {"latent_channels", latent_channels},
         {"norm_num_groups", norm_num_groups},
         {"scaling_factor", scaling_factor},
         {"shift_factor", shift_factor ? json(*shift_factor) : json(nullptr)},
         {"latents_mean", latents_mean ? json(*latents_mean) : json(nullptr)},
         {"latents_std", latents_std ? json(*latents_std) : json(nullptr)},
         {"force_upcast", force_upcast},
         {"use_quant_conv", use_quant_conv},
         {"use_post_quant_conv", use_post_quant_conv},
         {"mid_block_add_attention", mid_block_add_attention}};
  j["sample_size"] = sample_size.size() == 1 ? json(sample_size[0]) : json(sample_size);
  return j;
}

void VaeConfig::validate(const std::string& source) const {
  const std::string s = source + ": ";
  ZIMAGE_CHECK(!block_out_channels.empty(), s + "key 'block_out_channels' must not be empty");
  ZIMAGE_CHECK(block_out_channels.size() <= 12, s + "key 'block_out_channels' " + list_str(block_out_channels) +
                                                    ": more than 12 blocks is not a VAE this reference supports");
  for (int ch : block_out_channels)
    ZIMAGE_CHECK(ch > 0, s + "key 'block_out_channels' " + list_str(block_out_channels) + ": every entry must be > 0");
  ZIMAGE_CHECK(down_block_types.size() == block_out_channels.size(),
               s + "key 'down_block_types' has " + std::to_string(down_block_types.size()) + " entries, block_out_channels " +
                   std::to_string(block_out_channels.size()));
  ZIMAGE_CHECK(up_block_types.size() == block_out_channels.size(),
               s + "key 'up_block_types' has " + std::to_string(up_block_types.size()) + " entries, block_out_channels " +
                   std::to_string(block_out_channels.size()));
  for (const auto& t : down_block_types)
    ZIMAGE_CHECK(t == "DownEncoderBlock2D", s + "key 'down_block_types' holds '" + one_line(t) +
                                                "': only DownEncoderBlock2D is supported (the Flux / SD VAE encoder)");
  for (const auto& t : up_block_types)
    ZIMAGE_CHECK(t == "UpDecoderBlock2D",
                 s + "key 'up_block_types' holds '" + one_line(t) + "': only UpDecoderBlock2D is supported (the Flux / SD VAE decoder)");
  ZIMAGE_CHECK(act_fn == "silu" || act_fn == "swish",
               s + "key 'act_fn' is '" + one_line(act_fn) + "': only silu (alias swish) is supported");
  auto positive = [&](const char* key, int v) {
    ZIMAGE_CHECK(v > 0, s + "key '" + key + "' is " + std::to_string(v) + ", must be > 0");
  };
  positive("in_channels", in_channels);
  positive("out_channels", out_channels);
  positive("latent_channels", latent_channels);
  positive("layers_per_block", layers_per_block);
  positive("norm_num_groups", norm_num_groups);
  for (int ch : block_out_channels)
    ZIMAGE_CHECK(ch % norm_num_groups == 0, s + "key 'norm_num_groups' " + std::to_string(norm_num_groups) +
                                                " does not divide block_out_channels " + list_str(block_out_channels) +
                                                " (GroupNorm needs channels divisible by groups)");
  ZIMAGE_CHECK(!sample_size.empty() && sample_size[0] > 0,
               s + "key 'sample_size' " + list_str(sample_size) + " must be a positive integer");
  ZIMAGE_CHECK(scaling_factor != 0.0, s + "key 'scaling_factor' must not be 0 (latents are divided by it)");
  if (latents_mean || latents_std)
    for (const auto* v : {&latents_mean, &latents_std})
      ZIMAGE_CHECK(!*v || int((*v)->size()) == latent_channels,
                   s + "keys 'latents_mean'/'latents_std' must have latent_channels (" + std::to_string(latent_channels) +
                       ") entries");
}

VaeConfig load_vae_config(const std::string& json_path) {
  return VaeConfig::from_json(read_json_file(json_path, "config"), json_path);
}

VaeConfig flux_vae_config() {
  VaeConfig c;
  c.in_channels = 3;
  c.out_channels = 3;
  c.down_block_types.assign(4, "DownEncoderBlock2D");
  c.up_block_types.assign(4, "UpDecoderBlock2D");
  c.block_out_channels = {128, 256, 512, 512};
  c.layers_per_block = 2;
  c.act_fn = "silu";
  c.latent_channels = 16;
  c.norm_num_groups = 32;
  c.sample_size = {1024};
  c.scaling_factor = 0.3611;
  c.shift_factor = 0.1159;
  c.force_upcast = true;
  c.use_quant_conv = false;
  c.use_post_quant_conv = false;
  c.mid_block_add_attention = true;
  return c;
}

}  // namespace zimage

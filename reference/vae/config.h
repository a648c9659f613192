// VaeConfig: diffusers AutoencoderKL's config.json (the `vae/` folder of a
// pipeline). Every key that changes the computation is read; values this
// reference does not implement are refused with a one-line error naming the
// key (other block types, activations other than SiLU, spatial norm ...).
//
// Required keys (every config.json written by save_pretrained has them):
//   in_channels, out_channels, down_block_types, up_block_types,
//   block_out_channels, layers_per_block, act_fn, latent_channels,
//   norm_num_groups, scaling_factor.
// Keys added to AutoencoderKL over time default exactly as its constructor
// does when absent (what diffusers' from_config does with an older config):
//   sample_size 32, shift_factor null, latents_mean/latents_std null,
//   force_upcast true, use_quant_conv true, use_post_quant_conv true,
//   mid_block_add_attention true.
// A wrong default cannot go unnoticed: the weight loader checks the folder's
// tensors against the parameters the config implies, by name and shape.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace zimage {

// Ref: diffusers/models/autoencoders/vae.py (Encoder/Decoder: resnet_eps=1e-6,
// GroupNorm(eps=1e-6) for conv_norm_out; UNetMidBlock2D's Attention eps=resnet_eps).
constexpr double kVaeNormEps = 1e-6;

struct VaeConfig {
  int in_channels = 3;
  int out_channels = 3;
  std::vector<std::string> down_block_types;  // all "DownEncoderBlock2D"
  std::vector<std::string> up_block_types;    // all "UpDecoderBlock2D"
  std::vector<int> block_out_channels;
  int layers_per_block = 1;
  std::string act_fn = "silu";                // "silu" (or its alias "swish")
  int latent_channels = 4;
  int norm_num_groups = 32;
  std::vector<int> sample_size{32};           // int in most configs; a list is kept whole
  double scaling_factor = 0.18215;
  std::optional<double> shift_factor;         // null in SD VAEs; 0.1159 in the Flux VAE
  std::optional<std::vector<double>> latents_mean, latents_std;  // read, not used by ZImagePipeline
  bool force_upcast = true;                   // a dtype hint for pipelines; no effect here
  bool use_quant_conv = true;
  bool use_post_quant_conv = true;
  bool mid_block_add_attention = true;

  int num_blocks() const { return int(block_out_channels.size()); }
  // Spatial factor between image and latent: 2^(num_blocks - 1) (8 for Flux).
  int spatial_factor() const { return 1 << (num_blocks() - 1); }
  // AutoencoderKL.__init__: tile_sample_min_size = sample_size,
  // tile_latent_min_size = int(sample_size / 2^(num_blocks - 1)), overlap 0.25.
  int tile_sample_min_size() const { return sample_size.at(0); }
  int tile_latent_min_size() const { return int(double(sample_size.at(0)) / double(spatial_factor())); }

  // Throws zimage::Error naming `source` and the offending key.
  static VaeConfig from_json(const nlohmann::json& j, const std::string& source);
  nlohmann::json to_json() const;  // every key, as save_pretrained writes them (plus _class_name)
  void validate(const std::string& source) const;
};

VaeConfig load_vae_config(const std::string& json_path);

// The FLUX.1 VAE that Z-Image uses (docs/zimage-facts.md): block_out_channels
// [128,256,512,512], layers_per_block 2, 32 groups, SiLU, 16 latent channels,
// mid attention, scaling 0.3611, shift 0.1159, no quant convs, sample_size 1024.
VaeConfig flux_vae_config();

}  // namespace zimage

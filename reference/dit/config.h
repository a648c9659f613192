// ZImageConfig: the transformer's config.json as diffusers' register_to_config
// writes it. Every value the model needs is read from the file; a missing
// key is an error (the constructor defaults differ from Z-Image-Turbo's:
// axes_lens [1024,512,512] vs [1536,512,512]).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <cstdint>
#include <vector>

namespace zimage {

constexpr int ADALN_EMBED_DIM = 256;  // Ref: transformer_z_image.py ADALN_EMBED_DIM
// Z-Image-Turbo's config.json norm_eps: every RMSNorm of the blocks and cap_embedder.0.
inline constexpr double kDitNormEps = 1e-5;
constexpr int SEQ_MULTI_OF = 32;      // Ref: transformer_z_image.py SEQ_MULTI_OF
// n rounded up to a multiple of SEQ_MULTI_OF: the padded length of an image or caption stream.
constexpr int64_t pad_to_seq_multiple(int64_t n) { return n + (SEQ_MULTI_OF - n % SEQ_MULTI_OF) % SEQ_MULTI_OF; }
constexpr int T_EMBED_MID = 1024;     // TimestepEmbedder(min(dim, 256), mid_size=1024)
constexpr int T_FREQ_DIM = 256;       // frequency_embedding_size

struct ZImageConfig {
  std::vector<int> all_patch_size{2};
  std::vector<int> all_f_patch_size{1};
  int in_channels = 16;
  int dim = 3840;
  int n_layers = 30;
  int n_refiner_layers = 2;
  int n_heads = 30;
  int n_kv_heads = 30;
  double norm_eps = kDitNormEps;
  bool qk_norm = true;
  int cap_feat_dim = 2560;
  double rope_theta = 256.0;
  double t_scale = 1000.0;
  std::vector<int> axes_dims{32, 48, 48};
  std::vector<int> axes_lens{1536, 512, 512};

  int head_dim() const { return dim / n_heads; }
  int ffn_hidden() const { return int(double(dim) / 3.0 * 8.0); }  // int(dim / 3 * 8)
  int adaln_dim() const { return dim < ADALN_EMBED_DIM ? dim : ADALN_EMBED_DIM; }
  int patch_size() const { return all_patch_size.at(0); }
  int f_patch_size() const { return all_f_patch_size.at(0); }
  int patch_dim() const { return f_patch_size() * patch_size() * patch_size() * in_channels; }
  std::string embedder_key() const { return std::to_string(patch_size()) + "-" + std::to_string(f_patch_size()); }

  // Throws zimage::Error naming `source` and the offending key.
  static ZImageConfig from_json(const nlohmann::json& j, const std::string& source);
  static ZImageConfig from_file(const std::string& path);
  nlohmann::json to_json() const;
  // Checks that the model can run: head_dim * n_heads == dim,
  // head_dim == sum(axes_dims), even axes dims, positive sizes, one patch size.
  void validate(const std::string& source) const;
};

}  // namespace zimage

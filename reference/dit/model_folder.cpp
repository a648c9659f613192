#include "dit/model_folder.h"

#include <filesystem>

namespace zimage {

namespace fs = std::filesystem;

// Ref: transformer_z_image.py ZImageTransformer2DModel.__init__ (basic mode:
// siglip_feat_dim None). Checked against state_dict() of a tiny instance
// and against the Turbo parameter count (tests/unit/test_model_folder.cpp).
std::map<std::string, Shape> expected_parameter_shapes(const ZImageConfig& cfg) {
  const int64_t dim = cfg.dim, hd = cfg.head_dim(), ffn = cfg.ffn_hidden(), ada = cfg.adaln_dim();
  std::map<std::string, Shape> p;

  // ZImageTransformerBlock: Attention(bias=False, out_bias=False, qk_norm
  // "rms_norm"), FeedForward (SwiGLU, no bias), four RMSNorms, and
  // adaLN_modulation = Sequential(Linear(min(dim,256), 4*dim)) when modulated.
  auto block = [&](const std::string& prefix, bool modulated) {
    for (const char* w : {"to_q", "to_k", "to_v"}) p[prefix + "attention." + w + ".weight"] = {dim, dim};
    p[prefix + "attention.to_out.0.weight"] = {dim, dim};
    if (cfg.qk_norm) {
      p[prefix + "attention.norm_q.weight"] = {hd};
      p[prefix + "attention.norm_k.weight"] = {hd};
    }
    p[prefix + "feed_forward.w1.weight"] = {ffn, dim};
    p[prefix + "feed_forward.w2.weight"] = {dim, ffn};
    p[prefix + "feed_forward.w3.weight"] = {ffn, dim};
    for (const char* n : {"attention_norm1", "attention_norm2", "ffn_norm1", "ffn_norm2"})
      p[prefix + n + ".weight"] = {dim};
    if (modulated) {
      p[prefix + "adaLN_modulation.0.weight"] = {4 * dim, ada};
      p[prefix + "adaLN_modulation.0.bias"] = {4 * dim};
    }
  };

  const std::string key = cfg.embedder_key();  // "2-1"
  const int64_t patch_dim = cfg.patch_dim();
  p["all_x_embedder." + key + ".weight"] = {dim, patch_dim};
  p["all_x_embedder." + key + ".bias"] = {dim};
  // FinalLayer: norm_final is LayerNorm without affine (no parameters).
  p["all_final_layer." + key + ".linear.weight"] = {patch_dim, dim};
  p["all_final_layer." + key + ".linear.bias"] = {patch_dim};
  p["all_final_layer." + key + ".adaLN_modulation.1.weight"] = {dim, ada};
  p["all_final_layer." + key + ".adaLN_modulation.1.bias"] = {dim};

  for (int i = 0; i < cfg.n_refiner_layers; ++i) block("noise_refiner." + std::to_string(i) + ".", true);
  for (int i = 0; i < cfg.n_refiner_layers; ++i) block("context_refiner." + std::to_string(i) + ".", false);
  for (int i = 0; i < cfg.n_layers; ++i) block("layers." + std::to_string(i) + ".", true);

  // TimestepEmbedder(min(dim, 256), mid_size=1024): Linear(256,1024), SiLU, Linear(1024, adaln_dim).
  p["t_embedder.mlp.0.weight"] = {T_EMBED_MID, T_FREQ_DIM};
  p["t_embedder.mlp.0.bias"] = {T_EMBED_MID};
  p["t_embedder.mlp.2.weight"] = {ada, T_EMBED_MID};
  p["t_embedder.mlp.2.bias"] = {ada};
  // cap_embedder = Sequential(RMSNorm(cap_feat_dim), Linear(cap_feat_dim, dim)).
  p["cap_embedder.0.weight"] = {cfg.cap_feat_dim};
  p["cap_embedder.1.weight"] = {dim, cfg.cap_feat_dim};
  p["cap_embedder.1.bias"] = {dim};
  p["x_pad_token"] = {1, dim};
  p["cap_pad_token"] = {1, dim};
  return p;
}

ModelFolder open_model_folder(const std::string& dir) {
  const fs::path d(dir);
  ModelFolder mf;
  mf.config = ZImageConfig::from_file((d / "config.json").string());  // validates
  mf.params = open_weight_folder(dir);
  check_complete(*mf.params, expected_parameter_shapes(mf.config));
  return mf;
}

}  // namespace zimage

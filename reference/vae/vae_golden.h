// VAE goldens (tools/golden/dump_vae.py, docs/vae.md): opening and
// screening them, teacher forcing one AutoencoderKL module on the inputs a
// golden recorded for it (vae/module_table.h), and `validate`-style rows for a whole golden.
//
// Kinds: "vae" (a whole tiny AutoencoderKL whose weights are shipped under
// golden/models/, hooks on its modules, plus the rows decode, encode.mean,
// encode.logvar, tiled_decode, unscale), "vae_modules" (real-size single
// blocks with synthetic weights) and "vae_sampled" (the whole decode at full
// size with synthetic weights, sampled rows of the image: vae_sampled_decode). Tensors bitwise equal to an earlier one are
// stored once; metadata "aliases" maps the left-out names to stored ones.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "io/param_source.h"
#include "validation/validate.h"
#include "vae/autoencoder_kl.h"

namespace zimage {

struct VaeGolden {
  std::string path;
  std::shared_ptr<SafetensorsFile> file;
  VaeConfig config;
  std::string case_name, kind;
  std::shared_ptr<ParamSource> params;
  std::map<std::string, std::string> aliases;  // name -> stored name
  TileOptions tiles;                           // from metadata "tile" (kind vae)

  const std::string& stored(const std::string& name) const;  // resolves an alias
  bool has(const std::string& name) const;
  Shape shape(const std::string& name) const;
  template <class T>
  Tensor<T> get(const std::string& name) const { return file->get<T>(stored(name)); }
  // Recorded outputs (names without ':'), stored or aliased, sorted.
  std::vector<std::string> outputs() const;
};

bool is_vae_golden_kind(const std::string& kind);  // "vae", "vae_modules" or "vae_sampled"

// A "vae_sampled" golden's decode (tools/golden/dump_vae.py vae_flux_1024): AutoencoderKL.decode(z)
// is `image`-shaped; viewed as [B * C * H, W], its rows `rows` are `sampled`. Checks the rows
// (increasing, inside the image), the shapes and that the image shape is the decode's for z.
struct VaeSampledDecode {
  Tensor<float> z;             // decode:in.z
  Shape image;                 // [B, out_channels, f h, f w]
  std::vector<int64_t> rows;   // decode.rows
  Tensor<double> sampled;      // decode.sampled [rows, W]
};
VaeSampledDecode vae_sampled_decode(const VaeGolden& g);

// Opens and screens a VAE golden: format, provenance keys (with
// diffusers_vae_blobs), config (a valid VaeConfig), every float tensor finite
// and not constant, aliases naming stored tensors of the same shape.
// Weights: `model_dir` when given, else the golden's model_dir (relative to
// its folder; the folder's config.json must equal the golden's config), else
// its synthetic_weights spec.
VaeGolden open_vae_golden(const std::string& path, const std::string& model_dir = "");

// The golden input of a row / module: "<path>:in.<arg>" for arg in input,
// input_tensor, hidden_states, sample, z, x, latents (the first present).
std::optional<std::string> vae_input_name(const VaeGolden& g, const std::string& path);

// Every output with an input, teacher forced, within the T2 budget.
template <class T>
std::vector<ValidationRow> validate_vae_golden(const VaeGolden& g);

}  // namespace zimage

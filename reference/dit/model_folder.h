// The DiT's parameters: the names and shapes ZImageTransformer2DModel(config)
// has, and a diffusers transformer folder (config.json plus weights) checked
// against them. Where the weights come from is io/param_source.h.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "dit/config.h"
#include "io/param_source.h"

namespace zimage {

// Every parameter ZImageTransformer2DModel(config) has in basic mode, with
// its shape, named as in diffusers' state_dict.
std::map<std::string, Shape> expected_parameter_shapes(const ZImageConfig& cfg);

// A diffusers folder: config.json plus diffusion_pytorch_model.safetensors,
// or shards listed in diffusion_pytorch_model.safetensors.index.json.
struct ModelFolder {
  ZImageConfig config;
  std::shared_ptr<ParamSource> params;
};
ModelFolder open_model_folder(const std::string& dir);

}  // namespace zimage

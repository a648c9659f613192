// Where parameters come from: a diffusers model folder (safetensors, single
// file or shards) or the counter-based synthetic generator. The model loader
// asks a ParamSource for every parameter the config implies and nothing else.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"

namespace zimage {

class ParamSource {
 public:
  virtual ~ParamSource() = default;
  // Every tensor the source holds, with its shape.
  virtual std::map<std::string, Shape> shapes() const = 0;
  // The tensor's values widened to double (exact for F32/BF16/F16/F64).
  virtual Tensor<double> load(const std::string& name) const = 0;
  virtual std::string describe() const = 0;  // for messages: a path or "synthetic(seed=...)"
};

// Every parameter ZImageTransformer2DModel(config) has in basic mode, with
// its shape, named as in diffusers' state_dict.
std::map<std::string, Shape> expected_parameter_shapes(const ZImageConfig& cfg);

// Throws zimage::Error naming the first missing tensor, unexpected tensor,
// or tensor whose shape does not match the config. `model` names the class
// in the unexpected-tensor message.
void check_complete(const ParamSource& src, const std::map<std::string, Shape>& expected,
                    const std::string& model = "ZImageTransformer2DModel");

// The tensors of any diffusers weight folder, as save_pretrained writes them:
// DIR/diffusion_pytorch_model.safetensors, or the shards listed in
// DIR/diffusion_pytorch_model.safetensors.index.json (index and shards must
// agree exactly). Every tensor must be a float dtype. No config is read and
// no completeness check is made: callers check against their model.
std::shared_ptr<ParamSource> open_weight_folder(const std::string& dir);

// A diffusers folder: config.json plus diffusion_pytorch_model.safetensors,
// or shards listed in diffusion_pytorch_model.safetensors.index.json.
struct ModelFolder {
  ZImageConfig config;
  std::shared_ptr<ParamSource> params;
};
ModelFolder open_model_folder(const std::string& dir);

// Counter-based synthetic weights (see model/synthetic.h) described by the
// JSON a golden stores in its "synthetic_weights" metadata.
std::shared_ptr<ParamSource> synthetic_param_source(const std::string& spec_json);

}  // namespace zimage

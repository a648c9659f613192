#include "text_encoder/synthetic_qwen3.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text_encoder/qwen3_model.h"

namespace zimage {

std::string qwen3_synthetic_spec(const Qwen3Config& cfg, uint64_t seed) {
  nlohmann::json tensors = nlohmann::json::object();
  for (const auto& [name, shape] : qwen3_parameter_shapes(cfg)) {
    const bool bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    double offset = 0, scale;
    if (name == "embed_tokens.weight") {
      scale = 1.0;
    } else if (bias) {
      scale = 0.05;
    } else if (shape.size() == 1) {  // RMSNorm weight
      offset = 1.0, scale = 0.2;
    } else {
      ZIMAGE_CHECK(shape.size() == 2, "qwen3_synthetic_spec: no rule for " + name + " " + shape_str(shape));
      scale = 1.0 / std::sqrt(double(shape[1]));  // Linear weight
    }
    tensors[name] = {{"shape", shape}, {"offset", offset}, {"scale", scale}};
  }
  return nlohmann::json{{"seed", seed}, {"tensors", tensors}}.dump();
}

}  // namespace zimage

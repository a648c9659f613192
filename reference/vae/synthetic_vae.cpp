#include "vae/synthetic_vae.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "vae/autoencoder_kl.h"

namespace zimage {

std::string vae_synthetic_spec(const VaeConfig& cfg, uint64_t seed) {
  nlohmann::json tensors = nlohmann::json::object();
  for (const auto& [name, shape] : expected_vae_parameter_shapes(cfg)) {
    const bool bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    double offset = 0, scale;
    if (bias) {
      scale = 0.05;
    } else if (shape.size() == 1) {  // GroupNorm weight
      offset = 1.0, scale = 0.2;
    } else if (shape.size() == 4) {  // Conv2d weight
      scale = 1.0 / std::sqrt(double(shape[1] * shape[2] * shape[3]));
    } else {  // Linear weight
      scale = 1.0 / std::sqrt(double(shape[1]));
    }
    tensors[name] = {{"shape", shape}, {"offset", offset}, {"scale", scale}};
  }
  return nlohmann::json{{"seed", seed}, {"tensors", tensors}}.dump();
}

}  // namespace zimage

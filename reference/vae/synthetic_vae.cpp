#include "vae/synthetic_vae.h"

#include <cmath>

#include "io/param_source.h"
#include "vae/autoencoder_kl.h"

namespace zimage {

SyntheticRange vae_synthetic_rule(const std::string& name, const Shape& shape) {
  const bool bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
  if (bias) return {0.0, 0.05};
  if (shape.size() == 1) return {1.0, 0.2};                                                      // GroupNorm weight
  if (shape.size() == 4) return {0.0, 1.0 / std::sqrt(double(shape[1] * shape[2] * shape[3]))};  // Conv2d weight
  return {0.0, 1.0 / std::sqrt(double(shape[1]))};                                               // Linear weight
}

std::string vae_synthetic_spec(const VaeConfig& cfg, uint64_t seed) {
  return synthetic_spec_json(seed, expected_vae_parameter_shapes(cfg), vae_synthetic_rule);
}

}  // namespace zimage

#include "text_encoder/synthetic_qwen3.h"

#include <cmath>

#include "core/error.h"
#include "io/param_source.h"
#include "text_encoder/qwen3_model.h"

namespace zimage {

SyntheticRange qwen3_synthetic_rule(const std::string& name, const Shape& shape) {
  const bool bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
  if (name == "embed_tokens.weight") return {0.0, 1.0};
  if (bias) return {0.0, 0.05};
  if (shape.size() == 1) return {1.0, 0.2};  // RMSNorm weight
  ZIMAGE_CHECK(shape.size() == 2, "qwen3_synthetic_rule: no rule for " + name + " " + shape_str(shape));
  return {0.0, 1.0 / std::sqrt(double(shape[1]))};  // Linear weight
}

std::string qwen3_synthetic_spec(const Qwen3Config& cfg, uint64_t seed) {
  return synthetic_spec_json(seed, qwen3_parameter_shapes(cfg), qwen3_synthetic_rule);
}

}  // namespace zimage

// Synthetic Qwen3Model weights: the counter-based generator (io/synthetic.h)
// with the rule of tools/golden/dump_text_encoder.py (te_rule), so that a spec
// made here and one made by the dumper agree:
//   embed_tokens.weight          offset 0, scale 1
//   RMSNorm weight [C] or [D]    offset 1, scale 0.2
//   Linear weight [O, I]         offset 0, scale 1 / sqrt(I)
//   Linear bias (attention_bias) offset 0, scale 0.05
// (every 1-D weight of Qwen3Model is an RMSNorm weight). The GPU benchmark's
// real-size text encoder (Qwen3-4B's config) is made from it.
#pragma once
#include <cstdint>
#include <string>

#include "io/param_source.h"
#include "text_encoder/qwen3_config.h"

namespace zimage {

// The rule above for one parameter of Qwen3Model.
SyntheticRange qwen3_synthetic_rule(const std::string& name, const Shape& shape);

// The synthetic_weights JSON for every parameter of Qwen3Model(cfg).
std::string qwen3_synthetic_spec(const Qwen3Config& cfg, uint64_t seed);

}  // namespace zimage

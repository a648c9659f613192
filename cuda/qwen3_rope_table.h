#pragma once
#include <cstdint>

#include "core/tensor.h"
#include "text_encoder/qwen3_config.h"

namespace zimage::gpu {

// Twin: reference/text_encoder/qwen3_modules.h qwen3_rotary_embedding (Qwen3RotaryEmbedding.forward).
// cos, sin of the reference's fp32 angles (qwen3_rope_angles), evaluated in double and rounded
// once: [L, D/2, 2] fp32, pair k of position p = (cos, sin) of angle[p, k].
Tensor<float> qwen3_cos_sin_table(const Qwen3Config& cfg, int64_t L);

}  // namespace zimage::gpu

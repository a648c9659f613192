// The text encoder's module table: every transformers module path of
// Qwen3Model this suite checks ("layers.3.self_attn.q_norm", "layers.0.mlp",
// "norm", "embed_tokens", "rotary_emb.cos") and the whole-model rows
// "hidden_states.{k}" (k = 0..n, transformers' index after resolving
// negatives), with its op chain (the error budget, numerics/tolerance.h;
// docs/text_encoder.md, docs/tolerances.md) and its runner (teacher forced on
// a golden's recorded inputs). One row per module in
// text_encoder/module_table.cpp. L is the sequence length.
//   rms_norm:  K = C (or D for q_norm / k_norm), rsqrt, 3 roundings
//   attention: linear(K = C), rms_norm(D), rope (2 products + 1 add), q k^T (K = D),
//              softmax (K = L, exp), p v (K = L), o_proj linear(K = H*D)
//   mlp:       linear(K = C), silu, gate mul, down_proj linear(K = F)
//   layer:     rms_norm(C) + attention + residual + rms_norm(C) + mlp + residual
//   hidden_states.{k}: the embedding gather is exact; k layers' chains, plus
//              the final rms_norm for k = n.
//   rotary_emb.cos / .sin: the angle is the same fp32 number on both sides;
//              one cos/sin evaluation (transcendental) and one rounding.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "numerics/tolerance.h"
#include "text_encoder/qwen3_config.h"
#include "text_encoder/te_golden.h"

namespace zimage {

// Throws for a path the table has no chain for.
std::vector<numerics::Op> text_encoder_module_ops(const std::string& path, const Qwen3Config& cfg, int64_t seq_len);
numerics::Budget text_encoder_module_budget(numerics::Tier tier, const std::string& path, const Qwen3Config& cfg,
                                            int64_t seq_len);

// The reference's value of one recorded output, computed in T from the
// golden's inputs (teacher forced), or nullopt for a path the table has no
// runner for. Only the weights a check needs are loaded (a real-size layer is
// 100M synthetic values).
template <class T>
std::optional<Tensor<T>> run_text_encoder_check(const TextEncoderGolden& g, const std::string& check);

}  // namespace zimage

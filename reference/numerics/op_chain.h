// The ops a module chain is made of, model-free: the building blocks each
// model's module table (dit/, vae/, text_encoder/ module_table.cpp) strings
// together into the chain whose eps is its budget (numerics/tolerance.h,
// docs/tolerances.md). K is the reduction length; n_r the roundings to the
// storage dtype; transcendental when the op calls exp/sin/rsqrt/tanh.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "numerics/tolerance.h"

namespace zimage::numerics {

using Ops = std::vector<Op>;

inline std::string k_str(double K) { return std::to_string(int64_t(K)); }

// A Linear without its bias as one more term (the DiT's and Qwen3's K).
inline Op linear_op(double K) { return {"linear(K=" + k_str(K) + ")", 1, K, false}; }
// rsqrt(mean(x^2) + eps) then two multiplies.
inline Op rms_op(double C) { return {"rms_norm(K=" + k_str(C) + ")", 3, C, true}; }
// Mean and variance over C (2C terms), rsqrt, three roundings.
inline Op layer_norm_op(double C) { return {"layer_norm(K=" + k_str(C) + ")", 3, 2 * C, true}; }
inline Op silu_op() { return {"silu", 2, 1, true}; }
inline Op tanh_op() { return {"tanh", 1, 1, true}; }
inline Op elementwise_op(const std::string& n) { return {n, 1, 1, false}; }
// Scaled dot-product attention's core over L keys of width D.
inline Ops sdpa_ops(double D, double L) {
  return {{"q k^T", 1, D, false}, {"softmax", 2, L, true}, {"p v", 1, L, false}};
}

inline void append(Ops& a, const Ops& b) { a.insert(a.end(), b.begin(), b.end()); }

}  // namespace zimage::numerics

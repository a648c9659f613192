// Shared pieces of the module functions: parameter structs named after the
// diffusers submodules, the activation recorder, small elementwise helpers.
// Shape letters everywhere: B batch, L tokens, C dim, H heads, D head_dim,
// F ffn hidden, A adaLN input (min(dim, 256)).
#pragma once
#include <algorithm>
#include <cmath>
#include <optional>
#include <map>
#include <string>

#include "core/tensor.h"
#include "numerics/mutation.h"

namespace zimage {

// torch.nn.Linear parameters: weight [out, in], bias [out] or empty.
template <class T>
struct LinearW {
  Tensor<T> weight;
  Tensor<T> bias;
  bool has_bias() const { return bias.numel() > 0; }
};

// Activations keyed by diffusers module path ("layers.7.attention"); a null
// pointer records nothing.
template <class T>
using Activations = std::map<std::string, Tensor<T>>;

template <class T>
inline void record(Activations<T>* acts, const std::string& path, const Tensor<T>& value) {
  if (acts) (*acts)[path] = value;
}

inline std::string join_path(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

// Key mask [B, L]: 1 = this key takes part in attention. Absent (nullptr)
// when every batch item has the same length, as in diffusers.
using KeyMask = Tensor<int32_t>;

template <class T>
inline T silu(T v) { return v / (T(1) + std::exp(-v)); }

}  // namespace zimage

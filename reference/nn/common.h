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
#include "core/vmath.h"
#include "numerics/mutation.h"

namespace zimage {

// torch.nn.Linear parameters: weight [out, in], bias [out] or empty.
template <class T>
struct LinearW {
  Tensor<T> weight;
  Tensor<T> bias;
  bool has_bias() const { return bias.numel() > 0; }
};

// The first module output found holding NaN or Inf (--check-finite).
struct NonFinite {
  std::string module;     // diffusers path, e.g. "layers.3.feed_forward.w2"
  int64_t count = 0;      // non-finite values in that output
  int64_t first = -1;     // flat index of the first one
  std::string describe() const {
    return "first non-finite module output: '" + module + "' holds " + std::to_string(count) +
           " NaN/Inf values, the first at flat index " + std::to_string(first);
  }
};

// Activations keyed by diffusers module path ("layers.7.attention"), recorded
// in execution order; a null pointer records nothing. With check_finite, the
// first output holding NaN/Inf is kept in first_nonfinite (how porters bisect
// an fp16 overflow); with store false, outputs are only checked, not kept;
// with `keep` non-empty, only those paths are kept (a probe of a few modules
// of a real-size forward: zimage sweep's caption drift).
template <class T>
struct Activations : std::map<std::string, Tensor<T>> {
  bool store = true;
  bool check_finite = false;
  std::optional<NonFinite> first_nonfinite;
  std::vector<std::string> keep;
  bool keeps(const std::string& path) const {
    return store && (keep.empty() || std::find(keep.begin(), keep.end(), path) != keep.end());
  }
};

template <class T>
inline void record(Activations<T>* acts, const std::string& path, const Tensor<T>& value) {
  if (!acts) return;
  if (acts->check_finite && !acts->first_nonfinite) {
    NonFinite nf{path, 0, -1};
    for (int64_t i = 0; i < value.numel(); ++i)
      if (!std::isfinite(value[i]) && nf.count++ == 0) nf.first = i;
    if (nf.count) acts->first_nonfinite = nf;
  }
  if (acts->keeps(path)) (*acts)[path] = value;
}

// Key mask [B, L]: 1 = this key takes part in attention. Absent (nullptr)
// when every batch item has the same length, as in diffusers.
using KeyMask = Tensor<int32_t>;

template <class T>
inline T silu(T v) { return v / (T(1) + std::exp(-v)); }

// silu over p[0, n) in place (and times u[i] when u is given: SwiGLU's gate),
// with Eigen's vectorized exp (within a few ulp of std::exp; core/vmath.h),
// OpenMP over chunks. Each result depends on its inputs only.
//
// The pragma: GCC 12 at -O1 (the test programs' level, tests/CMakeLists.txt) reports Eigen's AVX-512 exp,
// inlined here, as reading an uninitialized vector: a false positive of its own intrinsics headers,
// whose unused merge operands are self-initialized on purpose (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
template <class T>
inline void silu_(T* p, int64_t n, const T* u = nullptr) {
  constexpr int64_t kChunk = 1 << 14;
#pragma omp parallel for schedule(static) if (n >= 4 * kChunk)
  for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
    T* chunk = p + c0;
    for_each_block(chunk, std::min(kChunk, n - c0), T(0), [&](auto& b, int64_t i) {
      b = b / (T(1) + (-b).exp());
      if (u)
        for (int64_t j = 0; j < kVmathBlock && c0 + i + j < n; ++j) b[j] *= u[c0 + i + j];
    });
  }
}
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic pop
#endif

}  // namespace zimage

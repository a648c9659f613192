#pragma once
#include <Eigen/Core>
#include <limits>

#include "core/vmath.h"

namespace zimage {

// Ref: torch.softmax(scores, dim=-1) for one attention row with a boolean
// mask (masked_fill(-inf) before the softmax, as SDPA's math backend does).
// row [L] of scaled scores, in place; allowed(j) false -> weight exactly 0.
// exp is Eigen's vectorized one (within a few ulp of std::exp), the sum in a
// fixed order (core/vmath.h). Returns false, leaving zeros, when every key is
// masked (torch >= 2.5's _safe_softmax).
template <class T, class Allowed>
bool masked_softmax_row(T* row, int64_t L, Allowed allowed) {
  Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>> r(row, L);
  constexpr T kNegInf = -std::numeric_limits<T>::infinity();
  for (int64_t j = 0; j < L; ++j)
    if (!allowed(j)) r[j] = kNegInf;
  const T mx = r.maxCoeff();
  if (mx == kNegInf) {
    r.setZero();
    return false;
  }
  exp_shifted_(row, L, mx);
  for (int64_t j = 0; j < L; ++j)  // Eigen's exp(-inf) is tiny, not 0
    if (!allowed(j)) r[j] = T(0);
  r /= sum_fixed_order(row, L);
  return true;
}

}  // namespace zimage

// Rows sampled for an fp64 reference of a large output (the CUDA GEMM tests and
// benchmarks): every row when N <= 128, otherwise about 61 evenly spaced rows
// plus the last one.
#pragma once
#include <algorithm>
#include <vector>

#include "core/tensor.h"

namespace zimage::numerics {

inline std::vector<int64_t> sample_rows(int64_t N) {
  std::vector<int64_t> r;
  const int64_t step = N <= 128 ? 1 : N / 61 + 1;
  for (int64_t n = 0; n < N; n += step) r.push_back(n);
  if (r.back() != N - 1) r.push_back(N - 1);
  return r;
}

// t [..., W] viewed as rows -> [rows.size(), W].
template <class T>
Tensor<T> rows_of(const Tensor<T>& t, const std::vector<int64_t>& rows) {
  const int64_t W = t.dim(-1);
  Tensor<T> out({int64_t(rows.size()), W});
  for (size_t i = 0; i < rows.size(); ++i)
    std::copy(t.ptr() + rows[i] * W, t.ptr() + (rows[i] + 1) * W, out.ptr() + int64_t(i) * W);
  return out;
}

}  // namespace zimage::numerics

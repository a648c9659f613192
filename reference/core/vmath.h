// Vectorized elementwise exp and a fixed-order sum whose results depend only
// on the values, never on where the array sits in memory. Eigen's dynamic-size
// expressions peel an unaligned head and a tail through scalar code (std::exp
// there, the vector pexp elsewhere; a different summation order), so the bits
// of an element would depend on the buffer's address. Here every element goes
// through the vector path in blocks of kVmathBlock, the tail zero-padded.
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <cstdint>

namespace zimage {

constexpr int64_t kVmathBlock = 16;

// f(block) on x[0, n) in place, block = Eigen::Array<T, kVmathBlock, 1>;
// the tail is padded with `pad` before f and cut after.
template <class T, class F>
inline void for_each_block(T* x, int64_t n, T pad, F f) {
  using Blk = Eigen::Array<T, kVmathBlock, 1>;
  int64_t i = 0;
  for (; i + kVmathBlock <= n; i += kVmathBlock) {
    Blk b = Eigen::Map<const Blk>(x + i);
    f(b, i);
    Eigen::Map<Blk>(x + i) = b;
  }
  if (i < n) {
    Blk b = Blk::Constant(pad);
    std::copy(x + i, x + n, b.data());
    f(b, i);
    std::copy(b.data(), b.data() + (n - i), x + i);
  }
}

// x = exp(x - shift) in place (Eigen's pexp: within a few ulp of std::exp).
template <class T>
inline void exp_shifted_(T* x, int64_t n, T shift) {
  for_each_block(x, n, T(0), [shift](auto& b, int64_t) { b = (b - shift).exp(); });
}

// sum of x[0, n): kVmathBlock lane sums, each in index order, then the lanes
// added in order.
template <class T>
inline T sum_fixed_order(const T* x, int64_t n) {
  using Blk = Eigen::Array<T, kVmathBlock, 1>;
  Blk acc = Blk::Zero();
  int64_t i = 0;
  for (; i + kVmathBlock <= n; i += kVmathBlock) acc += Eigen::Map<const Blk>(x + i);
  for (int64_t j = 0; i + j < n; ++j) acc[j] += x[i + j];
  T s = 0;
  for (int64_t j = 0; j < kVmathBlock; ++j) s += acc[j];
  return s;
}

}  // namespace zimage

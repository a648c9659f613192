// Tensor<T>: a dense row-major host tensor, shapes in PyTorch order.
// Deliberately plain: a shape and a contiguous std::vector. Matrix views for
// Eigen products come from as_matrix(), which treats the last dimension as
// columns and everything before it as rows ([..., K] -> [N, K]).
#pragma once
#include <Eigen/Dense>
#include <cstdint>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"

namespace zimage {

using Shape = std::vector<int64_t>;

inline int64_t shape_numel(const Shape& s) {
  return std::accumulate(s.begin(), s.end(), int64_t{1}, std::multiplies<int64_t>());
}

inline std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

template <class T>
using MatrixRM = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MatMap = Eigen::Map<MatrixRM<T>>;
template <class T>
using ConstMatMap = Eigen::Map<const MatrixRM<T>>;

template <class T>
struct Tensor {
  Shape shape;
  std::vector<T> data;

  Tensor() = default;
  explicit Tensor(Shape s, T fill = T(0)) : shape(std::move(s)), data(size_t(shape_numel(shape)), fill) {}
  Tensor(Shape s, std::vector<T> d) : shape(std::move(s)), data(std::move(d)) {
    ZIMAGE_CHECK(int64_t(data.size()) == shape_numel(shape), "Tensor: data size does not match shape " + shape_str(shape));
  }

  int64_t numel() const { return int64_t(data.size()); }
  int ndim() const { return int(shape.size()); }
  // dim(-1) is the last dimension, as in PyTorch.
  int64_t dim(int i) const { return shape.at(size_t(i < 0 ? i + ndim() : i)); }
  T* ptr() { return data.data(); }
  const T* ptr() const { return data.data(); }
  T& operator[](int64_t i) { return data[size_t(i)]; }
  const T& operator[](int64_t i) const { return data[size_t(i)]; }

  // [..., K] viewed as an [N, K] row-major matrix.
  MatMap<T> as_matrix() { return MatMap<T>(data.data(), rows(), dim(-1)); }
  ConstMatMap<T> as_matrix() const { return ConstMatMap<T>(data.data(), rows(), dim(-1)); }
  int64_t rows() const { return ndim() == 0 ? 1 : numel() / (dim(-1) == 0 ? 1 : dim(-1)); }

  Tensor reshaped(Shape s) const {
    ZIMAGE_CHECK(shape_numel(s) == numel(), "reshape " + shape_str(shape) + " -> " + shape_str(s));
    return Tensor(std::move(s), data);
  }

  template <class U>
  Tensor<U> cast() const {
    Tensor<U> out;
    out.shape = shape;
    out.data.resize(data.size());
    for (size_t i = 0; i < data.size(); ++i) out.data[i] = static_cast<U>(data[i]);
    return out;
  }
};

}  // namespace zimage

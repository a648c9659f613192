#pragma once
#include "modules/common.h"

namespace zimage {

// Ref: torch.nn.Linear.forward (y = x W^T + b)
// x [..., K], weight [M, K], bias [M] -> [..., M]. One Eigen GEMM.
template <class T>
Tensor<T> linear(const Tensor<T>& x, const LinearW<T>& w) {
  const int64_t K = x.dim(-1), M = w.weight.dim(0);
  ZIMAGE_CHECK(w.weight.dim(1) == K, "linear: input width " + std::to_string(K) + " != weight " + shape_str(w.weight.shape));
  Shape out_shape = x.shape;
  out_shape.back() = M;
  Tensor<T> y(out_shape);
  auto Y = y.as_matrix();
  Y.noalias() = x.as_matrix() * w.weight.as_matrix().transpose();
  if (w.has_bias()) Y.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(w.bias.ptr(), M);
  return y;
}

}  // namespace zimage

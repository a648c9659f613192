#pragma once
#include "core/gemm.h"
#include "nn/common.h"

namespace zimage {

// Ref: torch.nn.Linear.forward (y = x W^T + b)
// x [..., K], weight [M, K], bias [M] -> [..., M]. The product is the packed
// GEMM of core/gemm.h over OpenMP output tiles: each y element's rounding
// depends on K only, not on the thread count or on the other rows of x.
template <class T>
Tensor<T> linear(const Tensor<T>& x, const LinearW<T>& w) {
  const int64_t K = x.dim(-1), M = w.weight.dim(0), N = x.rows();
  ZIMAGE_CHECK(w.weight.dim(1) == K, "linear: input width " + std::to_string(K) + " != weight " + shape_str(w.weight.shape));
  Shape out_shape = x.shape;
  out_shape.back() = M;
  Tensor<T> y(out_shape);
  // B = W^T: element (p, j) = weight[j, p].
  gemm_parallel<T>(N, M, K, {x.ptr(), K, 1}, {w.weight.ptr(), 1, K}, y.ptr(), M);
  if (w.has_bias()) y.as_matrix().rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(w.bias.ptr(), M);
  return y;
}

}  // namespace zimage

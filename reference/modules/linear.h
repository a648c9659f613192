#pragma once
#include "modules/common.h"

namespace zimage {

// Output tiles of the reference GEMM. Fixed sizes make every element's
// reduction independent of the thread count: Eigen is built single-threaded
// (EIGEN_DONT_PARALLELIZE, reference/CMakeLists.txt), its K blocking depends
// only on K, and the tile grid never moves. OpenMP splits tiles, not sums.
constexpr int64_t kGemmRowTile = 256;
constexpr int64_t kGemmColTile = 512;

// Ref: torch.nn.Linear.forward (y = x W^T + b)
// x [..., K], weight [M, K], bias [M] -> [..., M]. Eigen GEMMs per output tile.
template <class T>
Tensor<T> linear(const Tensor<T>& x, const LinearW<T>& w) {
  const int64_t K = x.dim(-1), M = w.weight.dim(0), N = x.rows();
  ZIMAGE_CHECK(w.weight.dim(1) == K, "linear: input width " + std::to_string(K) + " != weight " + shape_str(w.weight.shape));
  Shape out_shape = x.shape;
  out_shape.back() = M;
  Tensor<T> y(out_shape);
  auto Y = y.as_matrix();
  const auto X = x.as_matrix();
  const auto W = w.weight.as_matrix();
  const int64_t row_tiles = (N + kGemmRowTile - 1) / kGemmRowTile, col_tiles = (M + kGemmColTile - 1) / kGemmColTile;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t i = 0; i < row_tiles; ++i)
    for (int64_t j = 0; j < col_tiles; ++j) {
      const int64_t r0 = i * kGemmRowTile, c0 = j * kGemmColTile;
      const int64_t rows = std::min(kGemmRowTile, N - r0), cols = std::min(kGemmColTile, M - c0);
      Y.block(r0, c0, rows, cols).noalias() = X.middleRows(r0, rows) * W.middleRows(c0, cols).transpose();
    }
  if (w.has_bias()) Y.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(w.bias.ptr(), M);
  return y;
}

}  // namespace zimage

#include "weight_layout.h"

namespace zimage::gpu {

Tensor<float> concat_linear_weights(const std::vector<const Tensor<float>*>& weights) {
  ZIMAGE_CHECK(!weights.empty(), "concat_linear_weights: nothing to concatenate");
  const int64_t in = weights[0]->dim(1);
  int64_t out = 0;
  for (const auto* w : weights) {
    ZIMAGE_CHECK(w->ndim() == 2 && w->dim(1) == in, "concat_linear_weights: weight " + shape_str(w->shape) +
                                                        " does not match input width " + std::to_string(in));
    out += w->dim(0);
  }
  Tensor<float> cat({out, in});
  auto dst = cat.data.begin();
  for (const auto* w : weights) dst = std::copy(w->data.begin(), w->data.end(), dst);
  return cat;
}

Tensor<float> qkv_part(const Tensor<float>& qkv, int which) {
  const int64_t C3 = qkv.dim(-1), C = C3 / 3;
  ZIMAGE_CHECK(C3 % 3 == 0 && which >= 0 && which < 3, "qkv_part: width " + std::to_string(C3) + ", part " +
                                                           std::to_string(which));
  Shape shape = qkv.shape;
  shape.back() = C;
  Tensor<float> part(shape);
  for (int64_t r = 0; r < qkv.rows(); ++r)
    std::copy(qkv.ptr() + r * C3 + which * C, qkv.ptr() + r * C3 + (which + 1) * C, part.ptr() + r * C);
  return part;
}

}  // namespace zimage::gpu

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

}  // namespace zimage::gpu

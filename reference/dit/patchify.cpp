#include "dit/patchify.h"

#include "dit/config.h"

namespace zimage {

Tensor<int32_t> create_coordinate_grid(const std::array<int64_t, 3>& size, const std::array<int64_t, 3>& start) {
  Tensor<int32_t> ids({size[0] * size[1] * size[2], 3});
  int64_t r = 0;
  for (int64_t i = 0; i < size[0]; ++i)
    for (int64_t j = 0; j < size[1]; ++j)
      for (int64_t k = 0; k < size[2]; ++k, ++r) {
        ids[r * 3 + 0] = int32_t(start[0] + i);
        ids[r * 3 + 1] = int32_t(start[1] + j);
        ids[r * 3 + 2] = int32_t(start[2] + k);
      }
  return ids;
}

PaddedIds pad_with_ids(int64_t ori_len, const std::array<int64_t, 3>& grid, const std::array<int64_t, 3>& start) {
  PaddedIds p;
  p.ori_len = ori_len;
  p.pad_len = pad_to_seq_multiple(ori_len) - ori_len;
  p.total_len = ori_len + p.pad_len;
  const Tensor<int32_t> g = create_coordinate_grid(grid, start);
  p.pos_ids = Tensor<int32_t>({g.dim(0) + p.pad_len, 3});  // pad rows stay (0, 0, 0)
  std::copy(g.data.begin(), g.data.end(), p.pos_ids.data.begin());
  p.pad_mask = Tensor<int32_t>({p.total_len});
  for (int64_t r = ori_len; r < p.total_len; ++r) p.pad_mask[r] = 1;
  return p;
}

}  // namespace zimage

// RoPE freqs of a unified [image, caption] sequence for the real-size block tests.
#pragma once
#include <cstdint>

#include "dit/config.h"
#include "dit/rope.h"

namespace zimage::testing {

// L rows: image tokens (33, h, w) on a grid `grid_w` wide, then a 32-row caption (1 + i, 0, 0),
// the positions patchify_and_embed gives a 32-token caption and its image. [1, L, D/2, 2].
template <class T>
Tensor<T> unified_freqs(const ZImageConfig& cfg, int64_t L, int64_t grid_w) {
  Tensor<int32_t> ids({L, 3});
  for (int64_t r = 0; r < L; ++r) {
    const bool image = r < L - 32;
    ids[r * 3 + 0] = int32_t(image ? 33 : r - (L - 32) + 1);
    ids[r * 3 + 1] = int32_t(image ? r / grid_w : 0);
    ids[r * 3 + 2] = int32_t(image ? r % grid_w : 0);
  }
  return rope_embedder(precompute_freqs_cis<T>(cfg.axes_dims, cfg.axes_lens, cfg.rope_theta), ids)
      .reshaped({1, L, cfg.head_dim() / 2, 2});
}

}  // namespace zimage::testing

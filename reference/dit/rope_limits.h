// What the RoPE tables of a config can address, and the check that runs
// before any compute (docs/rope.md).
//
// Positions (diffusers patchify_and_embed): caption rows (1 + i, 0, 0) for
// i < Lc_pad, Lc_pad = caption length rounded up to SEQ_MULTI_OF; image
// tokens (Lc_pad + 1 + f, h, w). Table a holds rows 0 .. axes_lens[a] - 1,
// so the image needs Lc_pad + F_tokens <= axes_lens[0] - 1, and
// H_tokens <= axes_lens[1], W_tokens <= axes_lens[2].
#pragma once
#include <array>
#include <cstdint>
#include <string>

#include "core/tensor.h"
#include "dit/config.h"

namespace zimage {

struct RopeLimits {
  int64_t max_caption = 0;       // longest caption (tokens) for a single-frame image
  int64_t max_padded_caption = 0;
  int64_t max_h_tokens = 0, max_w_tokens = 0;  // patches per side
  int64_t max_h_latent = 0, max_w_latent = 0;  // latent pixels per side (tokens x patch)
};
RopeLimits rope_limits(const ZImageConfig& cfg);

// Caption length rounded up to SEQ_MULTI_OF.
int64_t padded_caption_len(int64_t caption_len);

// Rows each axis needs for one item: max position + 1 per axis.
std::array<int64_t, 3> rope_rows_needed(const ZImageConfig& cfg, int64_t caption_len, const Shape& x_shape);

// Throws one line naming the input tensor, the caption length, its padded
// length, the row it needs, the table size and the longest caption (or the
// largest image) the config accepts. `item` names x.{item} / cap_feats.{item}.
void check_rope_positions(const ZImageConfig& cfg, int64_t caption_len, const Shape& x_shape, size_t item);

// `zimage rope-limits`: the limits and why, as text.
std::string describe_rope_limits(const ZImageConfig& cfg);

}  // namespace zimage

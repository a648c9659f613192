// The DiT-side research knobs (docs/experiments.md): what happens to
// prompt embeddings longer than the DiT accepts (long-prompt modes) and to
// caption positions past the RoPE table (RoPE scaling). Every definition here
// is written out in docs/experiments.md; the defaults (None) change nothing.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "dit/config.h"

namespace zimage {

// ---- Long prompts ----------------------------------------------------------

// --long-prompt-mode: an embedding [L, C] with L > N becomes [N, C]; L <= N passes unchanged.
//   truncate        rows 0..N-1.
//   interpolate     torch F.interpolate(mode='linear', align_corners=False) on the token axis:
//                   src_j = max(0, (j + 0.5) L/N - 0.5), i0 = floor(src_j), i1 = min(i0 + 1, L - 1),
//                   out_j = (1 - a) e_i0 + a e_i1, a = src_j - i0.
//   pool            torch adaptive_avg_pool1d's groups: group g = rows [floor(gL/N), ceil((g+1)L/N)),
//                   out_g = their mean.
//   attention_pool  importance_i = max(0, 1 - mean_{j: 0 < |i-j| <= 2, 0 <= j < L} cos(e_i, e_j))
//                   (cos = 0 when either row is all zeros); out_g = sum w_i e_i / sum w_i over
//                   pool's group g with w = importance; a group whose weights sum to 0 takes the
//                   plain mean (pool's value).
// Arithmetic in double, the result rounded to T once.
enum class LongPromptMode { None, Truncate, Interpolate, Pool, AttentionPool };

// Throws "--long-prompt-mode must be truncate, interpolate, pool or attention_pool, not 'X'".
LongPromptMode parse_long_prompt_mode(const std::string& s);
std::string long_prompt_mode_name(LongPromptMode m);

struct LongPromptOptions {
  LongPromptMode mode = LongPromptMode::None;
  int64_t target = 0;  // N; 0: the config's longest caption (rope_limits(cfg).max_caption, 1504 for Turbo)
  // N for this config; throws naming --long-prompt-target when it is not positive.
  int64_t target_for(const ZImageConfig& cfg) const;
};

// Group g of adaptive_avg_pool1d(L -> N): rows [first, last).
std::pair<int64_t, int64_t> pool_group(int64_t g, int64_t L, int64_t N);
// attention_pool's weights, one per row of e [L, C].
template <class T>
std::vector<double> attention_pool_importance(const Tensor<T>& e);
// e [L, C] -> [min(L, N), C] by `mode` (None: e unchanged). Throws when N <= 0.
template <class T>
Tensor<T> fit_long_prompt(const Tensor<T>& e, LongPromptMode mode, int64_t N);

// ---- RoPE past the table ---------------------------------------------------

// --rope-scaling, for an item whose padded caption Lc_pad exceeds the config's longest padded
// caption P (rope_limits(cfg).max_padded_caption, 1504 for Turbo); items within P are unchanged.
//   extrapolate  (--rope-extend) the tables computed as long as the positions need.
//   linear       position interpolation on axis 0: caption row i (position 1 + i) is placed at
//                (1 + i) P / Lc_pad (the integer product, then one division in double), the last
//                one at P; the image at P + 1 + f (where a caption
//                of P tokens puts it); image pad rows stay at 0; axes 1 and 2 unchanged.
//   ntk          axis 0's theta becomes theta (Lc_pad / P)^(d0 / (d0 - 2)), d0 = axes_dims[0];
//                positions unchanged (past the table); axes 1 and 2 unchanged.
// linear and ntk evaluate the angle from the formula, never the table: angle = fp32(pos * f_k),
// f_k = 1 / theta_a^(2k / d_a) and the product in double, cos/sin in T; for an integer position
// and the config's theta that is bitwise the table's row (RopeScaling tests).
enum class RopeScaling { None, Extrapolate, Linear, Ntk };

// Throws "--rope-scaling must be extrapolate, linear or ntk, not 'X'".
RopeScaling parse_rope_scaling(const std::string& s);
std::string rope_scaling_name(RopeScaling s);

// Per-axis (theta, position scale, image axis-0 position shift) of one item under `s`.
struct RopeItemScaling {
  bool active = false;             // Lc_pad > P and s is linear or ntk
  std::array<double, 3> theta{};   // per axis
  // axis-0 caption position p becomes double(p * caption_num) / double(caption_den) (one
  // rounding; the last caption row lands exactly on P)
  int64_t caption_num = 1, caption_den = 1;
  int64_t image_shift = 0;         // added to the image's (non-zero) axis-0 positions
};
RopeItemScaling rope_item_scaling(const ZImageConfig& cfg, RopeScaling s, int64_t lc_pad);

// Ref: transformer_z_image.py RopeEmbedder (the formula, at real-valued positions)
// freqs [N, D/2, 2] for ids [N, 3] of the caption (`caption`) or the image of one item:
// axis 0 of caption rows scaled, of image rows shifted (0 stays 0), per-axis theta.
template <class T>
Tensor<T> rope_freqs_scaled(const std::vector<int>& axes_dims, const RopeItemScaling& sc, const Tensor<int32_t>& ids,
                            bool caption);

}  // namespace zimage

#include "dit/rope_limits.h"

#include <sstream>

namespace zimage {

int64_t padded_caption_len(int64_t caption_len) {
  return pad_to_seq_multiple(caption_len);
}

RopeLimits rope_limits(const ZImageConfig& cfg) {
  RopeLimits r;
  // The image (one frame) sits at Lc_pad + 1, which must be <= axes_lens[0] - 1.
  r.max_padded_caption = (int64_t(cfg.axes_lens[0]) - 2) / SEQ_MULTI_OF * SEQ_MULTI_OF;
  r.max_caption = std::max<int64_t>(r.max_padded_caption, 0);
  r.max_h_tokens = cfg.axes_lens[1];
  r.max_w_tokens = cfg.axes_lens[2];
  r.max_h_latent = r.max_h_tokens * cfg.patch_size();
  r.max_w_latent = r.max_w_tokens * cfg.patch_size();
  return r;
}

std::array<int64_t, 3> rope_rows_needed(const ZImageConfig& cfg, int64_t caption_len, const Shape& x) {
  const int64_t lc_pad = padded_caption_len(caption_len);
  const int64_t f_tokens = x[1] / cfg.f_patch_size(), h_tokens = x[2] / cfg.patch_size(), w_tokens = x[3] / cfg.patch_size();
  // Caption rows reach lc_pad; the image's last frame reaches lc_pad + f_tokens.
  return {lc_pad + f_tokens + 1, h_tokens, w_tokens};
}

void check_rope_positions(const ZImageConfig& cfg, int64_t caption_len, const Shape& x, size_t item) {
  const auto need = rope_rows_needed(cfg, caption_len, x);
  const RopeLimits lim = rope_limits(cfg);
  const std::string i = std::to_string(item);
  if (need[0] > cfg.axes_lens[0]) {
    std::ostringstream m;
    m << "cap_feats." << i << ": a caption of " << caption_len << " tokens pads to " << padded_caption_len(caption_len)
      << " and places the image at RoPE axis-0 position " << need[0] - 1 << ", past the table of axes_lens[0] = "
      << cfg.axes_lens[0] << " rows (positions 0.." << cfg.axes_lens[0] - 1 << "); this config accepts captions of at most "
      << lim.max_caption << " tokens (--rope-extend extrapolates past the trained range)";
    throw Error(m.str());
  }
  for (int a = 1; a <= 2; ++a)
    if (need[size_t(a)] > cfg.axes_lens[size_t(a)]) {
      std::ostringstream m;
      m << "x." << i << ": an image of " << x[2] << " x " << x[3] << " latent pixels is " << need[1] << " x " << need[2]
        << " patches and needs RoPE axis-" << a << " position " << need[size_t(a)] - 1 << ", past the table of axes_lens["
        << a << "] = " << cfg.axes_lens[size_t(a)] << " rows; this config accepts at most " << lim.max_h_tokens << " x "
        << lim.max_w_tokens << " patches (" << lim.max_h_latent << " x " << lim.max_w_latent
        << " latent pixels) (--rope-extend extrapolates past the trained range)";
      throw Error(m.str());
    }
}

std::string describe_rope_limits(const ZImageConfig& cfg) {
  const RopeLimits r = rope_limits(cfg);
  std::ostringstream o;
  o << "axes_dims [" << cfg.axes_dims[0] << ", " << cfg.axes_dims[1] << ", " << cfg.axes_dims[2] << "], axes_lens ["
    << cfg.axes_lens[0] << ", " << cfg.axes_lens[1] << ", " << cfg.axes_lens[2] << "], patch " << cfg.patch_size() << "\n"
    << "longest caption: " << r.max_caption << " tokens\n"
    << "  why: caption rows take axis-0 positions 1..Lc_pad (Lc rounded up to " << SEQ_MULTI_OF
    << "), and the image sits at Lc_pad + 1;\n"
    << "       the axis-0 table has rows 0.." << cfg.axes_lens[0] - 1 << ", so Lc_pad + 1 <= " << cfg.axes_lens[0] - 1
    << " gives Lc_pad <= " << cfg.axes_lens[0] - 2 << "; the largest multiple of " << SEQ_MULTI_OF << " is "
    << r.max_padded_caption << ", so Lc <= " << r.max_caption << ".\n"
    << "       A caption of " << r.max_caption + 1 << " tokens pads to " << padded_caption_len(r.max_caption + 1)
    << " and needs row " << padded_caption_len(r.max_caption + 1) + 1 << ".\n"
    << "largest image: " << r.max_h_tokens << " x " << r.max_w_tokens << " patches = " << r.max_h_latent << " x "
    << r.max_w_latent << " latent pixels (" << r.max_h_latent * 8 << " x " << r.max_w_latent * 8
    << " image pixels with the 8x VAE)\n"
    << "  why: patch rows and columns take axis-1 and axis-2 positions 0..n-1; those tables have " << cfg.axes_lens[1]
    << " and " << cfg.axes_lens[2] << " rows.\n";
  return o.str();
}

}  // namespace zimage

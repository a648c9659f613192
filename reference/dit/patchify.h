#pragma once
#include <algorithm>
#include <array>
#include <vector>

#include "dit/config.h"
#include "nn/common.h"
#include "dit/rope.h"

namespace zimage {

// Ref: transformer_z_image.py ZImageTransformer2DModel._patchify_image
// image [C, F, H, W] -> [(F/pf)(H/p)(W/p), pf*p*p*C]; in-patch order
// (pf, ph, pw, c) with c fastest, tokens in (f, h, w) order.
template <class T>
Tensor<T> patchify_image(const Tensor<T>& image, int p, int pf) {
  const int64_t C = image.dim(0), F = image.dim(1), H = image.dim(2), W = image.dim(3);
  const int64_t Ft = F / pf, Ht = H / p, Wt = W / p, P = int64_t(pf) * p * p * C;
  Tensor<T> out({Ft * Ht * Wt, P});
  for (int64_t f = 0; f < Ft; ++f)
    for (int64_t h = 0; h < Ht; ++h)
      for (int64_t w = 0; w < Wt; ++w) {
        T* dst = out.ptr() + ((f * Ht + h) * Wt + w) * P;
        for (int64_t a = 0; a < pf; ++a)
          for (int64_t b = 0; b < p; ++b)
            for (int64_t d = 0; d < p; ++d)
              for (int64_t c = 0; c < C; ++c)
                *dst++ = image[((c * F + f * pf + a) * H + h * p + b) * W + w * p + d];
      }
  return out;
}

// Ref: transformer_z_image.py ZImageTransformer2DModel.unpatchify (basic mode)
// x [L >= n_tokens, pf*p*p*C] -> [C, F, H, W]; rows past the image are ignored.
template <class T>
Tensor<T> unpatchify(const Tensor<T>& x, const std::array<int64_t, 3>& size, int p, int pf, int64_t C) {
  const int64_t F = size[0], H = size[1], W = size[2], Ft = F / pf, Ht = H / p, Wt = W / p, P = int64_t(pf) * p * p * C;
  ZIMAGE_CHECK(x.dim(-1) == P && x.rows() >= Ft * Ht * Wt, "unpatchify: tokens " + shape_str(x.shape) + " for image " +
                                                               shape_str({C, F, H, W}));
  Tensor<T> out({C, F, H, W});
  for (int64_t f = 0; f < Ft; ++f)
    for (int64_t h = 0; h < Ht; ++h)
      for (int64_t w = 0; w < Wt; ++w) {
        const T* src = x.ptr() + ((f * Ht + h) * Wt + w) * P;
        for (int64_t a = 0; a < pf; ++a)
          for (int64_t b = 0; b < p; ++b)
            for (int64_t d = 0; d < p; ++d)
              for (int64_t c = 0; c < C; ++c) out[((c * F + f * pf + a) * H + h * p + b) * W + w * p + d] = *src++;
      }
  return out;
}

// Ref: transformer_z_image.py ZImageTransformer2DModel.create_coordinate_grid
// -> [s0*s1*s2, 3] int32, row-major over (i0, i1, i2), values start + index.
Tensor<int32_t> create_coordinate_grid(const std::array<int64_t, 3>& size, const std::array<int64_t, 3>& start);

// Result of _pad_with_ids for one item.
struct PaddedIds {
  Tensor<int32_t> pos_ids;   // [grid rows + pad_len, 3]: grid ids, then (0,0,0) per pad row
  Tensor<int32_t> pad_mask;  // [total_len]: 1 on pad rows
  int64_t ori_len = 0, pad_len = 0, total_len = 0;
};

// Ref: transformer_z_image.py ZImageTransformer2DModel._pad_with_ids (ids and mask)
// Pads ori_len to a multiple of SEQ_MULTI_OF. Note diffusers' quirk, kept:
// pos_ids is the whole grid plus pad_len (0,0,0) rows, so for captions (whose
// grid already spans the padded length) it is pad_len rows longer than the
// features; _prepare_sequence trims it.
PaddedIds pad_with_ids(int64_t ori_len, const std::array<int64_t, 3>& grid, const std::array<int64_t, 3>& start);

// Rows [0, ori_len) of feat, then the last row repeated up to total_len
// (Ref: _pad_with_ids, feat[-1:].repeat(pad_len, 1)).
template <class T>
Tensor<T> pad_rows_with_last(const Tensor<T>& feat, int64_t total_len) {
  const int64_t n = feat.dim(0), w = feat.dim(1);
  Tensor<T> out({total_len, w});
  std::copy(feat.data.begin(), feat.data.end(), out.data.begin());
  for (int64_t r = n; r < total_len; ++r) std::copy(feat.ptr() + (n - 1) * w, feat.ptr() + n * w, out.ptr() + r * w);
  return out;
}

// Everything patchify_and_embed returns for a batch, per item.
template <class T>
struct Patchified {
  std::vector<Tensor<T>> x, cap;                  // [Lx_pad, P], [Lc_pad, cap_feat_dim]
  std::vector<std::array<int64_t, 3>> x_size;     // (F, H, W)
  std::vector<Tensor<int32_t>> x_pos_ids, cap_pos_ids, x_pad_mask, cap_pad_mask;
};

// Ref: transformer_z_image.py ZImageTransformer2DModel.patchify_and_embed
// Caption ids (1 + i, 0, 0) for every padded row i (pad rows included);
// image ids (Lc_pad + 1, h, w), image pad rows (0, 0, 0).
template <class T>
Patchified<T> patchify_and_embed(const std::vector<Tensor<T>>& images, const std::vector<Tensor<T>>& caps, int p, int pf) {
  Patchified<T> out;
  const int64_t first = mutated(Mutation::PositionsFromZero) ? 0 : 1;
  for (size_t i = 0; i < images.size(); ++i) {
    const int64_t lc = caps[i].dim(0), lc_pad = pad_to_seq_multiple(lc);
    PaddedIds cap = pad_with_ids(lc, {lc_pad, 1, 1}, {first, 0, 0});
    out.cap.push_back(pad_rows_with_last(caps[i], cap.total_len));

    const Tensor<T> patches = patchify_image(images[i], p, pf);
    const std::array<int64_t, 3> tokens{images[i].dim(1) / pf, images[i].dim(2) / p, images[i].dim(3) / p};
    PaddedIds img = pad_with_ids(patches.dim(0), tokens, {cap.total_len + first, 0, 0});
    if (mutated(Mutation::PadPositionsSwapped)) {
      for (int64_t r = cap.ori_len; r < cap.total_len; ++r)
        for (int a = 0; a < 3; ++a) cap.pos_ids[r * 3 + a] = 0;
      for (int64_t r = img.ori_len; r < img.total_len; ++r) img.pos_ids[r * 3] = int32_t(cap.total_len + first);
    }
    out.x.push_back(pad_rows_with_last(patches, img.total_len));
    out.x_size.push_back({images[i].dim(1), images[i].dim(2), images[i].dim(3)});
    out.cap_pos_ids.push_back(std::move(cap.pos_ids));
    out.cap_pad_mask.push_back(std::move(cap.pad_mask));
    out.x_pos_ids.push_back(std::move(img.pos_ids));
    out.x_pad_mask.push_back(std::move(img.pad_mask));
  }
  return out;
}

// The longest unified [image, caption] sequence of a batch, each stream padded to SEQ_MULTI_OF
// as patchify_and_embed pads it: the L of the main layers and of the attention budgets.
template <class T>
int64_t unified_seq_len(const std::vector<Tensor<T>>& images, const std::vector<Tensor<T>>& caps, int p, int pf) {
  int64_t L = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    const int64_t tokens = (images[i].dim(1) / pf) * (images[i].dim(2) / p) * (images[i].dim(3) / p);
    L = std::max(L, pad_to_seq_multiple(tokens) + pad_to_seq_multiple(caps[i].dim(0)));
  }
  return L;
}

// torch.cat(items, dim=0) for tensors that agree past dim 0.
template <class T>
Tensor<T> cat_rows(const std::vector<Tensor<T>>& items) {
  Shape shape = items.at(0).shape;
  shape[0] = 0;
  for (const auto& t : items) shape[0] += t.dim(0);
  Tensor<T> out(shape);
  auto dst = out.data.begin();
  for (const auto& t : items) dst = std::copy(t.data.begin(), t.data.end(), dst);
  return out;
}

// A batch padded to one length, as the blocks consume it.
template <class T>
struct Sequence {
  Tensor<T> feats;              // [B, Lmax, C], batch-padding rows 0
  Tensor<T> freqs;              // [B, Lmax, D/2, 2], batch-padding rows as diffusers pads them
  std::optional<KeyMask> mask;  // [B, Lmax], only when item lengths differ
  std::vector<int64_t> seqlens;
  const KeyMask* mask_ptr() const { return mask ? &*mask : nullptr; }
};

// pad_sequence(batch_first=True, padding_value=0) of [L_i, W] tensors,
// truncated to `rows` (pass -1 for the longest item).
template <class T>
Tensor<T> pad_sequence(const std::vector<Tensor<T>>& items, int64_t rows = -1) {
  int64_t longest = 0;
  for (const auto& t : items) longest = std::max(longest, t.dim(0));
  const int64_t L = rows < 0 ? longest : rows, B = int64_t(items.size());
  const int64_t w = items.at(0).numel() / std::max<int64_t>(items[0].dim(0), 1);
  Shape shape = items[0].shape;
  shape[0] = L;
  shape.insert(shape.begin(), B);
  Tensor<T> out(shape);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = std::min(items[size_t(b)].dim(0), L) * w;
    std::copy(items[size_t(b)].ptr(), items[size_t(b)].ptr() + n, out.ptr() + b * L * w);
  }
  return out;
}

// Key mask [B, Lmax] with ones on each item's first seqlens[b] rows, or
// nothing when all items have the same length.
inline std::optional<KeyMask> key_mask(const std::vector<int64_t>& seqlens) {
  const int64_t L = *std::max_element(seqlens.begin(), seqlens.end());
  if (std::all_of(seqlens.begin(), seqlens.end(), [&](int64_t s) { return s == L; })) return std::nullopt;
  KeyMask m({int64_t(seqlens.size()), L});
  for (size_t b = 0; b < seqlens.size(); ++b)
    for (int64_t l = 0; l < seqlens[b]; ++l) m[int64_t(b) * L + l] = 1;
  return m;
}

// Ref: transformer_z_image.py ZImageTransformer2DModel._prepare_sequence (noise_mask None)
// feats[i] [L_i, C] (embedded), pos_ids[i] [>= L_i, 3], pad_mask[i] [L_i]:
// pad rows replaced by pad_token [1, C]; freqs from the RoPE tables; batch
// padded; key mask when lengths differ. `item_freqs` (RoPE scaling,
// dit/dit_knobs.h) replaces the gathered freqs, one [L_i, D/2, 2] per item.
template <class T>
Sequence<T> prepare_sequence(std::vector<Tensor<T>> feats, const std::vector<Tensor<int32_t>>& pos_ids,
                             const std::vector<Tensor<int32_t>>& pad_mask, const Tensor<T>& pad_token,
                             const std::vector<Tensor<T>>& rope_tables, Activations<T>* acts = nullptr,
                             const std::string& rope_name = "",
                             const std::vector<Tensor<T>>* item_freqs = nullptr) {
  Sequence<T> s;
  const int64_t C = pad_token.numel();
  if (!mutated(Mutation::PadTokensNotSubstituted))
    for (size_t i = 0; i < feats.size(); ++i)
      for (int64_t r = 0; r < feats[i].dim(0); ++r)
        if (pad_mask[i][r]) std::copy(pad_token.ptr(), pad_token.ptr() + C, feats[i].ptr() + r * C);
  std::vector<Tensor<T>> freqs;
  for (size_t i = 0; i < feats.size(); ++i) {
    s.seqlens.push_back(feats[i].dim(0));
    freqs.push_back(item_freqs ? (*item_freqs)[i] : rope_embedder(rope_tables, pos_ids[i]));
  }
  // diffusers calls the embedder once, on the concatenated ids
  if (acts && !rope_name.empty()) record(acts, rope_name, cat_rows(freqs));
  s.feats = pad_sequence(feats);
  s.freqs = pad_sequence(freqs, s.feats.dim(1));
  s.mask = key_mask(s.seqlens);
  return s;
}

// Ref: transformer_z_image.py ZImageTransformer2DModel._build_unified_sequence (basic mode)
// Per item [x[i][:x_len], cap[i][:cap_len]] (image first), freqs likewise,
// padded to the longest item; key mask when lengths differ.
template <class T>
Sequence<T> build_unified_sequence(const Sequence<T>& x, const Sequence<T>& cap) {
  Sequence<T> u;
  const int64_t B = x.feats.dim(0), C = x.feats.dim(2), P2 = x.freqs.dim(2) * 2;
  std::vector<Tensor<T>> feats, freqs;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t lx = x.seqlens[size_t(b)], lc = cap.seqlens[size_t(b)];
    Tensor<T> f({lx + lc, C}), r({lx + lc, P2 / 2, 2});
    std::copy(x.feats.ptr() + b * x.feats.dim(1) * C, x.feats.ptr() + (b * x.feats.dim(1) + lx) * C, f.ptr());
    std::copy(cap.feats.ptr() + b * cap.feats.dim(1) * C, cap.feats.ptr() + (b * cap.feats.dim(1) + lc) * C, f.ptr() + lx * C);
    std::copy(x.freqs.ptr() + b * x.freqs.dim(1) * P2, x.freqs.ptr() + (b * x.freqs.dim(1) + lx) * P2, r.ptr());
    std::copy(cap.freqs.ptr() + b * cap.freqs.dim(1) * P2, cap.freqs.ptr() + (b * cap.freqs.dim(1) + lc) * P2,
              r.ptr() + lx * P2);
    u.seqlens.push_back(lx + lc);
    feats.push_back(std::move(f));
    freqs.push_back(std::move(r));
  }
  u.feats = pad_sequence(feats);
  u.freqs = pad_sequence(freqs);
  u.mask = key_mask(u.seqlens);
  return u;
}

}  // namespace zimage

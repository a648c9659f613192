// T0 exact: patchify/unpatchify, padding, position ids, key masks, pad-token
// substitution, RoPE gather bounds. Expected values are derived by hand from
// diffusers' definitions (cited per test), not from our output.
#include "dit/patchify.h"
#include "support/test_support.h"

namespace zimage {
namespace {

// diffusers _patchify_image: view(C, Ft, pF, Ht, pH, Wt, pW).permute(1,3,5,2,4,6,0)
// -> token (f, h, w), feature (pf, ph, pw, c) with c fastest.
TEST(PatchifyT0, TokenAndFeatureOrder_C2_H4_W6) {
  Tensor<float> img({2, 1, 4, 6});
  for (int64_t i = 0; i < img.numel(); ++i) img[i] = float(i);
  const Tensor<float> t = patchify_image(img, 2, 1);
  ASSERT_EQ(t.shape, (Shape{6, 8}));
  // token (h=1, w=2) is row 1*3+2 = 5; feature (ph, pw, c) -> image[c, 0, 2+ph, 4+pw]
  for (int ph = 0; ph < 2; ++ph)
    for (int pw = 0; pw < 2; ++pw)
      for (int c = 0; c < 2; ++c)
        EXPECT_EQ(t[5 * 8 + (ph * 2 + pw) * 2 + c], img[(c * 4 + 2 + ph) * 6 + 4 + pw]) << ph << pw << c;
}

TEST(PatchifyT0, UnpatchifyInvertsPatchifyIgnoringPadRows_C16_H10_W14) {
  const Tensor<float> img = testing::randn<float>({16, 1, 10, 14}, testing::test_seed());
  const Tensor<float> tokens = pad_rows_with_last(patchify_image(img, 2, 1), 64);  // 35 tokens + 29 pad rows
  const Tensor<float> back = unpatchify(tokens, {1, 10, 14}, 2, 1, 16);
  testing::expect_exact("unpatchify(patchify(x))", numerics::compare(back, img));
}

// diffusers _pad_with_ids for a caption of 7: grid (32, 1, 1) from (1, 0, 0),
// then 25 extra (0,0,0) rows (the list is pad_len longer than the features).
TEST(PositionIdsT0, Caption7PadsTo32_IdsOneTo32_ThenQuirkRows) {
  const PaddedIds p = pad_with_ids(7, {32, 1, 1}, {1, 0, 0});
  EXPECT_EQ(p.total_len, 32);
  ASSERT_EQ(p.pos_ids.shape, (Shape{57, 3}));
  for (int64_t r = 0; r < 57; ++r) {
    EXPECT_EQ(p.pos_ids[r * 3 + 0], r < 32 ? r + 1 : 0) << r;
    EXPECT_EQ(p.pos_ids[r * 3 + 1], 0);
    EXPECT_EQ(p.pos_ids[r * 3 + 2], 0);
  }
  for (int64_t r = 0; r < 32; ++r) EXPECT_EQ(p.pad_mask[r], r >= 7 ? 1 : 0) << r;
}

// Image of 5x5 tokens after a 32-row caption: (33, h, w), pad rows (0, 0, 0).
TEST(PositionIdsT0, Image25TokensAfterCaption32) {
  const PaddedIds p = pad_with_ids(25, {1, 5, 5}, {33, 0, 0});
  ASSERT_EQ(p.pos_ids.shape, (Shape{32, 3}));
  for (int64_t r = 0; r < 32; ++r) {
    const bool pad = r >= 25;
    EXPECT_EQ(p.pos_ids[r * 3 + 0], pad ? 0 : 33) << r;
    EXPECT_EQ(p.pos_ids[r * 3 + 1], pad ? 0 : r / 5) << r;
    EXPECT_EQ(p.pos_ids[r * 3 + 2], pad ? 0 : r % 5) << r;
    EXPECT_EQ(p.pad_mask[r], pad ? 1 : 0) << r;
  }
}

TEST(PositionIdsT0, Caption32HasNoPadRows) {
  const PaddedIds p = pad_with_ids(32, {32, 1, 1}, {1, 0, 0});
  EXPECT_EQ(p.pad_len, 0);
  EXPECT_EQ(p.pos_ids.dim(0), 32);
  EXPECT_EQ(p.pos_ids[31 * 3], 32);
}

TEST(PatchifyAndEmbedT0, PadRowsRepeatLastRowAndImageStartsAtPaddedCaptionPlusOne) {
  const Tensor<float> img = testing::randn<float>({16, 1, 6, 14}, 5);  // 21 tokens
  const Tensor<float> cap = testing::randn<float>({40, 8}, 6);         // pads to 64
  const Patchified<float> pt = patchify_and_embed<float>({img}, {cap}, 2, 1);
  ASSERT_EQ(pt.cap[0].shape, (Shape{64, 8}));
  for (int64_t r = 40; r < 64; ++r)
    for (int c = 0; c < 8; ++c) EXPECT_EQ(pt.cap[0][r * 8 + c], cap[39 * 8 + c]);
  ASSERT_EQ(pt.x[0].shape, (Shape{32, 64}));
  EXPECT_EQ(pt.x_pos_ids[0][0], 65);   // Lc_pad + 1
  EXPECT_EQ(pt.x_pos_ids[0][20 * 3 + 1], 2);  // token 20 = (h 2, w 6)
  EXPECT_EQ(pt.x_pos_ids[0][20 * 3 + 2], 6);
  EXPECT_EQ(pt.x_pos_ids[0][21 * 3], 0);  // first image pad row
}

TEST(KeyMaskT0, OnlyWhenLengthsDiffer) {
  EXPECT_FALSE(key_mask({64, 64}).has_value());
  const auto m = key_mask({64, 35});
  ASSERT_TRUE(m.has_value());
  ASSERT_EQ(m->shape, (Shape{2, 64}));
  for (int64_t l = 0; l < 64; ++l) {
    EXPECT_EQ((*m)[l], 1);
    EXPECT_EQ((*m)[64 + l], l < 35 ? 1 : 0) << l;
  }
}

// _prepare_sequence: torch.where(pad_mask, pad_token, feats) after the embedder.
TEST(PadTokenT0, PadRowsBecomePadTokenOthersUntouched) {
  const Tensor<double> feats = testing::randn<double>({32, 4}, 8);
  Tensor<int32_t> mask({32});
  for (int64_t r = 25; r < 32; ++r) mask[r] = 1;
  const Tensor<double> tok({1, 4}, {0.5, -1.5, 2.5, -3.5});
  const auto tables = precompute_freqs_cis<double>({2, 2, 4}, {64, 8, 8}, 256.0);
  const Sequence<double> s = prepare_sequence<double>({feats}, {Tensor<int32_t>({32, 3})}, {mask}, tok, tables);
  for (int64_t r = 0; r < 32; ++r)
    for (int c = 0; c < 4; ++c) EXPECT_EQ(s.feats[r * 4 + c], r >= 25 ? tok[c] : feats[r * 4 + c]) << r;
}

TEST(RopeGatherT0, PositionPastTableIsAnErrorNamingIt) {
  const auto tables = precompute_freqs_cis<float>({8, 12, 12}, {1536, 512, 512}, 256.0);
  Tensor<int32_t> ids({1, 3}, {1536, 0, 0});
  try {
    rope_embedder(tables, ids);
    FAIL() << "no error for position 1536";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("position 1536 on axis 0"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("1536 rows"), std::string::npos) << e.what();
  }
  ids = Tensor<int32_t>({1, 3}, {1535, 511, 511});  // last rows are addressable
  EXPECT_NO_THROW(rope_embedder(tables, ids));
}

}  // namespace
}  // namespace zimage

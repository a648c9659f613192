// The DiT-side knobs (dit/dit_knobs.h, docs/experiments.md) against their
// definitions on small hand-computed cases: the long-prompt modes (edges: N
// equal to the length, one token over, several times N; an all-zero-weight
// group; a zero row), RoPE scaling against its formula (linear, ntk; every
// row in range bitwise the table's), and the defaults bitwise unchanged.
#include <cmath>

#include "dit/dit_knobs.h"
#include "dit/rope_limits.h"
#include "io/synthetic.h"
#include "dit/transformer.h"
#include "dit/rope.h"
#include "support/expect_errors.h"
#include "support/test_support.h"

namespace zimage {
namespace {

// [L, 2] rows (i, i^2).
Tensor<double> ramp(int64_t L) {
  Tensor<double> e({L, 2});
  for (int64_t i = 0; i < L; ++i) e[2 * i] = double(i), e[2 * i + 1] = double(i * i);
  return e;
}

void expect_rows(const Tensor<double>& got, const std::vector<std::vector<double>>& want) {
  ASSERT_EQ(got.dim(0), int64_t(want.size()));
  for (size_t r = 0; r < want.size(); ++r)
    for (size_t c = 0; c < want[r].size(); ++c)
      EXPECT_NEAR(got[int64_t(r * want[r].size() + c)], want[r][c], 1e-14) << "row " << r << " col " << c;
}

const LongPromptMode kModes[] = {LongPromptMode::Truncate, LongPromptMode::Interpolate, LongPromptMode::Pool,
                                 LongPromptMode::AttentionPool};

TEST(LongPrompt, LengthAtOrBelowTargetPassesBitwiseUnchanged) {
  const Tensor<float> e = testing::randn<float>({4, 3}, 11);
  for (LongPromptMode m : kModes)
    for (int64_t N : {4, 5, 100}) {
      const Tensor<float> out = fit_long_prompt(e, m, N);
      EXPECT_EQ(out.shape, e.shape) << long_prompt_mode_name(m) << " N " << N;
      EXPECT_EQ(out.data, e.data) << long_prompt_mode_name(m) << " N " << N;
    }
  EXPECT_EQ(fit_long_prompt(e, LongPromptMode::None, 2).data, e.data);  // the default changes nothing
}

TEST(LongPrompt, TruncateKeepsTheFirstN) {
  expect_rows(fit_long_prompt(ramp(5), LongPromptMode::Truncate, 4), {{0, 0}, {1, 1}, {2, 4}, {3, 9}});
  expect_rows(fit_long_prompt(ramp(12), LongPromptMode::Truncate, 3), {{0, 0}, {1, 1}, {2, 4}});
}

// src_j = (j + 0.5) L/N - 0.5: 5 -> 4 gives 0.125, 1.375, 2.625, 3.875.
TEST(LongPrompt, InterpolateOneOver) {
  expect_rows(fit_long_prompt(ramp(5), LongPromptMode::Interpolate, 4),
              {{0.125, 0.125}, {1.375, 2.125}, {2.625, 7.125}, {3.875, 15.125}});
}
// 12 -> 3: src 1.5, 5.5, 9.5 (halfway between rows: (i^2 + (i+1)^2) / 2).
TEST(LongPrompt, InterpolateSeveralTimesN) {
  expect_rows(fit_long_prompt(ramp(12), LongPromptMode::Interpolate, 3), {{1.5, 2.5}, {5.5, 30.5}, {9.5, 90.5}});
}
// 7 -> 2: scale 3.5, src 1.25, 4.75; and the clamp at 0: 3 -> 2 gives src 0.25, 1.75.
TEST(LongPrompt, InterpolateRaggedAndClamp) {
  expect_rows(fit_long_prompt(ramp(7), LongPromptMode::Interpolate, 2), {{1.25, 1.75}, {4.75, 22.75}});
  expect_rows(fit_long_prompt(ramp(3), LongPromptMode::Interpolate, 2), {{0.25, 0.25}, {1.75, 3.25}});
  // N = 1: src = L/2 - 0.5, the middle.
  expect_rows(fit_long_prompt(ramp(4), LongPromptMode::Interpolate, 1), {{1.5, 2.5}});
}

TEST(LongPrompt, PoolGroupsAreAdaptiveAvgPoolsFloorCeil) {
  using P = std::pair<int64_t, int64_t>;
  EXPECT_EQ(pool_group(0, 5, 4), P(0, 2));
  EXPECT_EQ(pool_group(1, 5, 4), P(1, 3));
  EXPECT_EQ(pool_group(2, 5, 4), P(2, 4));
  EXPECT_EQ(pool_group(3, 5, 4), P(3, 5));
  EXPECT_EQ(pool_group(0, 7, 3), P(0, 3));
  EXPECT_EQ(pool_group(1, 7, 3), P(2, 5));
  EXPECT_EQ(pool_group(2, 7, 3), P(4, 7));
  EXPECT_EQ(pool_group(1, 12, 3), P(4, 8));
}

TEST(LongPrompt, PoolOneOver) {
  expect_rows(fit_long_prompt(ramp(5), LongPromptMode::Pool, 4), {{0.5, 0.5}, {1.5, 2.5}, {2.5, 6.5}, {3.5, 12.5}});
}
TEST(LongPrompt, PoolSeveralTimesN) {
  expect_rows(fit_long_prompt(ramp(12), LongPromptMode::Pool, 3), {{1.5, 3.5}, {5.5, 31.5}, {9.5, 91.5}});
}

// Rows a=(2,0) b=(1,0) c=(0,3) d=(0,1) e=(4,0): cosines are 1 within a direction, 0 across.
// importance: a 1-(1+0)/2 = 1/2, b 1-(1+0+0)/3 = 2/3, c 1-(0+0+1+0)/4 = 3/4, d 1-(0+1+0)/3 = 2/3,
// e 1-(0+0)/2 = 1. Groups (5 -> 4) [0,2) [1,3) [2,4) [3,5):
//   g0 (1/2 a + 2/3 b) / (7/6) = (10/7, 0)    g1 (2/3 b + 3/4 c) / (17/12) = (8/17, 27/17)
//   g2 (3/4 c + 2/3 d) / (17/12) = (0, 35/17) g3 (2/3 d + 1 e) / (5/3) = (12/5, 2/5)
Tensor<double> five_rows() {
  return Tensor<double>({5, 2}, {2, 0, 1, 0, 0, 3, 0, 1, 4, 0});
}
TEST(LongPrompt, AttentionPoolImportanceByHand) {
  const std::vector<double> w = attention_pool_importance(five_rows());
  const std::vector<double> want{0.5, 2.0 / 3, 0.75, 2.0 / 3, 1.0};
  ASSERT_EQ(w.size(), want.size());
  for (size_t i = 0; i < w.size(); ++i) EXPECT_NEAR(w[i], want[i], 1e-15) << "row " << i;
}
TEST(LongPrompt, AttentionPoolOneOverByHand) {
  expect_rows(fit_long_prompt(five_rows(), LongPromptMode::AttentionPool, 4),
              {{10.0 / 7, 0}, {8.0 / 17, 27.0 / 17}, {0, 35.0 / 17}, {12.0 / 5, 2.0 / 5}});
}
// Every row points the same way: every importance is 0, every group takes the plain mean.
TEST(LongPrompt, AttentionPoolAllZeroWeightsTakesThePlainMean) {
  const Tensor<double> e({6, 2}, {1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0});
  for (double w : attention_pool_importance(e)) EXPECT_EQ(w, 0.0);
  expect_rows(fit_long_prompt(e, LongPromptMode::AttentionPool, 2), {{2, 0}, {5, 0}});
}
// A zero row has cosine 0 with everything (importance 1 for itself; its neighbours count a 0).
TEST(LongPrompt, AttentionPoolZeroRow) {
  const Tensor<double> e({3, 2}, {1, 0, 0, 0, 1, 0});
  const std::vector<double> w = attention_pool_importance(e);
  EXPECT_NEAR(w[0], 1.0 - 0.5, 1e-15);  // neighbours: zero row (0), row 2 (1)
  EXPECT_NEAR(w[1], 1.0, 1e-15);
  EXPECT_NEAR(w[2], 0.5, 1e-15);
  // 3 -> 2: groups [0,2) [1,3): (1/2 (1,0) + 1 (0,0)) / 1.5 = (1/3, 0); (1 (0,0) + 1/2 (1,0)) / 1.5 = (1/3, 0)
  expect_rows(fit_long_prompt(e, LongPromptMode::AttentionPool, 2), {{1.0 / 3, 0}, {1.0 / 3, 0}});
}
// Several times N with equal weights inside each group is pool.
TEST(LongPrompt, AttentionPoolSeveralTimesN) {
  const Tensor<double> e = testing::randn<double>({40, 6}, 19);
  const Tensor<double> a = fit_long_prompt(e, LongPromptMode::AttentionPool, 5), p = fit_long_prompt(e, LongPromptMode::Pool, 5);
  ASSERT_EQ(a.shape, (Shape{5, 6}));
  // A hand check of group 0 (rows 0..7) from the importances.
  const std::vector<double> w = attention_pool_importance(e);
  for (int64_t c = 0; c < 6; ++c) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < 8; ++i) num += w[size_t(i)] * e[i * 6 + c], den += w[size_t(i)];
    EXPECT_NEAR(a[c], num / den, 1e-14);
  }
  EXPECT_NE(a.data, p.data) << "weights had no effect";
}

TEST(LongPrompt, BadArgumentsNameTheFlag) {
  const Tensor<float> e = testing::randn<float>({4, 3}, 1);
  EXPECT_THROW_MSG_HAS(fit_long_prompt(e, LongPromptMode::Pool, 0), "--long-prompt-target");
  EXPECT_THROW_MSG_HAS(parse_long_prompt_mode("average"), "--long-prompt-mode must be truncate");
  EXPECT_THROW_MSG_HAS(parse_rope_scaling("yarn"), "--rope-scaling must be extrapolate");
  ZImageConfig c;
  c.axes_lens = {1536, 512, 512};
  EXPECT_EQ((LongPromptOptions{LongPromptMode::Pool, 0}.target_for(c)), 1504);  // the default N: rope-limits' caption
  EXPECT_EQ((LongPromptOptions{LongPromptMode::Pool, 77}.target_for(c)), 77);
  EXPECT_THROW_MSG_HAS((LongPromptOptions{LongPromptMode::Pool, -3}.target_for(c)), "--long-prompt-target");
}

// ---- RoPE scaling ----

ZImageConfig turbo_axes() {
  ZImageConfig c;
  c.axes_dims = {32, 48, 48};
  c.axes_lens = {1536, 512, 512};
  c.rope_theta = 256.0;
  return c;
}

// Caption ids (1 + i, 0, 0), i < n; image ids (lc_pad + 1, h, w) for a 2x2 grid plus one pad row.
Tensor<int32_t> caption_ids(int64_t n) {
  Tensor<int32_t> ids({n, 3});
  for (int64_t i = 0; i < n; ++i) ids[3 * i] = int32_t(1 + i);
  return ids;
}
Tensor<int32_t> image_ids(int64_t lc_pad) {
  Tensor<int32_t> ids({5, 3});
  for (int64_t r = 0; r < 4; ++r) ids[3 * r] = int32_t(lc_pad + 1), ids[3 * r + 1] = int32_t(r / 2), ids[3 * r + 2] = int32_t(r % 2);
  return ids;  // row 4: the pad row (0, 0, 0)
}

// The formula written out here, independently: (cos, sin) of fp32(pos * 1/theta^(2k/d)).
template <class T>
void expect_formula(const Tensor<T>& f, int64_t row, int64_t pair0, int d, double theta, double pos, const std::string& what) {
  for (int k = 0; k < d / 2; ++k) {
    const float angle = float(pos * (1.0 / std::pow(theta, double(2 * k) / double(d))));
    const T* v = f.ptr() + (row * f.dim(1) + pair0 + k) * 2;
    ASSERT_EQ(v[0], std::cos(T(angle))) << what << " row " << row << " k " << k;
    ASSERT_EQ(v[1], std::sin(T(angle))) << what << " row " << row << " k " << k;
  }
}

TEST(RopeScaling, ItemScalingOnlyPastTheLimit) {
  const ZImageConfig c = turbo_axes();
  EXPECT_EQ(rope_limits(c).max_padded_caption, 1504);
  for (RopeScaling s : {RopeScaling::None, RopeScaling::Extrapolate, RopeScaling::Linear, RopeScaling::Ntk})
    EXPECT_FALSE(rope_item_scaling(c, s, 1504).active) << rope_scaling_name(s);
  const RopeItemScaling lin = rope_item_scaling(c, RopeScaling::Linear, 1536);  // one token over: 1505 -> 1536
  EXPECT_TRUE(lin.active);
  EXPECT_EQ(lin.caption_num, 1504);
  EXPECT_EQ(lin.caption_den, 1536);
  EXPECT_EQ(lin.image_shift, 1504 - 1536);
  const RopeItemScaling ntk = rope_item_scaling(c, RopeScaling::Ntk, 3008);  // s = 2
  EXPECT_TRUE(ntk.active);
  EXPECT_DOUBLE_EQ(ntk.theta[0], 256.0 * std::pow(2.0, 32.0 / 30.0));
  EXPECT_EQ(ntk.theta[1], 256.0);
  EXPECT_EQ(ntk.theta[2], 256.0);
}

// Unscaled formula at integer positions = the table's rows, bit for bit (float and double).
template <class T>
void inactive_is_the_table() {
  const ZImageConfig c = turbo_axes();
  const RopeItemScaling none = rope_item_scaling(c, RopeScaling::Linear, 1504);
  const auto tables = precompute_freqs_cis<T>(c.axes_dims, c.axes_lens, c.rope_theta);
  for (const Tensor<int32_t>& ids : {caption_ids(1504), image_ids(1504)}) {
    const auto cmp = numerics::compare(rope_freqs_scaled<T>(c.axes_dims, none, ids, ids.dim(0) == 1504),
                                       rope_embedder(tables, ids));
    testing::expect_exact("formula vs table", cmp);
  }
}
TEST(RopeScaling, FormulaAtIntegerPositionsIsTheTable_float) { inactive_is_the_table<float>(); }
TEST(RopeScaling, FormulaAtIntegerPositionsIsTheTable_double) { inactive_is_the_table<double>(); }

template <class T>
void linear_is_the_formula(int64_t lc_pad) {
  const ZImageConfig c = turbo_axes();
  const RopeItemScaling sc = rope_item_scaling(c, RopeScaling::Linear, lc_pad);
  ASSERT_TRUE(sc.active);
  const Tensor<T> cap = rope_freqs_scaled<T>(c.axes_dims, sc, caption_ids(lc_pad), true);
  for (int64_t i : {int64_t(0), int64_t(1), lc_pad / 3, lc_pad - 2, lc_pad - 1}) {
    expect_formula(cap, i, 0, 32, 256.0, double((1 + i) * 1504) / double(lc_pad), "caption axis 0");
    expect_formula(cap, i, 16, 48, 256.0, 0.0, "caption axis 1");
  }
  // The last caption row lands exactly on P = 1504: its row of the table, bit for bit.
  const auto tables = precompute_freqs_cis<T>(c.axes_dims, c.axes_lens, c.rope_theta);
  Tensor<int32_t> last({1, 3}, {1504, 0, 0});
  const Tensor<T> row = rope_embedder(tables, last);
  EXPECT_TRUE(std::equal(row.data.begin(), row.data.end(), cap.data.begin() + (lc_pad - 1) * cap.dim(1) * 2));
  // The image at P + 1 (integer: the table's row 1505), its pad row at 0; axes 1 and 2 unchanged.
  const Tensor<T> img = rope_freqs_scaled<T>(c.axes_dims, sc, image_ids(lc_pad), false);
  Tensor<int32_t> moved = image_ids(1504);
  testing::expect_exact("image rows at P + 1", numerics::compare(img, rope_embedder(tables, moved)));
}
TEST(RopeScaling, LinearIsTheFormula_OneTokenOver_float) { linear_is_the_formula<float>(1536); }
TEST(RopeScaling, LinearIsTheFormula_OneTokenOver_double) { linear_is_the_formula<double>(1536); }
TEST(RopeScaling, LinearIsTheFormula_FourTimes_double) { linear_is_the_formula<double>(6016); }

template <class T>
void ntk_is_the_formula(int64_t lc_pad) {
  const ZImageConfig c = turbo_axes();
  const RopeItemScaling sc = rope_item_scaling(c, RopeScaling::Ntk, lc_pad);
  const double theta0 = 256.0 * std::pow(double(lc_pad) / 1504.0, 32.0 / 30.0);
  const Tensor<T> cap = rope_freqs_scaled<T>(c.axes_dims, sc, caption_ids(lc_pad), true);
  for (int64_t i : {int64_t(0), lc_pad / 2, lc_pad - 1}) {
    expect_formula(cap, i, 0, 32, theta0, double(1 + i), "caption axis 0");
    expect_formula(cap, i, 16, 48, 256.0, 0.0, "caption axis 1");
  }
  const Tensor<T> img = rope_freqs_scaled<T>(c.axes_dims, sc, image_ids(lc_pad), false);
  expect_formula(img, 3, 0, 32, theta0, double(lc_pad + 1), "image axis 0");
  expect_formula(img, 3, 16, 48, 256.0, 1.0, "image axis 1");
  expect_formula(img, 3, 40, 48, 256.0, 1.0, "image axis 2");
  expect_formula(img, 4, 0, 32, theta0, 0.0, "image pad row");
}
TEST(RopeScaling, NtkIsTheFormula_OneTokenOver_float) { ntk_is_the_formula<float>(1536); }
TEST(RopeScaling, NtkIsTheFormula_FourTimes_double) { ntk_is_the_formula<double>(6016); }

// ---- the forward: defaults bitwise, knobs change what they should ----

struct TinyModel {
  ZImageConfig cfg = testing::tiny_config();
  ZImageWeights<float> w;
  TinyModel() {
    cfg.axes_lens = {64, 32, 32};  // longest caption 32
    w = load_weights<float>(cfg, *synthetic_param_source(testing::synthetic_spec(cfg, testing::test_seed())));
  }
  DitInputs<float> inputs(int64_t caption) const {
    DitInputs<float> in;
    in.x.push_back(testing::randn<float>({cfg.in_channels, 1, 8, 8}, 3));
    in.cap_feats.push_back(testing::randn<float>({caption, cfg.cap_feat_dim}, 4));
    in.t = Tensor<float>({1}, 0.4f);
    return in;
  }
};

TEST(DitKnobsForward, InsideTheLimitEveryRopeScalingIsBitwiseTheDefault) {
  const TinyModel m;
  const DitInputs<float> in = m.inputs(20);
  const auto base = zimage_forward(m.w, in);
  for (RopeScaling s : {RopeScaling::Extrapolate, RopeScaling::Linear, RopeScaling::Ntk}) {
    ForwardOptions o;
    o.rope_scaling = s;
    testing::expect_exact(rope_scaling_name(s), numerics::compare(zimage_forward<float>(m.w, in, nullptr, o)[0], base[0]));
  }
}

TEST(DitKnobsForward, PastTheLimitDefaultRefusesAndEachScalingRunsDifferently) {
  const TinyModel m;
  const DitInputs<float> in = m.inputs(40);  // pads to 64 > 32
  EXPECT_THROW_MSG_HAS(zimage_forward(m.w, in), "--rope-extend");
  std::vector<Tensor<float>> outs;
  for (RopeScaling s : {RopeScaling::Extrapolate, RopeScaling::Linear, RopeScaling::Ntk}) {
    ForwardOptions o;
    o.rope_scaling = s;
    outs.push_back(zimage_forward<float>(m.w, in, nullptr, o)[0]);
    for (float v : outs.back().data) ASSERT_TRUE(std::isfinite(v)) << rope_scaling_name(s);
  }
  ForwardOptions ext;
  ext.rope_extend = true;
  testing::expect_exact("extrapolate = --rope-extend", numerics::compare(outs[0], zimage_forward<float>(m.w, in, nullptr, ext)[0]));
  EXPECT_NE(outs[0].data, outs[1].data) << "linear changed nothing";
  EXPECT_NE(outs[0].data, outs[2].data) << "ntk changed nothing";
  EXPECT_NE(outs[1].data, outs[2].data);
}

// Linear and ntk handle the caption; an image past axes 1/2 is still refused.
TEST(DitKnobsForward, ScalingStillRefusesAnImagePastTheTable) {
  const TinyModel m;
  DitInputs<float> in = m.inputs(40);
  in.x[0] = testing::randn<float>({m.cfg.in_channels, 1, 66, 8}, 3);  // 33 patch rows > 32
  ForwardOptions o;
  o.rope_scaling = RopeScaling::Linear;
  EXPECT_THROW_MSG_HAS(zimage_forward<float>(m.w, in, nullptr, o), "x.0");
}

TEST(DitKnobsForward, SkipContextRefinerEqualsAModelWithoutOne) {
  const TinyModel m;
  const DitInputs<float> in = m.inputs(20);
  ForwardOptions o;
  o.skip_context_refiner = true;
  ZImageWeights<float> emptied = m.w;
  emptied.context_refiner.clear();
  const auto skipped = zimage_forward<float>(m.w, in, nullptr, o);
  testing::expect_exact("skip vs emptied", numerics::compare(skipped[0], zimage_forward(emptied, in)[0]));
  EXPECT_NE(skipped[0].data, zimage_forward(m.w, in)[0].data) << "the knob changed nothing";
}

}  // namespace
}  // namespace zimage

// zimage sweep's grid and measures (reference/pipeline/sweep.h) on hand-computed cases: --vary
// and --seeds parsing with their errors, the rows' order and labels, image and tensor statistics,
// the mean absolute difference and the cosine similarity.
#include <gtest/gtest.h>

#include "pipeline/sweep.h"

namespace zimage {
namespace {

using V = std::vector<std::string>;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_error(const std::function<void()>& f, const std::string& needle) {
  const std::string e = error_of(f);
  EXPECT_NE(e.find(needle), std::string::npos) << "error: '" << e << "', expected it to name '" << needle << "'";
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
}

TEST(SweepAxis, CommaSeparated_shift_1_3_5) {
  const SweepAxis a = parse_sweep_axis("shift=1,3,5");
  EXPECT_EQ(a.knob, "shift");
  EXPECT_EQ(a.values, (V{"1", "3", "5"}));
}

TEST(SweepAxis, SemicolonWhenTheListHoldsOne_hidden_layers) {
  EXPECT_EQ(parse_sweep_axis("hidden-layers=-2;-2,-3").values, (V{"-2", "-2,-3"}));
  EXPECT_EQ(parse_sweep_axis("think=@none;;a red, wet fox").values, (V{"@none", "", "a red, wet fox"}));
  EXPECT_EQ(parse_sweep_axis("think=;x").values, (V{"", "x"}));
  EXPECT_EQ(parse_sweep_axis("system-prompt=a=b").values, (V{"a=b"}));  // only the first '=' splits
}

TEST(SweepAxis, Errors_no_equals_empty_list_repeated_dashes) {
  expect_error([] { parse_sweep_axis("shift"); }, "--vary 'shift'");
  expect_error([] { parse_sweep_axis("shift="); }, "empty grid");
  expect_error([] { parse_sweep_axis("=1,2"); }, "without '--'");
  expect_error([] { parse_sweep_axis("--shift=1,2"); }, "without '--'");
  expect_error([] { parse_sweep_axis("shift=1,3,1"); }, "'1' is repeated");
  expect_error([] { parse_sweep_axis("think=;"); }, "'' is repeated");
}

TEST(SeedList, RangesAndLists) {
  EXPECT_EQ(parse_seed_list("0-3"), (std::vector<uint64_t>{0, 1, 2, 3}));
  EXPECT_EQ(parse_seed_list("1,5,9"), (std::vector<uint64_t>{1, 5, 9}));
  EXPECT_EQ(parse_seed_list("0-2,7"), (std::vector<uint64_t>{0, 1, 2, 7}));
  EXPECT_EQ(parse_seed_list("42"), (std::vector<uint64_t>{42}));
  EXPECT_EQ(parse_seed_list("18446744073709551615"), (std::vector<uint64_t>{18446744073709551615ull}));
  EXPECT_EQ(parse_seed_list("18446744073709551614-18446744073709551615").size(), 2u);
}

TEST(SeedList, Errors_empty_reversed_text_repeated_too_many) {
  expect_error([] { parse_seed_list(""); }, "empty grid");
  expect_error([] { parse_seed_list("3-1"); }, "reversed");
  expect_error([] { parse_seed_list("a"); }, "'a'");
  expect_error([] { parse_seed_list("-1"); }, "--seeds");
  expect_error([] { parse_seed_list("1,,2"); }, "empty item");
  expect_error([] { parse_seed_list("0-3,2"); }, "seed 2 is repeated");
  expect_error([] { parse_seed_list("0-20000"); }, "more than 10000");
  expect_error([] { parse_seed_list("18446744073709551616"); }, "below 2^64");
}

TEST(SweepRows, TwoPromptsTwoAxes_BaselineFirstLastAxisFastest) {
  const std::vector<SweepAxis> axes = {{"shift", {"1", "3"}}, {"think", {"@none", "", "x"}}};
  const auto rows = sweep_rows(2, axes);
  ASSERT_EQ(rows.size(), 2u * (1 + 2 * 3));
  EXPECT_TRUE(rows[0].baseline());
  EXPECT_EQ(rows[0].label(axes), "baseline");
  EXPECT_EQ(rows[1].values, (V{"1", "@none"}));
  EXPECT_EQ(rows[2].values, (V{"1", ""}));
  EXPECT_EQ(rows[3].values, (V{"1", "x"}));
  EXPECT_EQ(rows[4].values, (V{"3", "@none"}));
  EXPECT_EQ(rows[6].label(axes), "shift=3 think=x");
  EXPECT_EQ(rows[6].prompt, 0);
  EXPECT_TRUE(rows[7].baseline());
  EXPECT_EQ(rows[7].prompt, 1);
  EXPECT_EQ(rows[13].prompt, 1);
}

TEST(SweepRows, NoAxes_BaselineOnly) {
  const auto rows = sweep_rows(3, {});
  ASSERT_EQ(rows.size(), 3u);
  for (const auto& r : rows) EXPECT_TRUE(r.baseline());
  expect_error([] { sweep_rows(0, {}); }, "--prompt");
  expect_error([] { sweep_rows(1, {{"shift", {}}}); }, "empty grid");
  // 10 axes of 4 values: 4^10 rows, refused before anything is enumerated (no overflow, no huge allocation).
  const std::vector<SweepAxis> many(10, SweepAxis{"shift", {"1", "2", "3", "4"}});
  expect_error([&] { sweep_rows(1, many); }, "more than 100000 rows");
}

Image8 image_2x1(std::vector<uint8_t> px) { return Image8{1, 2, 3, std::move(px)}; }

TEST(SweepMeasures, ImageStats_2x1_HandComputed) {
  // Two pixels: R 0 and 255 (mean 127.5, std 127.5), G 10 and 10 (std 0), B 1 and 3 (mean 2, std 1).
  const ImageStats s = image_stats(image_2x1({0, 10, 1, 255, 10, 3}));
  EXPECT_DOUBLE_EQ(s.mean[0], 127.5);
  EXPECT_DOUBLE_EQ(s.std[0], 127.5);
  EXPECT_DOUBLE_EQ(s.mean[1], 10);
  EXPECT_DOUBLE_EQ(s.std[1], 0);
  EXPECT_DOUBLE_EQ(s.mean[2], 2);
  EXPECT_DOUBLE_EQ(s.std[2], 1);
}

TEST(SweepMeasures, MeanAbsDiff_2x1_AndSizeMismatch) {
  const Image8 a = image_2x1({0, 10, 1, 255, 10, 3}), b = image_2x1({6, 10, 1, 249, 16, 3});
  EXPECT_DOUBLE_EQ(*mean_abs_diff(a, b), (6 + 6 + 6) / 6.0);
  EXPECT_DOUBLE_EQ(*mean_abs_diff(a, a), 0);
  const Image8 c{2, 1, 3, std::vector<uint8_t>(6, 0)};  // 2x1 tall instead of 1x2 wide
  EXPECT_FALSE(mean_abs_diff(a, c).has_value());
}

TEST(SweepMeasures, MeanStd_1to4) {
  const Tensor<float> t({2, 2}, {1, 2, 3, 4});
  const MeanStd m = mean_std(t);
  EXPECT_DOUBLE_EQ(m.mean, 2.5);
  EXPECT_DOUBLE_EQ(m.std, std::sqrt(1.25));
}

TEST(SweepMeasures, TokenMean_FirstRowsOnly_3x2) {
  const Tensor<double> t({3, 2}, {1, 10, 3, 20, 100, 100});  // the third row is padding
  EXPECT_EQ(token_mean(t, 2), (std::vector<double>{2, 15}));
  const Tensor<double> b({1, 3, 2}, {1, 10, 3, 20, 100, 100});  // [B, L, C]: item 0's rows first
  EXPECT_EQ(token_mean(b, 2), (std::vector<double>{2, 15}));
  expect_error([&] { token_mean(t, 4); }, "past the tensor");
}

TEST(SweepMeasures, Cosine_Parallel_Orthogonal_Opposite_Zero_Mismatch) {
  EXPECT_NEAR(*cosine_similarity({1, 2, 3}, {2, 4, 6}), 1.0, 1e-15);
  EXPECT_DOUBLE_EQ(*cosine_similarity({1, 0}, {0, 5}), 0.0);
  EXPECT_NEAR(*cosine_similarity({1, 1}, {-1, -1}), -1.0, 1e-15);
  EXPECT_NEAR(*cosine_similarity({3, 4}, {4, 3}), 24.0 / 25.0, 1e-15);
  EXPECT_FALSE(cosine_similarity({0, 0}, {1, 2}).has_value());
  EXPECT_FALSE(cosine_similarity({1, 2}, {1, 2, 3}).has_value());
  EXPECT_FALSE(cosine_similarity({}, {}).has_value());
}

}  // namespace
}  // namespace zimage

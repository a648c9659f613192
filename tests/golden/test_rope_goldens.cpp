// RoPE at the edge (docs/rope.md), against goldens dumped from diffusers:
//  - the real-config table (theta 256, axes_dims [32,48,48], axes_lens
//    [1536,512,512]) row by row: one named case per axis-0 row 1504..1535,
//    plus rows 0, 1 and the last row of each axis;
//  - gather at positions 1504..1535 and the rotation as diffusers' attention
//    processor applies it;
//  - the caption-length sweep through a narrow model with the real axes_lens:
//    the same lengths succeed and fail as in diffusers, successes match;
//  - --rope-extend against diffusers run with axes_lens[0] = 4096.
#include "dit/rope.h"
#include "support/goldens.h"
#include "support/test_support.h"
#include "validation/validate.h"
#include "dit/module_table.h"

namespace zimage {
namespace {

const GoldenFile& golden(const std::string& c) {
  return testing::open_once<GoldenFile>(testing::golden_path(c), [](const std::string& p) { return open_golden(p); });
}

void expect_rows_pass(const std::vector<ValidationRow>& rows) {
  ASSERT_FALSE(rows.empty());
  std::printf("%s", format_rows(rows, true).c_str());
  for (const auto& r : rows) EXPECT_TRUE(r.pass) << r.module << " " << r.detail;
}

// ---- table rows ----
struct TableRow {
  int axis, row;
};
void PrintTo(const TableRow& r, std::ostream* os) { *os << "axis " << r.axis << " row " << r.row; }

std::vector<TableRow> table_rows() {
  std::vector<TableRow> rows;
  for (int r = 1504; r <= 1535; ++r) rows.push_back({0, r});  // 1535 is axis 0's last row
  for (int r : {0, 1}) rows.push_back({0, r});
  for (int a : {1, 2})
    for (int r : {0, 1, 511}) rows.push_back({a, r});
  return rows;
}

class RopeTableRow : public ::testing::TestWithParam<TableRow> {};

// Angle: exactly torch's fp32 angle. Float cos/sin: within 1 fp32 ulp of
// torch.polar (a different libm may round cos/sin differently; the angle
// cannot differ). Double: the exact cos/sin of the same angle, within T2.
TEST_P(RopeTableRow, MatchesDiffusersPrecomputeFreqsCis) {
  const auto [axis, row] = GetParam();
  const GoldenFile& g = golden("rope_table");
  const ZImageConfig& c = g.config;
  const std::string a = std::to_string(axis);
  const int64_t half = c.axes_dims[size_t(axis)] / 2;
  const Tensor<float> angles = rope_angles(c.axes_dims[size_t(axis)], c.axes_lens[size_t(axis)], c.rope_theta);
  const Tensor<float> golden_angles = g.get<float>("rope_embedder.angles." + a);
  const auto tf = precompute_freqs_cis<float>(c.axes_dims, c.axes_lens, c.rope_theta)[size_t(axis)];
  const auto td = precompute_freqs_cis<double>(c.axes_dims, c.axes_lens, c.rope_theta)[size_t(axis)];
  const Tensor<float> golden_table = g.get<float>("rope_embedder.freqs_cis." + a);
  const int64_t r = row;  // a lambda captures a variable, not a structured binding (clang 14)
  auto slice = [&](const auto& t, int64_t w) {
    using V = std::decay_t<decltype(t.data[0])>;
    return Tensor<V>({w}, std::vector<V>(t.data.begin() + r * w, t.data.begin() + (r + 1) * w));
  };
  testing::expect_exact("angles row", numerics::compare(slice(angles, half), slice(golden_angles, half)));
  const numerics::UlpDistance u = numerics::ulp_distance(slice(tf, 2 * half), slice(golden_table, 2 * half));
  std::printf("  float cos/sin row: max %lld ulp, %lld of %lld differ\n", (long long)u.max_ulp, (long long)u.differ,
              (long long)(2 * half));
  EXPECT_LE(u.max_ulp, 1) << "float table row beyond 1 ulp at element " << u.worst;
  testing::expect_within("double cos/sin row", numerics::compare(slice(td, 2 * half), slice(golden_table, 2 * half)),
                         dit_module_budget(numerics::Tier::T2, "rope_embedder.freqs_cis." + a, c, 1));
}

INSTANTIATE_TEST_SUITE_P(RealConfig, RopeTableRow, ::testing::ValuesIn(table_rows()), [](const auto& info) {
  return "axis" + std::to_string(info.param.axis) + "_row" + std::to_string(info.param.row);
});

// ---- gather and rotate at positions 1504..1535 ----
TEST(RopeGather, Positions1504to1535_float) { expect_rows_pass(validate_golden<float>(golden("rope_gather"))); }
TEST(RopeGather, Positions1504to1535_double) { expect_rows_pass(validate_golden<double>(golden("rope_gather"))); }

// ---- caption-length sweep ----
class RopeSweep : public ::testing::TestWithParam<int64_t> {};
TEST_P(RopeSweep, SameOutcomeAsDiffusersAndSameOutput_float) {
  expect_rows_pass(validate_rope_sweep_case<float>(golden("rope_sweep"), GetParam(), false));
}
TEST_P(RopeSweep, SameOutcomeAsDiffusersAndSameOutput_double) {
  expect_rows_pass(validate_rope_sweep_case<double>(golden("rope_sweep"), GetParam(), false));
}
INSTANTIATE_TEST_SUITE_P(Captions, RopeSweep, ::testing::ValuesIn(rope_sweep_lengths(golden("rope_sweep"), false)),
                         [](const auto& info) { return "L" + std::to_string(info.param); });

// The issue's list of lengths is exactly what the golden covers.
TEST(RopeSweepInventory, CoversTheIssueLengths) {
  const std::vector<int64_t> want{1, 31, 32, 33, 511, 512, 513, 992, 993, 1472, 1503, 1504, 1505, 1534, 1535, 1536, 2048};
  EXPECT_EQ(rope_sweep_lengths(golden("rope_sweep"), false), want);
  EXPECT_EQ(rope_sweep_lengths(golden("rope_sweep"), true), (std::vector<int64_t>{1505, 2048, 3000}));
}

// ---- --rope-extend against diffusers with axes_lens[0] = 4096 ----
class RopeExtend : public ::testing::TestWithParam<int64_t> {};
TEST_P(RopeExtend, MatchesDiffusersWithLongerTable_float) {
  expect_rows_pass(validate_rope_sweep_case<float>(golden("rope_sweep"), GetParam(), true));
}
TEST_P(RopeExtend, MatchesDiffusersWithLongerTable_double) {
  expect_rows_pass(validate_rope_sweep_case<double>(golden("rope_sweep"), GetParam(), true));
}
INSTANTIATE_TEST_SUITE_P(Captions, RopeExtend, ::testing::ValuesIn(rope_sweep_lengths(golden("rope_sweep"), true)),
                         [](const auto& info) { return "L" + std::to_string(info.param); });

}  // namespace
}  // namespace zimage

// Synthetic weights: the hash pieces against known vectors, a few values
// computed independently (Python integers + struct.pack('<f'), the formula of
// docs/goldens.md), and hand-checkable properties. The bit-for-bit check
// against golden/synthetic_check.safetensors lives in tests/golden/.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <nlohmann/json.hpp>

#include "io/param_source.h"
#include "io/synthetic.h"

namespace zimage {
namespace {

using json = nlohmann::json;
using testing::HasSubstr;

std::vector<float> fill(uint64_t seed, const std::string& name, double o, double s, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  synthetic_fill(seed, name, o, s, v.data(), n);
  return v;
}

std::vector<uint32_t> fill_bits(uint64_t seed, const std::string& name, double o, double s, int64_t n) {
  std::vector<uint32_t> out;
  for (float f : fill(seed, name, o, s, n)) out.push_back(std::bit_cast<uint32_t>(f));
  return out;
}

TEST(Synthetic, HashVectors) {
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ull);
  EXPECT_EQ(mix64(0), 0u);
  EXPECT_EQ(mix64(0x9E3779B97F4A7C15ull), 0xe220a8397b1dcdafull);  // SplitMix64(seed 0), first output
}

TEST(Synthetic, IndependentlyComputedValues) {
  EXPECT_EQ(fill_bits(42, "layers.0.attention.to_q.weight", 0.0, 0.02, 4),
            (std::vector<uint32_t>{0x3c91428e, 0x3b4ced0a, 0xbbaac7f4, 0x3ca0aa4b}));
  EXPECT_EQ(fill_bits(0, "x_pad_token", 1.0, 0.5, 3), (std::vector<uint32_t>{0x3f312241, 0x3f9f1e77, 0x3f0f460b}));
  EXPECT_EQ(fill_bits(~0ull, "t", -3.0, 1e-3, 2), (std::vector<uint32_t>{0xc0400d80, 0xc03ffa10}));
}

TEST(Synthetic, DeterministicAndIndexedByPosition) {
  const auto a = fill(5, "w", 0.1, 0.3, 1000);
  EXPECT_EQ(a, fill(5, "w", 0.1, 0.3, 1000));
  const auto prefix = fill(5, "w", 0.1, 0.3, 10);
  EXPECT_TRUE(std::equal(prefix.begin(), prefix.end(), a.begin()));
}

TEST(Synthetic, RangeAndMean) {
  const double o = 0.25, s = 0.5;
  const auto v = fill(11, "layers.3.feed_forward.w2.weight", o, s, 200000);
  double sum = 0, lo = 1e9, hi = -1e9;
  for (float x : v) {
    ASSERT_GE(x, float(o - s));
    ASSERT_LE(x, float(o + s));
    sum += x;
    lo = std::min(lo, double(x));
    hi = std::max(hi, double(x));
  }
  // Uniform on [o-s, o+s]: standard error of the mean is s/sqrt(3n) ~ 6.5e-4.
  EXPECT_NEAR(sum / double(v.size()), o, 5e-3);
  EXPECT_LT(lo, o - s + 1e-3);
  EXPECT_GT(hi, o + s - 1e-3);
}

TEST(Synthetic, NamesAndSeedsGiveDifferentStreams) {
  const auto a = fill(1, "layers.0.attention.to_q.weight", 0, 1, 64);
  const auto b = fill(1, "layers.0.attention.to_k.weight", 0, 1, 64);
  const auto c = fill(2, "layers.0.attention.to_q.weight", 0, 1, 64);
  int same_ab = 0, same_ac = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    same_ab += a[i] == b[i];
    same_ac += a[i] == c[i];
  }
  EXPECT_EQ(same_ab, 0);
  EXPECT_EQ(same_ac, 0);
}

TEST(Synthetic, ZeroScaleIsTheOffset) {
  for (float x : fill(3, "norm", 1.0, 0.0, 16)) EXPECT_EQ(x, 1.0f);
}

TEST(SyntheticSource, ParsesSpecAndLoadsWidenedFloats) {
  const std::string spec = R"({"seed": 1234, "tensors": {
      "a": {"shape": [2, 3], "offset": 0.0, "scale": 0.02},
      "b": {"shape": [], "offset": 1, "scale": 0.1}}})";
  auto src = synthetic_param_source(spec);
  EXPECT_EQ(src->describe(), "synthetic(seed=1234)");
  EXPECT_EQ(src->shapes(), (std::map<std::string, Shape>{{"a", {2, 3}}, {"b", {}}}));
  const Tensor<double> a = src->load("a");
  EXPECT_EQ(a.shape, (Shape{2, 3}));
  const auto expect = fill(1234, "a", 0.0, 0.02, 6);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(a[i], double(expect[size_t(i)]));
  EXPECT_EQ(src->load("b").numel(), 1);
  EXPECT_THROW(src->load("c"), Error);
}

TEST(SyntheticSource, SeedAsStringOrLargeInteger) {
  const auto a = synthetic_param_source(R"({"seed": "18446744073709551615", "tensors": {"t": {"shape": [2], "offset": -3.0, "scale": 1e-3}}})");
  const auto b = synthetic_param_source(R"({"seed": 18446744073709551615, "tensors": {"t": {"shape": [2], "offset": -3.0, "scale": 1e-3}}})");
  EXPECT_EQ(a->load("t").data, b->load("t").data);
  EXPECT_EQ(float(a->load("t")[0]), std::bit_cast<float>(0xc0400d80u));
}

TEST(SyntheticSource, BadSpecs) {
  for (const char* spec : {"{", R"({"tensors": {}})", R"({"seed": -1, "tensors": {}})", R"({"seed": 1.5, "tensors": {}})",
                           R"({"seed": 1, "tensors": {"t": {"shape": [2], "offset": 0}}})",
                           R"({"seed": 1, "tensors": {"t": {"shape": [-2], "offset": 0, "scale": 1}}})",
                           R"({"seed": 1, "tensors": {"t": {"shape": [2], "offset": "0", "scale": 1}}})"}) {
    try {
      synthetic_param_source(spec);
      ADD_FAILURE() << "accepted " << spec;
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr("synthetic_weights")) << spec;
    }
  }
}

}  // namespace
}  // namespace zimage

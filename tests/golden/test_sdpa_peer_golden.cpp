// golden/sdpa_fp32_peer.safetensors (tools/golden/dump_sdpa_peer.py) on the CPU: the input side
// of the fp32 attention peer rule (tests/cuda/test_cuda_attention.cpp FlashAttentionFp32Peer).
// - The inputs regenerate bit for bit: TorchCpuGenerator::randn of 3 L H D values x 2 has the
//   recorded fnv1a64 for each of q, k, v, the stored first 8 values exactly, and the recorded
//   float64 sum and sum of squares (to 1e-12 relative: torch sums in another order).
// - torch's recorded figures are sane: finite, positive, no NaN in torch's fp32 result, n = B L H D.
// - At L 1025 the project's fp64 scaled_dot_product_attention reproduces torch's fp64 SDPA output
//   summary (sum, sum of squares, first 4 values) to 1e-12: both sides' reference is the same
//   function, so the GPU test's error against our fp64 is comparable with torch's against its own.
#include <cmath>

#include "dit/attention.h"
#include "support/sdpa_peer.h"
#include "support/test_support.h"

namespace zimage {
namespace {

using nlohmann::json;

void expect_summary(const std::string& what, const Tensor<float>& t, const json& s, bool bitwise_head) {
  double sum = 0, sumsq = 0;
  for (float x : t.data) sum += double(x), sumsq += double(x) * double(x);
  const double rs = s.at("sum").get<double>(), rq = s.at("sumsq").get<double>();
  std::printf("  %s: sum %.17g (torch %.17g), sumsq %.17g (torch %.17g)\n", what.c_str(), sum, rs, sumsq, rq);
  EXPECT_NEAR(sum, rs, 1e-12 * std::max(1.0, std::sqrt(rq))) << what;  // sum of n terms: scale by ||x||
  EXPECT_NEAR(sumsq, rq, 1e-12 * rq) << what;
  const auto head = s.at("head").get<std::vector<double>>();
  for (size_t i = 0; i < head.size(); ++i) {
    if (bitwise_head) EXPECT_EQ(double(t.data[i]), head[i]) << what << " [" << i << "]";
    else EXPECT_NEAR(double(t.data[i]), head[i], 1e-12 * std::max(1.0, std::abs(head[i]))) << what << " [" << i << "]";
  }
}

class SdpaPeerGolden : public ::testing::TestWithParam<int64_t> {};

TEST_P(SdpaPeerGolden, InputsRegenerateBitForBit) {
  const int64_t L = GetParam();
  const json rec = testing::sdpa_peer_record(L);
  const Shape s = rec.at("shape").get<Shape>();
  ASSERT_EQ(s, (Shape{1, L, 2, 128}));
  const testing::SdpaPeerInputs in = testing::sdpa_peer_inputs(rec);
  const Tensor<float> stored = testing::sdpa_peer_golden()->get<float>("qkv.head.L" + std::to_string(L));
  ASSERT_EQ(stored.shape, (Shape{3, 8}));
  const char* names[3] = {"q", "k", "v"};
  const Tensor<float>* ts[3] = {&in.q, &in.k, &in.v};
  for (int p = 0; p < 3; ++p) {
    const std::string what = "L" + std::to_string(L) + " " + names[p];
    const json& r = rec.at("inputs").at(names[p]);
    const std::string ours = testing::fnv1a64_hex(*ts[p]);
    std::printf("  %s: fnv1a64 %s (torch %s)\n", what.c_str(), ours.c_str(), r.at("fnv1a64").get<std::string>().c_str());
    EXPECT_EQ(ours, r.at("fnv1a64").get<std::string>()) << what << ": the regenerated inputs differ from torch's";
    for (int i = 0; i < 8; ++i) EXPECT_EQ(ts[p]->data[size_t(i)], stored[p * 8 + i]) << what << " [" << i << "]";
    expect_summary(what, *ts[p], r, true);
  }
}

TEST_P(SdpaPeerGolden, RecordedTorchFiguresAreSane) {
  const int64_t L = GetParam();
  const json rec = testing::sdpa_peer_record(L);
  for (const char* key : {"fp32_math", "fp32_default"}) {
    const numerics::Comparison c = testing::recorded_comparison(rec.at(key));
    std::printf("  L%lld torch %s%s: rel_rms %.4e max_n %.4e worst [%lld] %.9g vs %.9g\n", (long long)L, key,
                rec.at(key).contains("backend") ? (" (" + rec.at(key).at("backend").get<std::string>() + ")").c_str() : "",
                c.rel_rms, c.max_n, (long long)c.worst, c.worst_a, c.worst_r);
    EXPECT_EQ(c.n, L * 2 * 128) << key;
    EXPECT_EQ(c.nonfinite, 0) << key;
    EXPECT_TRUE(std::isfinite(c.rel_rms) && c.rel_rms > 0 && c.max_n >= c.rel_rms) << key;
    // An fp32 SDPA is within a few times the fp32 chain eps of the fp64 one; anything near bf16 size
    // would mean the dump did not run in fp32.
    const numerics::Budget t3 = numerics::budget_for(numerics::Tier::T3, testing::sdpa_ops(L, 128));
    EXPECT_LT(c.rel_rms, 4 * t3.rel_rms) << key;
  }
}

// torch's fp64 SDPA output and ours agree (L 1025: O(L^2) in fp64 on the host, about a second).
TEST(SdpaPeerGoldenReference, Fp64MatchesTorchFp64_L1025) {
  const json rec = testing::sdpa_peer_record(1025);
  const testing::SdpaPeerInputs in = testing::sdpa_peer_inputs(rec);
  const Tensor<double> r =
      scaled_dot_product_attention(in.q.cast<double>(), in.k.cast<double>(), in.v.cast<double>(), nullptr);
  const json& s = rec.at("fp64_out");
  double sum = 0, sumsq = 0;
  for (double x : r.data) sum += x, sumsq += x * x;
  std::printf("  fp64 out: sum %.17g (torch %.17g), sumsq %.17g (torch %.17g)\n", sum, s.at("sum").get<double>(), sumsq,
              s.at("sumsq").get<double>());
  EXPECT_NEAR(sum, s.at("sum").get<double>(), 1e-12 * std::sqrt(sumsq));
  EXPECT_NEAR(sumsq, s.at("sumsq").get<double>(), 1e-12 * sumsq);
  const auto head = s.at("head").get<std::vector<double>>();
  for (size_t i = 0; i < head.size(); ++i) EXPECT_NEAR(r.data[i], head[i], 1e-12) << "[" << i << "]";
}

INSTANTIATE_TEST_SUITE_P(Golden, SdpaPeerGolden, ::testing::Values(int64_t(1025), int64_t(4128), int64_t(4608)),
                         [](const auto& i) { return "L" + std::to_string(i.param); });

}  // namespace
}  // namespace zimage

// diffusers bf16 goldens (golden/<case>.bf16.safetensors, tools/golden/dump_dit_bf16.py) on the CPU:
// each is the peer of the CUDA bf16 forward (tests/cuda/test_cuda_model.cpp), so CI checks that it
// is sane and really a bf16 run:
// - open_bf16_golden: kind, dtype, case, diffusers commit and blob equal to the fp32 golden's, the
//   digests of the inputs equal the fp32 golden's inputs, every value a bfloat16 number, finite,
//   not constant;
// - every sample.{i} against the fp64 reference forward (the fp32 golden's weights and inputs)
//   within the absolute T4 bound (dit_module_budget(T4, "sample.i"));
// - its error is a bf16 error: rel_rms at least 100 x the fp32 golden's against the same
//   reference, and at least u_bf16 / 16 (a run that kept fp32 anywhere near the whole model would
//   be orders of magnitude below both).
#include "numerics/tolerance.h"
#include "support/bf16_goldens.h"
#include "support/test_support.h"
#include "dit/module_table.h"

namespace zimage {
namespace {

std::vector<std::string> bf16_cases() {
  std::vector<std::string> out;
  for (const auto& c : testing::golden_cases())
    if (testing::golden_kind(c) == "model" && std::filesystem::exists(testing::bf16_golden_path(c))) out.push_back(c);
  return out;
}

class Bf16Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Bf16Golden, WithinT4OfFp64AndARealBf16Run) {
  const std::string c = GetParam();
  const GoldenFile g = open_golden(testing::golden_path(c));
  const auto bf = testing::open_bf16_golden(g);
  ASSERT_TRUE(bf.has_value());
  const DitInputs<float> in = golden_dit_inputs<float>(g);
  DitInputs<double> ind;
  for (const auto& x : in.x) ind.x.push_back(x.cast<double>());
  for (const auto& x : in.cap_feats) ind.cap_feats.push_back(x.cast<double>());
  ind.t = in.t.cast<double>();
  const std::vector<Tensor<double>> ref = zimage_forward(load_weights<double>(g.config, *g.params), ind);
  const int64_t L = testing::unified_len(g.config, in);
  ASSERT_EQ(ref.size(), size_t(g.batch_size()));
  for (size_t i = 0; i < ref.size(); ++i) {
    const std::string name = "sample." + std::to_string(i);
    const numerics::Comparison cb = numerics::compare((*bf)->get<float>(name), ref[i]);
    const numerics::Comparison c32 = numerics::compare(g.get<float>(name), ref[i]);
    testing::expect_within(c + " " + name + " diffusers bf16 vs fp64 reference T4", cb,
                           dit_module_budget(numerics::Tier::T4, name, g.config, L));
    const double ratio = cb.rel_rms / c32.rel_rms;
    std::printf("  %s %s: diffusers bf16 rel_rms %.3e max_n %.3e; diffusers fp32 rel_rms %.3e max_n %.3e; ratio %.0f\n",
                c.c_str(), name.c_str(), cb.rel_rms, cb.max_n, c32.rel_rms, c32.max_n, ratio);
    // What the CUDA bf16 sample must meet (tests/cuda/test_cuda_model.cpp, testing::expect_peer).
    const double floor = numerics::budget_for(numerics::Tier::T3, dit_module_ops(name, g.config, L)).rel_rms;
    std::printf("  %s %s: peer limits for a CUDA bf16 sample: rel_rms <= %.3e, max_n <= %.3e (floor %.3e)\n",
                c.c_str(), name.c_str(), 2 * cb.rel_rms + floor, 2 * cb.max_n + floor, floor);
    EXPECT_GE(ratio, 100.0) << c << " " << name << ": the bf16 golden is too close to fp32 to be a bf16 run";
    EXPECT_GE(cb.rel_rms, numerics::kUnitRoundoffBf16 / 16) << c << " " << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Goldens, Bf16Golden, ::testing::ValuesIn(bf16_cases()),
                         [](const auto& info) { return testing::test_name(info.param); });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Bf16Golden);

// The cases docs/goldens.md promises a bf16 golden for.
TEST(Bf16GoldenInventory, PromisedCasesPresent) {
  for (const char* c : {"tiny_single", "tiny_batch2", "narrow_full_depth"})
    EXPECT_TRUE(std::filesystem::exists(testing::bf16_golden_path(c))) << testing::bf16_golden_path(c) << " missing";
}

}  // namespace
}  // namespace zimage

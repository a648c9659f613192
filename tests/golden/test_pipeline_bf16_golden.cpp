// golden/pipeline_*.bf16.safetensors (tools/golden/dump_pipeline_bf16.py): diffusers' pipeline with
// its transformer in bf16, the peer of `zimage generate --device cuda --dtype bfloat16` under T5
// (tests/cuda/test_cuda_generate.cpp). A peer that is not a bf16 run would make that gate wrong
// either way, so the file is checked here against our fp64 loop: its drift at every step lies
// above the fp32 golden's (a bf16 transformer rounds every activation to 8 bits: at least 10x
// more drift) and within the accumulated T4 model budget (drift_budget with T4's per-forward eps).
#include "support/pipeline_golden.h"

namespace zimage {
namespace {

using testing::PipelineGolden;

class PipelineBf16Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(PipelineBf16Golden, DriftIsABf16RunsWithinTheT4Budget) {
  const PipelineGolden g(GetParam());
  const auto peer = testing::open_pipeline_bf16_golden(g);
  const testing::Fp64Loop truth = testing::fp64_loop(g);
  const std::vector<double> budget = testing::drift_budget(g, truth, numerics::Tier::T4);
  for (int k = 0; k < g.opt.steps; ++k) {
    const std::string n = "latents.step." + std::to_string(k);
    const Tensor<double>& x = truth.trace.latents[size_t(k)];
    const numerics::Comparison c16 = numerics::compare(peer->get<double>(n), x);
    const double d32 = testing::rel_rms(g.get<double>(n), x);
    std::printf("  step %d: bf16 peer vs fp64 rel_rms %.3e (fp32 golden %.3e, ratio %.0f); T4 drift budget %.3e (%.1f%% used)\n",
                k, c16.rel_rms, d32, c16.rel_rms / d32, budget[size_t(k)], 100 * c16.rel_rms / budget[size_t(k)]);
    EXPECT_EQ(c16.nonfinite, 0) << n;
    EXPECT_GE(c16.rel_rms, 10 * d32) << n << ": not a bf16 run's drift";
    EXPECT_LE(c16.rel_rms, budget[size_t(k)]) << n;
  }
  const double p16 = testing::psnr(peer->get<double>("image.decoded"), truth.image);
  const double p32 = testing::psnr(g.get<double>("image.decoded"), truth.image);
  std::printf("  image PSNR vs fp64: bf16 peer %.1f dB, fp32 golden %.1f dB\n", p16, p32);
  EXPECT_LT(p16, p32);
}

INSTANTIATE_TEST_SUITE_P(Goldens, PipelineBf16Golden, ::testing::ValuesIn(testing::pipeline_cases()),
                         [](const auto& info) { return testing::test_name(info.param); });

}  // namespace
}  // namespace zimage

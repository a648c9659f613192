// ZImagePipeline end to end against diffusers (golden/pipeline_*.safetensors,
// tools/golden/dump_pipeline.py): seeded latents, the schedule, every step's
// model output and Euler step teacher-forced, the free-running loop (T5 of
// docs/tolerances.md), the VAE decode and the PIL pixels. docs/pipeline.md.
#include <cmath>

#include "io/safetensors.h"
#include "pipeline/generate.h"
#include "pipeline/torch_generator.h"
#include "support/goldens.h"
#include "support/pipeline_checks.h"
#include "support/pipeline_golden.h"
#include "support/test_support.h"

namespace zimage {
namespace {

using numerics::Budget;
using numerics::Comparison;
using numerics::Tier;

using testing::PipelineGolden;
using testing::pipeline_cases;
using testing::check_model_outputs;
using testing::decode_vs_golden;
using testing::widen;

// ---------------------------------------------------------------- T0: seeded latents, schedule, Euler step

class PipelineExact : public ::testing::TestWithParam<std::string> {};

TEST_P(PipelineExact, SeededLatentsAreTorchRandn) {
  const PipelineGolden g(GetParam());
  const Tensor<float> ours = randn_latents(std::stoull(g.file->metadata().at("seed")), g.latent_shape());
  const Comparison c = numerics::compare(ours, g.get<float>("latents.init"));
  std::printf("  latents.init %s: %s\n", shape_str(ours.shape).c_str(), numerics::describe_exact(c).c_str());
  EXPECT_TRUE(numerics::passes_exact(c));
}

TEST_P(PipelineExact, ScheduleIsDiffusers) {
  const PipelineGolden g(GetParam());
  const Schedule s = pipeline_schedule(g.pipe.scheduler, g.opt, g.latent_shape());
  const Tensor<float> sig = g.get<float>("sigmas"), ts = g.get<float>("timesteps");
  ASSERT_EQ(int64_t(s.sigmas.size()), sig.numel());
  ASSERT_EQ(int64_t(s.timesteps.size()), ts.numel());
  int bad = 0;
  for (int64_t i = 0; i < sig.numel(); ++i) bad += s.sigmas[i] != sig[i];
  for (int64_t i = 0; i < ts.numel(); ++i) bad += s.timesteps[i] != ts[i];
  std::printf("  %lld sigmas, %lld timesteps: %d differ\n", (long long)sig.numel(), (long long)ts.numel(), bad);
  EXPECT_EQ(bad, 0);
}

// scheduler.step on the golden's own inputs: bit for bit in fp32.
TEST_P(PipelineExact, EulerStepTeacherForced) {
  const PipelineGolden g(GetParam());
  const Schedule s = pipeline_schedule(g.pipe.scheduler, g.opt, g.latent_shape());
  for (int k = 0; k < g.opt.steps; ++k) {
    Tensor<float> x = g.get<float>(g.latents_before(k));
    pipeline_step(s, k, g.get<float>("model_output." + std::to_string(k)), x);
    const Comparison c = numerics::compare(x, g.get<float>("latents.step." + std::to_string(k)));
    std::printf("  step %d: %s\n", k, numerics::describe_exact(c).c_str());
    EXPECT_TRUE(numerics::passes_exact(c)) << "step " << k;
  }
}

// VaeImageProcessor.postprocess("pil") on the golden's decoded image: the same pixels.
TEST_P(PipelineExact, PilPixelsFromDecodedImage) {
  const PipelineGolden g(GetParam());
  const auto images = to_pil_images(g.get<float>("image.decoded"));
  const Tensor<int32_t> want = g.get<int32_t>("image.uint8");
  int64_t bad = 0, i = 0;
  for (const auto& im : images)
    for (uint8_t p : im.pixels) bad += int32_t(p) != want[i++];
  std::printf("  %lld pixel values, %lld differ\n", (long long)i, (long long)bad);
  EXPECT_EQ(i, want.numel());
  EXPECT_EQ(bad, 0);
}

INSTANTIATE_TEST_SUITE_P(Goldens, PipelineExact, ::testing::ValuesIn(pipeline_cases()),
                         [](const auto& info) { return testing::test_name(info.param); });

// ---------------------------------------------------------------- T2: model output per step, decode

class PipelineModelOutput : public ::testing::TestWithParam<std::string> {};
TEST_P(PipelineModelOutput, TeacherForcedWithinBudget_double) { check_model_outputs<double>(PipelineGolden(GetParam())); }
TEST_P(PipelineModelOutput, TeacherForcedWithinBudget_float) { check_model_outputs<float>(PipelineGolden(GetParam())); }
INSTANTIATE_TEST_SUITE_P(Goldens, PipelineModelOutput, ::testing::ValuesIn(pipeline_cases()),
                         [](const auto& info) { return testing::test_name(info.param); });

class PipelineDecode : public ::testing::TestWithParam<std::string> {};
TEST_P(PipelineDecode, FinalLatentsDecodeWithinBudget_double) {
  Budget b;
  const Comparison c = decode_vs_golden<double>(PipelineGolden(GetParam()), &b);
  std::printf("  decode: %s\n", numerics::describe(c, b).c_str());
  EXPECT_TRUE(numerics::passes(c, b));
}
TEST_P(PipelineDecode, FinalLatentsDecodeWithinBudget_float) {
  Budget b;
  const Comparison c = decode_vs_golden<float>(PipelineGolden(GetParam()), &b);
  std::printf("  decode: %s\n", numerics::describe(c, b).c_str());
  EXPECT_TRUE(numerics::passes(c, b));
}
INSTANTIATE_TEST_SUITE_P(Goldens, PipelineDecode, ::testing::ValuesIn(pipeline_cases()),
                         [](const auto& info) { return testing::test_name(info.param); });

// ---------------------------------------------------------------- T5: the free-running loop

// docs/tolerances.md T5: per-step latent rel_rms of our fp32 run against our fp64
// run within 2x of the peer's (diffusers fp32 against our fp64 run), and the
// final image's PSNR within 6 dB of the peer's. The peer's own drift is
// bounded too, so a wrong fp64 run cannot make the 2x rule easy: at step k it
// must stay within the accumulated model-output budget,
//   sum_{j<=k} |sigma_{j+1} - sigma_j| ||v_j|| eps_j / ||x_k||  +  (k+1) * 2 u_fp32,
// eps_j the whole-transformer T2 budget times the CFG amplification bound (1 + 2g).
// Floor: one fp32 rounding of the latents (u_fp32 = 6e-8): drifts below it compare as equal.
class PipelineFreeRunning : public ::testing::TestWithParam<std::string> {};
TEST_P(PipelineFreeRunning, FloatDriftWithinTwicePeerAndPeerWithinBudget) {
  const PipelineGolden g(GetParam());
  const testing::Fp64Loop truth = testing::fp64_loop(g);
  DenoiseTrace<float> tf;
  const ZImageWeights<float> wf = load_weights<float>(g.pipe.transformer.config, *g.pipe.transformer.params);
  denoise(*in_memory_dit(wf), g.schedule(), g.opt.cfg, g.get<float>("latents.init"), g.embeds<float>("prompt_embeds."),
          g.negatives<float>(), tf.recorder());
  std::vector<Tensor<double>> ours, peer;
  for (int k = 0; k < g.opt.steps; ++k) {
    ours.push_back(widen(tf.latents[size_t(k)]));
    peer.push_back(g.get<double>("latents.step." + std::to_string(k)));
  }
  testing::expect_t5_drift("fp32", ours, peer, truth, testing::drift_budget(g, truth, Tier::T2));
  // Final image: PSNR against the fp64 decode of the fp64 latents.
  const VaeConfig& vc = g.pipe.vae.config;
  const auto vf = load_vae_weights<float>(vc, *g.pipe.vae.params, VaePart::Decoder);
  const double p_ours = testing::psnr(widen(decode_latents(vc, vf, tf.latents.back())), truth.image);
  const double p_peer = testing::psnr(g.get<double>("image.decoded"), truth.image);
  std::printf("  image PSNR vs fp64: ours %.1f dB, peer %.1f dB (gate: ours >= peer - 6 dB)\n", p_ours, p_peer);
  EXPECT_GE(p_ours, p_peer - 6.0);
  EXPECT_TRUE(std::isfinite(p_ours));
}

INSTANTIATE_TEST_SUITE_P(Goldens, PipelineFreeRunning, ::testing::ValuesIn(pipeline_cases()),
                         [](const auto& info) { return testing::test_name(info.param); });

}  // namespace
}  // namespace zimage

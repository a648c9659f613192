// Pipeline mutation tests (docs/tolerances.md, "Mutation tests"): the
// model-output, decode and Euler-step gates of test_pipeline_goldens.cpp each
// fail on an injected porting bug. Linked against the mutants build of the
// reference (zimage_ref_mutants; reference/numerics/mutation.h). docs/pipeline.md.
#include "numerics/mutation.h"
#include "support/pipeline_checks.h"
#include "support/pipeline_golden.h"
#include "support/test_support.h"

namespace zimage {
namespace {

using numerics::Budget;
using numerics::Comparison;

using testing::check_model_outputs;
using testing::decode_vs_golden;
using testing::PipelineGolden;

// ---------------------------------------------------------------- mutations (docs/tolerances.md)

TEST(PipelineMutation, MissingOutputNegationFailsTheModelOutputGate) {
  const PipelineGolden g("pipeline_turbo");
  ScopedMutation m(Mutation::NoOutputNegation);
  check_model_outputs<double>(g, /*expect_pass=*/false, /*steps=*/2);
}

TEST(PipelineMutation, InvertedLatentScaleFailsTheDecodeGate) {
  const PipelineGolden g("pipeline_turbo");
  Budget b;
  const Comparison clean = decode_vs_golden<double>(g, &b);
  EXPECT_TRUE(numerics::passes(clean, b)) << numerics::describe(clean, b);
  ScopedMutation m(Mutation::WrongLatentScale);
  const Comparison bad = decode_vs_golden<double>(g, &b);
  std::printf("  mutated decode [%s]: %s\n", mutation_name(Mutation::WrongLatentScale), numerics::describe(bad, b).c_str());
  EXPECT_FALSE(numerics::passes(bad, b));
}

TEST(PipelineMutation, SigmasOutOfStepFailsTheEulerStepGate) {
  const PipelineGolden g("pipeline_cfg");
  const Schedule s = pipeline_schedule(g.pipe.scheduler, g.opt, g.latent_shape());
  ScopedMutation m(Mutation::SigmasTimestepsOutOfStep);
  int64_t mismatches = 0;
  for (int k = 0; k < g.opt.steps; ++k) {
    Tensor<float> x = g.get<float>(g.latents_before(k));
    pipeline_step(s, k, g.get<float>("model_output." + std::to_string(k)), x);
    mismatches += numerics::compare(x, g.get<float>("latents.step." + std::to_string(k))).mismatches;
  }
  std::printf("  mutated [%s]: %lld latent values differ over %d steps\n", mutation_name(Mutation::SigmasTimestepsOutOfStep),
              (long long)mismatches, g.opt.steps);
  EXPECT_GT(mismatches, 0);
}

}  // namespace
}  // namespace zimage

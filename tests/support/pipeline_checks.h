// The T2 gates of the end-to-end pipeline goldens that the pipeline golden tests
// (test_pipeline_goldens.cpp, against the shipped library) and the pipeline mutation tests
// (test_pipeline_mutations.cpp, against the mutants build) share: each step's model output
// teacher forced, and the decode of the final latents.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "support/pipeline_golden.h"
#include "dit/module_table.h"
#include "vae/module_table.h"

namespace zimage::testing {

// The CFG combination pred = (1 + g) pos - g neg scales the transformer's
// error by (|1 + g| ||pos|| + |g| ||neg||) / ||pred|| (first order); the cap
// and the negation are exact scalings.
inline double cfg_amplification(double g, const Tensor<double>& pos, const Tensor<double>& neg, const Tensor<double>& pred) {
  if (g <= 0) return 1.0;
  auto norm = [](const Tensor<double>& t) {
    double s = 0;
    for (double v : t.data) s += v * v;
    return std::sqrt(s);
  };
  return (std::abs(1 + g) * norm(pos) + std::abs(g) * norm(neg)) / norm(pred);
}

// expect_pass false (mutation tests): at least one of the first `steps` steps must fail.
template <class T>
void check_model_outputs(const PipelineGolden& g, bool expect_pass = true, int steps = -1) {
  const ZImageWeights<T> w = load_weights<T>(g.pipe.transformer.config, *g.pipe.transformer.params);
  const Schedule s = pipeline_schedule(g.pipe.scheduler, g.opt, g.latent_shape());
  const auto pos = g.embeds<T>("prompt_embeds."), neg = g.negatives<T>();
  bool all_pass = true;
  for (int k = 0; k < (steps < 0 ? g.opt.steps : steps); ++k) {
    const Tensor<T> x = g.get<T>(g.latents_before(k));
    const Tensor<T> mo = pipeline_model_output(w, s, k, g.opt.cfg, x, pos, neg);
    const Tensor<double> want = g.get<double>("model_output." + std::to_string(k));
    // Budget: the whole transformer (T2) at this batch's longest sequence, times the CFG amplification.
    int64_t L = 0;
    for (const auto& e : pos) L = std::max(L, e.shape[0]);
    for (const auto& e : neg) L = std::max(L, e.shape[0]);
    L += (x.shape[2] / 2) * (x.shape[3] / 2);
    numerics::Budget b = dit_module_budget(numerics::Tier::T2, "sample.0", g.pipe.transformer.config, L);
    const double gk = cfg_scale_at_step(g.opt.cfg, s, k);
    double amp = 1;
    if (gk > 0) {  // the pos and neg outputs on the golden latents (a scale factor: T is precise enough)
      const CfgOptions off;
      amp = cfg_amplification(gk, widen(pipeline_model_output(w, s, k, off, x, pos, {})),
                              widen(pipeline_model_output(w, s, k, off, x, neg, {})), want);
    }
    b.rel_rms *= amp;
    b.max_n *= amp;
    const numerics::Comparison c = numerics::compare(mo, want);
    std::printf("  step %d (guidance %.2f, x%.2f): %s\n", k, gk, amp, numerics::describe(c, b).c_str());
    all_pass = all_pass && numerics::passes(c, b);
    if (expect_pass) {
      EXPECT_TRUE(numerics::passes(c, b)) << "step " << k;
    }
  }
  if (!expect_pass) {
    EXPECT_FALSE(all_pass) << "the mutation went unnoticed";
  }
}

template <class T>
numerics::Comparison decode_vs_golden(const PipelineGolden& g, numerics::Budget* b) {
  const VaeWeights<T> w = load_vae_weights<T>(g.pipe.vae.config, *g.pipe.vae.params, VaePart::Decoder);
  const Tensor<T> z = g.get<T>("latents.step." + std::to_string(g.opt.steps - 1));
  *b = vae_module_budget(numerics::Tier::T2, "decode", g.pipe.vae.config, z.shape);
  return numerics::compare(decode_latents(g.pipe.vae.config, w, z), g.get<double>("image.decoded"));
}

}  // namespace zimage::testing

// VAE mutation tests (docs/tolerances.md, "Mutation tests"): each
// injected porting bug must make a named VAE golden gate fail, and the same
// gate must pass without it. The gate is the T2 check of test_vae_golden.cpp
// (run in double: the reference's own rounding cannot be what fails it).
// Linked against the mutants build of the reference (zimage_ref_mutants;
// reference/numerics/mutation.h, docs/tolerances.md).
#include "numerics/mutation.h"
#include "support/goldens.h"
#include "support/mutation_gate.h"
#include "support/test_support.h"
#include "vae/vae_golden.h"
#include "vae/module_table.h"

namespace zimage {
namespace {

struct VaeMutationCase {
  Mutation mutation;
  std::string golden;
  std::string check;  // a row of the golden (module path or decode / tiled_decode / unscale / encode.*)
};

void PrintTo(const VaeMutationCase& m, std::ostream* os) {
  *os << mutation_name(m.mutation) << " @ " << m.golden << " " << m.check;
}

std::pair<bool, std::string> run_check(const VaeMutationCase& m) {
  const VaeGolden g = open_vae_golden(testing::golden_path(m.golden));
  const auto got = run_vae_module<double>(g, m.check);
  if (!got) throw Error(m.golden + " lacks the inputs of " + m.check);
  const numerics::Budget b = vae_row_budget(g, m.check);
  const numerics::Comparison cmp = numerics::compare(*got, g.get<double>(m.check));
  return {numerics::passes(cmp, b), numerics::describe(cmp, b)};
}

class VaeMutationIsCaught : public ::testing::TestWithParam<VaeMutationCase> {};

TEST_P(VaeMutationIsCaught, CheckFailsWithMutationAndPassesWithout) {
  testing::expect_mutation_caught(GetParam(), run_check);
}

INSTANTIATE_TEST_SUITE_P(
    Vae, VaeMutationIsCaught,
    ::testing::Values(
        // GroupNorm dividing by N-1: a single norm (N = 4 channels x 30 pixels), a real-size
        // resnet (N = 16 x 100) and the whole decode all catch it.
        VaeMutationCase{Mutation::GroupNormUnbiased, "vae_tiny", "decoder.mid_block.resnets.0.norm1"},
        VaeMutationCase{Mutation::GroupNormUnbiased, "vae_real_blocks", "decoder.mid_block.resnets.0"},
        VaeMutationCase{Mutation::GroupNormUnbiased, "vae_flux_like", "decode"},
        // post_quant_conv skipped although the config has one (vae_tiny: use_post_quant_conv true).
        VaeMutationCase{Mutation::NoPostQuantConv, "vae_tiny", "decode"},
        VaeMutationCase{Mutation::NoPostQuantConv, "vae_tiny", "tiled_decode"},
        // latents * scaling_factor - shift instead of latents / scaling_factor + shift.
        VaeMutationCase{Mutation::WrongLatentScale, "vae_flux_like", "unscale"}),
    [](const auto& info) {
      return testing::test_name(std::string(mutation_name(info.param.mutation)) + "__" + info.param.golden + "__" +
                                info.param.check);
    });

}  // namespace
}  // namespace zimage

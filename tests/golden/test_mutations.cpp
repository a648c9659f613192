// Mutation tests (docs/tolerances.md, "Mutation tests"): each injected
// porting bug must make a named golden check fail, and the same check must
// pass without it. A tolerance that lets one of these through is too loose.
// Linked against the mutants build of the reference (zimage_ref_mutants;
// reference/numerics/mutation.h, docs/tolerances.md).
#include "numerics/mutation.h"
#include "support/goldens.h"
#include "support/mutation_gate.h"
#include "support/test_support.h"
#include "dit/module_table.h"
#include "validation/validate.h"

namespace zimage {
namespace {

struct MutationCase {
  Mutation mutation;
  std::string golden;  // case
  std::string check;   // module (teacher forced) or a whole-model row (patchify.* / sample.*)
};

void PrintTo(const MutationCase& m, std::ostream* os) { *os << mutation_name(m.mutation) << " @ " << m.golden << " " << m.check; }

// Runs the named check in double and returns (passed, description).
std::pair<bool, std::string> run_check(const MutationCase& m) {
  const GoldenFile g = open_golden(testing::golden_path(m.golden));
  if (m.check.rfind("patchify.", 0) == 0 || m.check.rfind("sample.", 0) == 0 || g.kind.rfind("rope_", 0) == 0) {
    // rope_sweep rows are named <tensor>.L<caption length>: run that length only.
    const size_t at = m.check.rfind(".L");
    const auto rows = g.kind == "rope_sweep" ? validate_rope_sweep_case<double>(g, std::stoll(m.check.substr(at + 2)), false)
                                             : validate_golden<double>(g);
    for (const auto& r : rows)
      if (r.module == m.check)
        return {r.pass, r.exact ? numerics::describe_exact(r.cmp) : numerics::describe(r.cmp, r.budget)};
    throw Error("no row " + m.check);
  }
  const auto got = run_dit_module<double>(g, m.check);
  if (!got) throw Error("golden lacks inputs of " + m.check);
  const auto b = dit_module_budget(numerics::Tier::T2, m.check, g.config, module_seq_len(g, m.check));
  const auto cmp = numerics::compare(*got, g.get<double>(m.check));
  return {numerics::passes(cmp, b), numerics::describe(cmp, b)};
}

class MutationIsCaught : public ::testing::TestWithParam<MutationCase> {};

TEST_P(MutationIsCaught, CheckFailsWithMutationAndPassesWithout) {
  testing::expect_mutation_caught(GetParam(), run_check);
}

INSTANTIATE_TEST_SUITE_P(
    Numerics, MutationIsCaught,
    ::testing::Values(MutationCase{Mutation::RopeHalfSplit, "tiny_single", "layers.0.attention"},
                      MutationCase{Mutation::RopeAxesPermuted, "tiny_single", "rope_embedder.x"},
                      MutationCase{Mutation::RopeTheta10000, "tiny_single", "rope_embedder.cap"},
                      MutationCase{Mutation::PositionsFromZero, "tiny_single", "patchify.cap_pos_ids.0"},
                      MutationCase{Mutation::NoGateTanh, "tiny_single", "layers.0"},
                      MutationCase{Mutation::ScaleWithoutOne, "tiny_single", "noise_refiner.0"},
                      MutationCase{Mutation::SiluBeforeBlockAdaLN, "tiny_single", "layers.1.adaLN_modulation"},
                      MutationCase{Mutation::TScaleOne, "tiny_single", "sample.0"},
                      MutationCase{Mutation::PadTokensNotSubstituted, "tiny_single", "sample.0"},
                      MutationCase{Mutation::PadPositionsSwapped, "tiny_single", "patchify.x_pos_ids.0"},
                      MutationCase{Mutation::NoAttentionScale, "tiny_wide", "layers.0.attention"},
                      MutationCase{Mutation::RmsNormEps1e6, "real_modules", "layers.0.attention.norm_q"},
                      MutationCase{Mutation::TimestepSinFirst, "tiny_batch2", "t_embedder"},
                      // The RoPE-edge goldens' gates fail too.
                      MutationCase{Mutation::RopeTheta10000, "rope_table", "rope_embedder.freqs_cis.0"},
                      MutationCase{Mutation::PositionsFromZero, "rope_sweep", "sample.L1504"}),
    [](const auto& info) {
      const MutationCase& m = info.param;
      const bool rope_edge = m.golden.rfind("rope_", 0) == 0;
      return testing::test_name(mutation_name(m.mutation) + (rope_edge ? "__" + m.golden : std::string()));
    });

}  // namespace
}  // namespace zimage

// Text encoder mutation tests (docs/tolerances.md, "Mutation tests"):
// hidden_states[-1] for [-2], no causal mask, interleaved RoPE each make a
// named T2 check of test_text_encoder_goldens.cpp fail that passes without
// them. Linked against the mutants build of the reference (zimage_ref_mutants;
// reference/numerics/mutation.h). docs/text_encoder.md.
#include "numerics/mutation.h"
#include "support/mutation_gate.h"
#include "support/te_goldens.h"
#include "support/test_support.h"
#include "text_encoder/te_golden.h"
#include "text_encoder/module_table.h"

namespace zimage {
namespace {

using testing::te_golden;

// ---------------------------------------------------------------- mutations

struct MutationCase {
  Mutation mutation;
  std::string golden, check;
  int hidden = 0;  // for hidden_states checks: the index asked for (negative as the pipeline asks)
};
void PrintTo(const MutationCase& m, std::ostream* os) { *os << mutation_name(m.mutation) << " @ " << m.golden << " " << m.check; }

std::pair<bool, std::string> run_check(const MutationCase& m) {
  const TextEncoderGolden& g = te_golden(m.golden);
  const Tensor<double> ref = g.file->get<double>(m.check);
  const auto b = text_encoder_module_budget(numerics::Tier::T2, m.check, g.config, g.seq_len());
  const Tensor<double> got = m.hidden != 0 ? g.encoder->hidden_state<double>(g.input_ids, g.attention_mask, m.hidden)
                                           : *run_text_encoder_check<double>(g, m.check);
  const auto cmp = numerics::compare(got, ref);
  return {numerics::passes(cmp, b), numerics::describe(cmp, b)};
}

class TextEncoderMutation : public ::testing::TestWithParam<MutationCase> {};

TEST_P(TextEncoderMutation, CheckFailsWithMutationAndPassesWithout) {
  testing::expect_mutation_caught(GetParam(), run_check);
}

INSTANTIATE_TEST_SUITE_P(
    Numerics, TextEncoderMutation,
    ::testing::Values(MutationCase{Mutation::TextHiddenLayerLast, "te_tiny_left", "hidden_states.2", -2},
                      MutationCase{Mutation::TextNoCausalMask, "te_tiny_right", "layers.0"},
                      MutationCase{Mutation::TextNoCausalMask, "te_tiny_left", "layers.0.self_attn"},
                      MutationCase{Mutation::TextRopeInterleaved, "te_tiny_left", "layers.0.self_attn"},
                      MutationCase{Mutation::TextRopeInterleaved, "te_real_layer", "layers.0.self_attn"}),
    [](const auto& info) {
      return testing::test_name(std::string(mutation_name(info.param.mutation)) + "__" + info.param.golden);
    });

}  // namespace
}  // namespace zimage

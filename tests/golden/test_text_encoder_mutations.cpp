// Text encoder mutation tests (docs/tolerances.md, "Mutation tests"):
// hidden_states[-1] for [-2], no causal mask, interleaved RoPE each make a
// named T2 check of test_text_encoder_goldens.cpp fail that passes without
// them. Linked against the mutants build of the reference (zimage_ref_mutants;
// reference/numerics/mutation.h). docs/text_encoder.md.
#include <map>
#include <mutex>

#include "numerics/mutation.h"
#include "support/test_support.h"
#include "text_encoder/te_golden.h"
#include "text_encoder/module_table.h"

namespace zimage {
namespace {

std::string te_golden_path(const std::string& c) { return std::string(ZIMAGE_GOLDEN_DIR) + "/text_encoder/" + c + ".safetensors"; }

const TextEncoderGolden& golden(const std::string& c) {
  static std::map<std::string, TextEncoderGolden> cache;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(c);
  if (it == cache.end()) it = cache.emplace(c, open_text_encoder_golden(te_golden_path(c))).first;
  return it->second;
}

// ---------------------------------------------------------------- mutations

struct MutationCase {
  Mutation mutation;
  std::string golden, check;
  int hidden = 0;  // for hidden_states checks: the index asked for (negative as the pipeline asks)
};
void PrintTo(const MutationCase& m, std::ostream* os) { *os << mutation_name(m.mutation) << " @ " << m.golden << " " << m.check; }

std::pair<bool, std::string> run_check(const MutationCase& m) {
  const TextEncoderGolden& g = golden(m.golden);
  const Tensor<double> ref = g.file->get<double>(m.check);
  const auto b = text_encoder_module_budget(numerics::Tier::T2, m.check, g.config, g.seq_len());
  const Tensor<double> got = m.hidden != 0 ? g.encoder->hidden_state<double>(g.input_ids, g.attention_mask, m.hidden)
                                           : *run_text_encoder_check<double>(g, m.check);
  const auto cmp = numerics::compare(got, ref);
  return {numerics::passes(cmp, b), numerics::describe(cmp, b)};
}

class TextEncoderMutation : public ::testing::TestWithParam<MutationCase> {};

TEST_P(TextEncoderMutation, CheckFailsWithMutationAndPassesWithout) {
  const MutationCase& m = GetParam();
  const auto [clean_pass, clean] = run_check(m);
  std::printf("  clean   %s %s: %s\n", m.golden.c_str(), m.check.c_str(), clean.c_str());
  EXPECT_TRUE(clean_pass) << "the check must pass without the mutation: " << clean;
  std::pair<bool, std::string> bad;
  {
    ScopedMutation scoped(m.mutation);
    bad = run_check(m);
  }
  std::printf("  mutated %s %s [%s]: %s\n", m.golden.c_str(), m.check.c_str(), mutation_name(m.mutation), bad.second.c_str());
  EXPECT_FALSE(bad.first) << mutation_name(m.mutation) << " was not caught by " << m.check;
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

// Qwen3 text encoder against transformers' Qwen3Model goldens
// (golden/text_encoder/, tools/golden/dump_text_encoder.py):
//   T2: every recorded module, teacher forced, and every hidden_states[k] of
//       the whole forward, in float and in double, within 2 x the fp32 chain
//       budget (docs/tolerances.md); pad rows included (left-pad queries whose keys
//       are all masked must be exactly the zero rows torch gives).
// The mutation tests of these checks are in test_text_encoder_mutations.cpp.
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "support/te_goldens.h"
#include "support/test_support.h"
#include "text_encoder/te_golden.h"
#include "text_encoder/module_table.h"
#include "text_encoder/synthetic_qwen3.h"

namespace zimage {
namespace {

using testing::te_golden;
using testing::te_golden_dir;

struct Check {
  std::string golden, check;
};
void PrintTo(const Check& m, std::ostream* os) { *os << m.golden << " " << m.check; }

std::vector<Check> checks() {
  std::vector<Check> out;
  std::vector<std::string> cases;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(te_golden_dir(), ec)) {
    if (e.path().extension() != ".safetensors") continue;
    const auto f = SafetensorsFile::open(e.path().string());
    if (f->metadata().count("kind") && f->metadata().at("kind") == "text_encoder") cases.push_back(e.path().stem());
  }
  std::sort(cases.begin(), cases.end());
  for (const auto& c : cases)
    for (const auto& n : te_golden(c).checks()) out.push_back({c, n});
  return out;
}

class TextEncoderT2 : public ::testing::TestWithParam<Check> {};

TEST_P(TextEncoderT2, TeacherForcedWithinBudget) {
  const auto& [c, check] = GetParam();
  const TextEncoderGolden& g = te_golden(c);
  const Tensor<double> ref = g.file->get<double>(check);
  const auto b = text_encoder_module_budget(numerics::Tier::T2, check, g.config, g.seq_len());
  const auto f = run_text_encoder_check<float>(g, check);
  const auto d = run_text_encoder_check<double>(g, check);
  ASSERT_TRUE(f && d) << c << " lacks the inputs of " << check;
  testing::expect_within(c + " " + check + " float", numerics::compare(*f, ref), b);
  testing::expect_within(c + " " + check + " double", numerics::compare(*d, ref), b);
}

INSTANTIATE_TEST_SUITE_P(Goldens, TextEncoderT2, ::testing::ValuesIn(checks()), [](const auto& info) {
  return testing::test_name(info.param.golden + "__" + info.param.check);
});

// transformers' hidden_states indexing, pinned on the golden: [-1] is the final
// norm's output (hidden_states.n), [-2] the output of layer n-2 (hidden_states.n-1).
TEST(TextEncoderGolden, NegativeHiddenIndicesMatchTransformers) {
  const TextEncoderGolden& g = te_golden("te_tiny_left");
  const int n = g.config.num_hidden_layers;
  for (int k : {-1, -2, -(n + 1)}) {
    const int idx = qwen3_hidden_index(g.config, k);
    const Tensor<double> ref = g.file->get<double>("hidden_states." + std::to_string(idx));
    const auto got = g.encoder->hidden_state<double>(g.input_ids, g.attention_mask, k);
    const auto b = text_encoder_module_budget(numerics::Tier::T2, "hidden_states." + std::to_string(idx), g.config,
                                                        g.seq_len());
    testing::expect_within("hidden_states[" + std::to_string(k) + "]", numerics::compare(got, ref), b);
  }
  EXPECT_EQ(qwen3_hidden_index(g.config, -2), n - 1);
  EXPECT_EQ(qwen3_hidden_index(g.config, -1), n);
}

TEST(TextEncoderGolden, UnknownHiddenLayerIsAnError) {
  const TextEncoderGolden& g = te_golden("te_tiny_left");
  const int n = g.config.num_hidden_layers;
  for (int k : {n + 1, -(n + 2), 1000}) {
    try {
      (void)g.encoder->hidden_state<float>(g.input_ids, g.attention_mask, k);
      ADD_FAILURE() << "hidden layer " << k << " was accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      std::printf("  %s\n", msg.c_str());
      EXPECT_NE(msg.find("hidden layer " + std::to_string(k)), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos);
    }
  }
}

// qwen3_synthetic_spec is the dumper's te_rule: every tensor spec a golden's "synthetic_weights"
// holds (written by tools/golden/dump_text_encoder.py) is the one the C++ rule gives for the
// golden's config and seed, shape, offset and scale exactly, and every parameter has one
// (te_real_layer: Qwen3-4B's width, one layer).
TEST(TextEncoderGoldenSynthetic, SpecMatchesTheDumper) {
  for (const std::string c : {"te_tiny_left", "te_tiny_right", "te_real_layer"}) {
    const TextEncoderGolden& g = te_golden(c);
    const nlohmann::json dumped = nlohmann::json::parse(g.file->metadata().at("synthetic_weights"));
    const uint64_t seed = dumped.at("seed").get<uint64_t>();
    const nlohmann::json ours = nlohmann::json::parse(qwen3_synthetic_spec(g.config, seed));
    ASSERT_EQ(ours.at("seed"), dumped.at("seed")) << c;
    int n = 0;
    for (const auto& [name, t] : dumped.at("tensors").items()) {
      ASSERT_TRUE(ours.at("tensors").contains(name)) << c << ": " << name << " is not a parameter of the config";
      EXPECT_EQ(ours.at("tensors").at(name), t) << c << ": " << name;
      ++n;
    }
    EXPECT_EQ(dumped.at("tensors").size(), ours.at("tensors").size()) << c;
    std::printf("  %s: %d synthetic specs agree\n", c.c_str(), n);
  }
}

}  // namespace
}  // namespace zimage

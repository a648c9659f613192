// Qwen3 text encoder against transformers' Qwen3Model goldens
// (golden/text_encoder/, tools/golden/dump_text_encoder.py):
//   T2: every recorded module, teacher forced, and every hidden_states[k] of
//       the whole forward, in float and in double, within 2 x the fp32 chain
//       budget (docs/tolerances.md); pad rows included (left-pad queries whose keys
//       are all masked must be exactly the zero rows torch gives).
//   The transformers bf16 goldens (<case>.bf16, dump_text_encoder_bf16.py), the peer of the CUDA
//   bf16 encoder: within T4 of the fp64 reference, really a bf16 run, and leaving room for the
//   bf16 weight rounding that any bf16 encoder carries.
// The mutation tests of these checks are in test_text_encoder_mutations.cpp.
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>

#include "support/golden_values.h"
#include "support/te_bf16_goldens.h"
#include "support/te_goldens.h"
#include "support/test_support.h"
#include "text_encoder/module_table.h"
#include "text_encoder/synthetic_qwen3.h"
#include "text_encoder/te_golden.h"

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

// ---- transformers bf16 goldens (the peer of the CUDA bf16 encoder, tests/cuda/test_cuda_qwen3.cpp)

std::vector<std::string> te_bf16_cases() {
  std::vector<std::string> out;
  for (const char* c : {"te_tiny_left", "te_tiny_right", "te_real_layer"})
    if (std::filesystem::exists(testing::te_bf16_golden_path(c))) out.push_back(c);
  return out;
}

class TextEncoderBf16Golden : public ::testing::TestWithParam<std::string> {};

// Every hidden_states.{k} of transformers' bf16 run against the fp64 reference (the fp32 golden's
// weights and batch):
// - within the absolute T4 bound of the chain, with the weights' rounding to bf16 as its first op;
// - a bf16 error: rel_rms at least 100 x the fp32 golden's against the same reference, and at
//   least u_bf16 / 16;
// - room for the weights: the reference in fp64 from the bf16-rounded weights (what a bf16 encoder
//   computing exactly would give) meets the peer rule against it, so the rule the CUDA bf16
//   encoder is held to asks nothing that bf16 weights alone rule out; and fails it against the
//   fp32 golden as the peer (the rule's negative control).
TEST_P(TextEncoderBf16Golden, WithinT4OfFp64AndARealBf16Run) {
  const std::string c = GetParam();
  const TextEncoderGolden& g = te_golden(c);
  const auto bf = testing::open_te_bf16_golden(c, g);
  ASSERT_TRUE(bf.has_value());
  const Qwen3TextEncoder rounded(g.config, std::make_shared<testing::Bf16Rounded>(
                                               synthetic_param_source(g.file->metadata().at("synthetic_weights"))));
  std::vector<int> ks(size_t(g.config.num_hidden_layers + 1));
  std::iota(ks.begin(), ks.end(), 0);
  const auto ref = g.encoder->hidden_states<double>(g.input_ids, g.attention_mask, ks);
  const auto exact_bf16 = rounded.hidden_states<double>(g.input_ids, g.attention_mask, ks);
  for (int k : ks) {
    const std::string name = "hidden_states." + std::to_string(k), what = c + " " + name;
    auto ops = text_encoder_module_ops(name, g.config, g.seq_len());
    ops.insert(ops.begin(), {"weights to bf16", 1, 1, false});
    const numerics::Comparison cb = numerics::compare((*bf)->get<float>(name), ref[size_t(k)]);
    const numerics::Comparison c32 = numerics::compare(g.get<float>(name), ref[size_t(k)]);
    const numerics::Comparison cw = numerics::compare(exact_bf16[size_t(k)], ref[size_t(k)]);
    testing::expect_within(what + " transformers bf16 vs fp64 reference T4", cb,
                           numerics::budget_for(numerics::Tier::T4, ops));
    const double floor = numerics::budget_for(numerics::Tier::T3, ops).rel_rms;
    std::printf(
        "  %s: transformers bf16 rel_rms %.3e max_n %.3e; transformers fp32 rel_rms %.3e; peer limits for "
        "a CUDA bf16 encoder: rel_rms <= %.3e, max_n <= %.3e (floor %.3e)\n",
        what.c_str(), cb.rel_rms, cb.max_n, c32.rel_rms, 2 * cb.rel_rms + floor, 2 * cb.max_n + floor, floor);
    EXPECT_GE(cb.rel_rms, 100 * c32.rel_rms) << what << ": the bf16 golden is too close to fp32 to be a bf16 run";
    EXPECT_GE(cb.rel_rms, numerics::kUnitRoundoffBf16 / 16) << what;
    const std::string room = numerics::describe_peer(cw, cb, floor);
    std::printf("  %s: fp64 from bf16-rounded weights against the peer rule: %s\n", what.c_str(), room.c_str());
    EXPECT_TRUE(numerics::passes_peer(cw, cb, floor)) << what << ": " << room;
    // Negative control: with transformers' fp32 run as the peer, the same bf16-weight result fails.
    EXPECT_FALSE(numerics::passes_peer(cw, c32, floor)) << what << ": the peer rule let bf16 weights pass an fp32 peer";
  }
}

INSTANTIATE_TEST_SUITE_P(Goldens, TextEncoderBf16Golden, ::testing::ValuesIn(te_bf16_cases()),
                         [](const auto& info) { return info.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(TextEncoderBf16Golden);

// The cases docs/text_encoder.md promises a bf16 golden for.
TEST(TextEncoderBf16GoldenInventory, PromisedCasesPresent) {
  for (const char* c : {"te_tiny_left", "te_tiny_right", "te_real_layer"})
    EXPECT_TRUE(std::filesystem::exists(testing::te_bf16_golden_path(c)))
        << testing::te_bf16_golden_path(c) << " missing";
}

}  // namespace
}  // namespace zimage

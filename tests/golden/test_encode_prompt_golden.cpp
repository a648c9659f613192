// Prompt encoding as ZImagePipeline.encode_prompt does it, against diffusers
// (golden/text_encoder/te_encode_prompt.safetensors, tools/golden/dump_tokenizer.py):
// the tiny Qwen3 text encoder saved by transformers (golden/text_encoder/tiny_te,
// sharded) and the test tokenizer. Token ids and masks exact (T0); embeddings
// (hidden_states[-2], padded rows dropped) within the T2 chain budget; a
// prompt over max_sequence_length truncated with a warning naming the count.
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "support/te_goldens.h"
#include "support/test_support.h"
#include "text_encoder/prompt_encoder.h"
#include "text_encoder/module_table.h"

namespace zimage {
namespace {

using testing::tiny_prompt_encoder;

const SafetensorsFile& golden() {
  static const auto f = SafetensorsFile::open(testing::te_golden_path("te_encode_prompt"));
  return *f;
}
nlohmann::json runs() { return nlohmann::json::parse(golden().metadata().at("runs")); }

class EncodePromptRun : public ::testing::TestWithParam<int> {};

TEST_P(EncodePromptRun, IdsMasksAndEmbeddingsMatchDiffusers) {
  const int r = GetParam();
  const nlohmann::json run = runs().at(size_t(r));
  const int L = run["max_sequence_length"].get<int>();
  const std::string pre = "run" + std::to_string(r) + ".";
  std::vector<std::string> prompts, texts;
  for (const auto& p : run["prompts"]) prompts.push_back(p.get<std::string>()), texts.push_back(qwen3_chat_prompt(prompts.back()));
  std::vector<std::string> warnings;
  const TokenizedBatch tb = tiny_prompt_encoder().tokenize(texts, L, [&](const std::string& w) { warnings.push_back(w); });
  testing::expect_exact(pre + "input_ids", numerics::compare(tb.input_ids.cast<double>(), golden().get<double>(pre + "input_ids")));
  testing::expect_exact(pre + "attention_mask",
                        numerics::compare(tb.attention_mask.cast<double>(), golden().get<double>(pre + "attention_mask")));
  // Truncation: one warning per prompt over L, naming the dropped count transformers implies.
  size_t expected_warnings = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const int64_t n = run["untruncated_lengths"][i].get<int64_t>();
    EXPECT_EQ(tb.dropped[i], std::max<int64_t>(0, n - L));
    if (n > L) ++expected_warnings;
  }
  ASSERT_EQ(warnings.size(), expected_warnings);
  for (const auto& w : warnings) {
    std::printf("  warning: %s\n", w.c_str());
    EXPECT_NE(w.find("tokens dropped"), std::string::npos);
  }
  const auto budget = text_encoder_module_budget(
      numerics::Tier::T2, "hidden_states." + std::to_string(qwen3_hidden_index(tiny_prompt_encoder().text_encoder().config(), -2)),
      tiny_prompt_encoder().text_encoder().config(), L);
  auto check = [&](const std::vector<std::string>& ps, const std::string& name) {
    const auto f = tiny_prompt_encoder().encode<float>(ps, L);
    const auto d = tiny_prompt_encoder().encode<double>(ps, L);
    for (size_t i = 0; i < ps.size(); ++i) {
      const Tensor<double> ref = golden().get<double>(pre + name + "." + std::to_string(i));
      ASSERT_EQ(f[i].shape, ref.shape) << name << " " << i;
      testing::expect_within(pre + name + "." + std::to_string(i) + " float", numerics::compare(f[i], ref), budget);
      testing::expect_within(pre + name + "." + std::to_string(i) + " double", numerics::compare(d[i], ref), budget);
    }
  };
  check(prompts, "prompt_embeds");
  if (!run["negative_prompts"].is_null()) {
    std::vector<std::string> negs;
    for (const auto& p : run["negative_prompts"]) negs.push_back(p.get<std::string>());
    check(negs, "negative_prompt_embeds");
  }
}
INSTANTIATE_TEST_SUITE_P(Golden, EncodePromptRun, ::testing::Values(0, 1));

TEST(EncodePrompt, HiddenLayerMinusOneIsCaught) {
  // The wrong-layer bug as a user flag: -1 differs from diffusers' -2 far beyond the budget.
  const std::vector<std::string> p{runs()[0]["prompts"][0].get<std::string>()};
  const auto ref = golden().get<double>("run0.prompt_embeds.0");
  const auto got = tiny_prompt_encoder().encode<double>(p, 512, -1);
  const auto b = text_encoder_module_budget(numerics::Tier::T2, "hidden_states.3", tiny_prompt_encoder().text_encoder().config(), 512);
  const auto cmp = numerics::compare(got[0], ref);
  std::printf("  hidden layer -1 vs golden -2: %s\n", numerics::describe(cmp, b).c_str());
  EXPECT_FALSE(numerics::passes(cmp, b));
}

TEST(EncodePrompt, UnknownHiddenLayerIsAnError) {
  try {
    (void)tiny_prompt_encoder().encode<float>({"a cat"}, 64, 7);
    ADD_FAILURE() << "hidden layer 7 accepted for a 3-layer encoder";
  } catch (const Error& e) {
    std::printf("  %s\n", e.what());
    EXPECT_NE(std::string(e.what()).find("hidden layer 7"), std::string::npos);
  }
}

TEST(EncodePrompt, LoadsTheSavedShardedFolder) {
  const auto& te = tiny_prompt_encoder().text_encoder();
  EXPECT_EQ(te.config().num_key_value_heads * 4, te.config().num_attention_heads);
  EXPECT_NE(te.params().describe().find("model.safetensors.index.json"), std::string::npos) << te.params().describe();
}

}  // namespace
}  // namespace zimage

// Tokenizer and chat template against the tokenizers library and
// transformers (golden/text_encoder/te_tokenizer.safetensors, dumped by
// tools/golden/dump_tokenizer.py with the test tokenizer in
// golden/text_encoder/tokenizer/): token ids equal exactly (T0), every run.
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "support/test_support.h"
#include "io/safetensors.h"
#include "text_encoder/prompt_encoder.h"

namespace zimage {
namespace {

const std::string kDir = std::string(ZIMAGE_GOLDEN_DIR) + "/text_encoder";

const SafetensorsFile& golden() {
  static const auto f = SafetensorsFile::open(kDir + "/te_tokenizer.safetensors");
  return *f;
}
const Qwen2Tokenizer& tok() {
  static const Qwen2Tokenizer t = Qwen2Tokenizer::from_file(kDir + "/tokenizer/tokenizer.json");
  return t;
}
nlohmann::json meta_json(const std::string& key) { return nlohmann::json::parse(golden().metadata().at(key)); }

std::vector<int32_t> golden_ids(const std::string& name) {
  if (!golden().contains(name)) return {};  // an empty text has no ids tensor
  const auto t = golden().get<int32_t>(name);
  return t.data;
}

std::string show(const std::vector<int32_t>& v) {
  std::string s;
  for (int32_t x : v) s += (s.empty() ? "" : " ") + std::to_string(x);
  return "[" + s + "]";
}

class TokenizerCorpus : public ::testing::TestWithParam<int> {};

TEST_P(TokenizerCorpus, IdsEqualTokenizersLibrary) {
  const int i = GetParam();
  const std::string text = meta_json("corpus").at(size_t(i)).get<std::string>();
  const auto want = golden_ids("ids." + std::to_string(i));
  const auto got = tok().encode(text);
  std::printf("  corpus %d: %zu ids, %s\n", i, got.size(), got == want ? "equal" : "DIFFERENT");
  EXPECT_EQ(got, want) << "text " << nlohmann::json(text).dump() << "\n got  " << show(got) << "\n want " << show(want);
  EXPECT_EQ(tok().encode(text), got) << "not deterministic";
}
INSTANTIATE_TEST_SUITE_P(Golden, TokenizerCorpus, ::testing::Range(0, 19));

// The same vocabulary saved by transformers' own Qwen2Tokenizer (which builds the Qwen2/Qwen3
// backend in code): the tokenizer.json layout of the real Qwen3 files loads and gives the same ids.
TEST(TokenizerGolden, TransformersWrittenFileGivesTheSameIds) {
  const Qwen2Tokenizer hf = Qwen2Tokenizer::from_file(kDir + "/tokenizer_transformers/tokenizer.json");
  const auto corpus = meta_json("corpus");
  for (size_t i = 0; i < corpus.size(); ++i)
    EXPECT_EQ(hf.encode(corpus[i].get<std::string>()), golden_ids("ids." + std::to_string(i))) << "corpus " << i;
}

TEST(TokenizerGolden, CorpusSizeMatchesTheTestList) { EXPECT_EQ(meta_json("corpus").size(), 19u); }

// Per prompt, the golden holds apply_chat_template's text for enable_thinking=True (what
// ZImagePipeline uses), enable_thinking=False, and a think block with given content.
TEST(TokenizerGolden, ChatTemplateTextAndIds) {
  const auto prompts = meta_json("prompts"), texts = meta_json("chat_texts");
  const std::string think = golden().metadata().at("think");
  ASSERT_EQ(texts.size(), prompts.size() * 3);
  for (size_t p = 0; p < prompts.size(); ++p) {
    const std::string prompt = prompts[p].get<std::string>();
    const std::string ours[3] = {qwen3_chat_prompt(prompt), qwen3_chat_prompt(prompt, std::string()),
                                 qwen3_chat_prompt(prompt, think)};
    for (size_t k = 0; k < 3; ++k) {
      const size_t i = p * 3 + k;
      EXPECT_EQ(ours[k], texts[i].get<std::string>()) << "prompt " << p << " variant " << k;
      EXPECT_EQ(tok().encode(ours[k]), golden_ids("chat." + std::to_string(i))) << "prompt " << p << " variant " << k;
    }
  }
}

TEST(TokenizerGolden, SpecialTokensHaveTheirIds) {
  for (const auto& s : meta_json("special_tokens")) {
    const auto id = tok().token_to_id(s.get<std::string>());
    ASSERT_TRUE(id.has_value()) << s;
    EXPECT_EQ(tok().encode(s.get<std::string>()), std::vector<int32_t>{*id});
  }
}

TEST(TokenizerGolden, RefusesOtherKinds) {
  nlohmann::json good = nlohmann::json::parse(std::ifstream(kDir + "/tokenizer/tokenizer.json"));
  struct Bad { std::string what; std::function<void(nlohmann::json&)> edit; std::string expect; };
  const std::vector<Bad> bad = {
      {"WordPiece", [](nlohmann::json& j) { j["model"] = {{"type", "WordPiece"}, {"vocab", {{"a", 0}}}}; }, "\"WordPiece\""},
      {"Unigram", [](nlohmann::json& j) { j["model"]["type"] = "Unigram"; }, "\"Unigram\""},
      {"BPE without byte level", [](nlohmann::json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }, "Sequence[Split, ByteLevel]"},
      {"GPT-2 pattern", [](nlohmann::json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\s+"; }, "Qwen2's pattern"},
      {"NFKC", [](nlohmann::json& j) { j["normalizer"] = {{"type", "NFKC"}}; }, "NFKC"},
      {"subword prefix", [](nlohmann::json& j) { j["model"]["continuing_subword_prefix"] = "##"; }, "subword prefix"},
      // fuzz/fuzz_tokenizer's first run (docs/reliability.md): json::value() threw its own type_error on a
      // non-boolean flag. Review of the same parser: strings from the file made multi-line messages, and
      // ids outside int32 were taken.
      {"byte_fallback not a bool", [](nlohmann::json& j) { j["model"]["byte_fallback"] = "no"; }, "\"byte_fallback\" is string"},
      {"lstrip not a bool", [](nlohmann::json& j) { j["added_tokens"][0]["lstrip"] = 0; }, "\"lstrip\" is number"},
      {"normalizer with a newline", [](nlohmann::json& j) { j["normalizer"] = {{"type", "NF\nKC"}}; }, "\"NF KC\""},
      {"negative added id", [](nlohmann::json& j) { j["added_tokens"][0]["id"] = -1; }, "malformed added_tokens entry"},
      {"vocab id past int32", [](nlohmann::json& j) { j["model"]["vocab"]["a\nb"] = 2147483648LL; }, "\"a b\" is not an integer id"},
  };
  for (const Bad& b : bad) {
    nlohmann::json j = good;
    b.edit(j);
    try {
      (void)Qwen2Tokenizer::from_json(j, "tok.json");
      ADD_FAILURE() << b.what << " was accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      std::printf("  %s: %s\n", b.what.c_str(), msg.c_str());
      EXPECT_NE(msg.find(b.expect), std::string::npos) << msg;
      EXPECT_NE(msg.find("tok.json"), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
}

}  // namespace
}  // namespace zimage

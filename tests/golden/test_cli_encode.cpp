// zimage encode end to end: a pipeline folder holding the tiny Qwen3 text
// encoder saved by transformers and the test tokenizer; the written
// prompt_embeds.{i} against diffusers' encode_prompt golden (T2 budget), the
// truncation warning, and bad input (unknown hidden layer, a tokenizer.json of
// another kind, a missing text encoder) as one-line errors with exit status 2.
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "support/cli_runner.h"
#include "support/test_support.h"
#include "text_encoder/qwen3_model.h"
#include "text_encoder/module_table.h"

namespace zimage {
namespace {

namespace fs = std::filesystem;
const std::string kDir = std::string(ZIMAGE_GOLDEN_DIR) + "/text_encoder";

std::string q(const std::string& s) { return "'" + s + "'"; }

TEST(CliEncode, WritesWhatDiffusersEncodes) {
  const fs::path p = testing::text_encoder_pipeline("encode_ok");
  const auto golden = SafetensorsFile::open(kDir + "/te_encode_prompt.safetensors");
  const auto runs = nlohmann::json::parse(golden->metadata().at("runs"));
  const fs::path out = p / "embeds.safetensors";
  std::string cmd = "encode --model " + p.string() + " --out " + out.string();
  for (const auto& pr : runs[0]["prompts"]) cmd += " --prompt " + q(pr.get<std::string>());
  const auto r = testing::run_zimage(cmd);
  std::printf("  %s", r.err.c_str());
  ASSERT_EQ(r.status, 0) << r.err;
  const auto f = SafetensorsFile::open(out.string());
  const auto cfg = Qwen3Config::from_file((p / "text_encoder" / "config.json").string());
  const auto b = text_encoder_module_budget(numerics::Tier::T2, "hidden_states." + std::to_string(cfg.num_hidden_layers - 1), cfg, 512);
  for (size_t i = 0; i < runs[0]["prompts"].size(); ++i) {
    const std::string n = "prompt_embeds." + std::to_string(i);
    ASSERT_TRUE(f->contains(n));
    EXPECT_EQ(f->view(n).dtype, DType::F32);
    testing::expect_within("cli " + n, numerics::compare(f->get<double>(n), golden->get<double>("run0." + n)), b);
  }
}

TEST(CliEncode, TruncationWarnsWithTheDroppedCount) {
  const fs::path p = testing::text_encoder_pipeline("encode_trunc");
  const auto golden = SafetensorsFile::open(kDir + "/te_encode_prompt.safetensors");
  const auto run = nlohmann::json::parse(golden->metadata().at("runs"))[1];
  const int L = run["max_sequence_length"].get<int>();
  const int64_t n = run["untruncated_lengths"][0].get<int64_t>();
  const fs::path out = p / "embeds.safetensors";
  const auto r = testing::run_zimage("encode --model " + p.string() + " --max-sequence-length " + std::to_string(L) + " --prompt " +
                                     q(run["prompts"][0].get<std::string>()) + " --out " + out.string());
  std::printf("  %s", r.err.c_str());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find(std::to_string(n - L) + " tokens dropped"), std::string::npos) << r.err;
  const auto f = SafetensorsFile::open(out.string());
  EXPECT_EQ(f->view("prompt_embeds.0").shape[0], L);
  const auto cfg = Qwen3Config::from_file((p / "text_encoder" / "config.json").string());
  const auto b = text_encoder_module_budget(numerics::Tier::T2, "hidden_states." + std::to_string(cfg.num_hidden_layers - 1), cfg, L);
  testing::expect_within("cli truncated", numerics::compare(f->get<double>("prompt_embeds.0"), golden->get<double>("run1.prompt_embeds.0")), b);
}

TEST(CliEncode, BadInputIsOneLineError) {
  const fs::path p = testing::text_encoder_pipeline("encode_bad");
  const std::string out = (p / "x.safetensors").string();
  testing::expect_refusal(testing::run_zimage("encode --model " + p.string() + " --prompt cat --hidden-layer 5 --out " + out),
                        "hidden layer 5 does not exist");
  testing::expect_refusal(testing::run_zimage("encode --model " + p.string() + " --prompt cat --hidden-layer x --out " + out),
                        "--hidden-layer must be an integer");
  testing::expect_refusal(testing::run_zimage("encode --model " + p.string() + " --out " + out), "--prompt");
  testing::expect_refusal(testing::run_zimage("encode --model " + (p / "text_encoder").string() + " --prompt cat --out " + out),
                        "no text_encoder/config.json");
  // A WordPiece tokenizer.json in place of the byte-level BPE.
  {
    std::ofstream(p / "tokenizer" / "tokenizer.json")
        << R"({"version":"1.0","model":{"type":"WordPiece","unk_token":"[UNK]","vocab":{"[UNK]":0,"cat":1}}})";
  }
  testing::expect_refusal(testing::run_zimage("encode --model " + p.string() + " --prompt cat --out " + out),
                        "not a byte-level BPE tokenizer.json of the Qwen2/Qwen3 kind: model type is \"WordPiece\"");
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace zimage

// zimage encode with the text-encoder knobs (--system-prompt, --think "" / TEXT, --padding-side,
// --hidden-layers/--hidden-layer-weights) end to end against transformers
// (golden/text_encoder/te_knobs.safetensors, tools/golden/dump_te_knobs.py), and bad knob values
// on encode and generate as one line, exit 2, before any file is read (--model names a folder
// that does not exist: an error about it would mean a file was looked at first).
// How each can fail: --think "" read as no think block fails run 1 (metadata and
// embeddings); --hidden-layer-weights ignored fails run 3 (equal weights are another mix).
#include <algorithm>
#include <fstream>
#include <iterator>
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

std::string q(const std::string& s) {  // single-quoted for the shell
  std::string o = "'";
  for (char c : s) o += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return o + "'";
}

std::string join(const nlohmann::json& a) {
  std::string s;
  for (const auto& x : a) {
    if (!s.empty()) s += ",";
    s += x.is_number_integer() ? std::to_string(x.get<int>()) : nlohmann::json(x.get<double>()).dump();
  }
  return s;
}

class CliTeKnobsRun : public ::testing::TestWithParam<int> {};

TEST_P(CliTeKnobsRun, EncodeWritesWhatTransformersComputes) {
  const int r = GetParam();
  const auto golden = SafetensorsFile::open(kDir + "/te_knobs.safetensors");
  const auto run = nlohmann::json::parse(golden->metadata().at("runs"))[size_t(r)];
  const fs::path p = testing::text_encoder_pipeline("te_knobs_" + std::to_string(r));
  const fs::path out = p / "embeds.safetensors";
  std::string cmd = "encode --model " + p.string() + " --out " + out.string() +
                    " --max-sequence-length " + std::to_string(run["max_sequence_length"].get<int>()) +
                    " --padding-side " + run["padding_side"].get<std::string>() + " --hidden-layers " + join(run["hidden_layers"]);
  if (!run["hidden_layer_weights"].is_null()) cmd += " --hidden-layer-weights " + join(run["hidden_layer_weights"]);
  if (!run["system"].is_null()) cmd += " --system-prompt " + q(run["system"].get<std::string>());
  if (!run["think"].is_null()) cmd += " --think " + q(run["think"].get<std::string>());
  for (const auto& pr : run["prompts"]) cmd += " --prompt " + q(pr.get<std::string>());
  const auto res = testing::run_zimage(cmd);
  std::printf("  zimage %s\n  %s", cmd.c_str(), res.err.c_str());
  ASSERT_EQ(res.status, 0) << res.err;
  const auto f = SafetensorsFile::open(out.string());
  EXPECT_EQ(f->metadata().at("think_block"), run["think"].is_null() ? "no" : "yes");
  EXPECT_EQ(f->metadata().at("system_message"), run["system"].is_null() ? "no" : "yes");
  const auto cfg = Qwen3Config::from_file((p / "text_encoder" / "config.json").string());
  int deepest = 0;
  for (const auto& k : run["hidden_layers"]) deepest = std::max(deepest, qwen3_hidden_index(cfg, k.get<int>()));
  const auto b = text_encoder_module_budget(numerics::Tier::T2, "hidden_states." + std::to_string(std::max(1, deepest)),
                                                      cfg, run["max_sequence_length"].get<int>());
  for (size_t i = 0; i < run["prompts"].size(); ++i) {
    const std::string n = "prompt_embeds." + std::to_string(i);
    ASSERT_TRUE(f->contains(n));
    const auto ref = golden->get<double>("run" + std::to_string(r) + "." + n);
    ASSERT_EQ(f->view(n).shape, ref.shape) << n;
    testing::expect_within("cli run" + std::to_string(r) + " " + n, numerics::compare(f->get<double>(n), ref), b);
  }
}
INSTANTIATE_TEST_SUITE_P(Golden, CliTeKnobsRun, ::testing::Values(1, 2, 3));

// generate --prompt with the knobs makes the image that encode with the same knobs + generate
// --prompt-embeds makes (the knobs reach the library's encoding), and not the default's image.
TEST(CliTeKnobs, GenerateUsesTheKnobs) {
  const fs::path d = testing::tiny_text_pipeline("te_knobs_generate");
  const std::string knobs = " --system-prompt 'You draw.' --think '' --padding-side left --hidden-layers -2,-3 --hidden-layer-weights 1,3";
  const std::string common = " --model " + d.string() + " --height 32 --width 32 --steps 1 --seed 5";
  auto ok = [](const std::string& cmd) {
    const auto r = testing::run_zimage(cmd);
    ASSERT_EQ(r.status, 0) << cmd << "\n" << r.err;
  };
  ok("encode --model " + d.string() + " --prompt 'a red fox'" + knobs + " --out " + (d / "k.safetensors").string());
  ok("generate" + common + " --prompt-embeds " + (d / "k.safetensors").string() + " --out " + (d / "a.png").string());
  ok("generate" + common + " --prompt 'a red fox'" + knobs + " --out " + (d / "b.png").string());
  ok("generate" + common + " --prompt 'a red fox' --out " + (d / "c.png").string());
  const std::string a = testing::slurp(d / "a.png"), b = testing::slurp(d / "b.png"), c = testing::slurp(d / "c.png");
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "generate --prompt with knobs differs from encode with knobs + --prompt-embeds";
  EXPECT_FALSE(b == c) << "the knobs changed nothing";
}

void expect_one_line_error(const testing::CliResult& r, const std::string& needle) {
  testing::expect_refusal(r, needle);
  EXPECT_EQ(r.err.find("no_such_model"), std::string::npos) << "a file was looked at before the knobs were checked: " << r.err;
}

TEST(CliTeKnobs, BadKnobsAreOneLineBeforeAnyFile) {
  const std::string m = " --model " + (testing::scratch_dir("te_knobs_bad") / "no_such_model").string();
  for (const std::string& cmd : {"encode --prompt cat --out x.safetensors" + m, "generate --prompt cat --out x.png" + m}) {
    expect_one_line_error(testing::run_zimage(cmd + " --padding-side up"), "--padding-side must be left or right");
    expect_one_line_error(testing::run_zimage(cmd + " --hidden-layers -2,x"), "--hidden-layers");
    expect_one_line_error(testing::run_zimage(cmd + " --hidden-layers -2,,-3"), "empty item");
    expect_one_line_error(testing::run_zimage(cmd + " --hidden-layers -2,-3 --hidden-layer-weights 1"), "1 weights for 2 hidden layers");
    expect_one_line_error(testing::run_zimage(cmd + " --hidden-layers -2,-3 --hidden-layer-weights nan,1"), "--hidden-layer-weights");
    expect_one_line_error(testing::run_zimage(cmd + " --hidden-layers -2,-3 --hidden-layer-weights -1,2"), "finite and >= 0");
    expect_one_line_error(testing::run_zimage(cmd + " --hidden-layers -2,-3 --hidden-layer-weights 0,0"), "sum to 0");
    expect_one_line_error(testing::run_zimage(cmd + " --hidden-layer -2 --hidden-layers -2,-3"), "exclude each other");
    expect_one_line_error(testing::run_zimage(cmd + " --hidden-layer-weights 1"), "needs --hidden-layers");
  }
  expect_one_line_error(testing::run_zimage("generate --prompt-embeds e.safetensors --out x.png --think ''" + m), "--think needs --prompt");
}

}  // namespace
}  // namespace zimage

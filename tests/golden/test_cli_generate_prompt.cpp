// zimage generate --prompt: a pipeline folder with text_encoder/ and
// tokenizer/ (the tiny diffusers pipeline of golden/models/pipeline_tiny plus
// the tiny Qwen3 text encoder, hidden 32 = its cap_feat_dim, and the test
// tokenizer) generates exactly what generate --prompt-embeds gives with the
// embeddings zimage encode writes (byte-equal PNGs), with and without CFG.
#include <fstream>
#include <iterator>

#include "support/cli_runner.h"
#include "support/test_support.h"

namespace zimage {
namespace {

namespace fs = std::filesystem;

void run_ok(const std::string& cmd) {
  const auto r = testing::run_zimage(cmd);
  ASSERT_EQ(r.status, 0) << cmd << "\n" << r.err;
}

TEST(CliGeneratePrompt, SameImageAsEncodeThenPromptEmbeds) {
  const fs::path d = testing::tiny_text_pipeline("gen_prompt");
  const std::string common = " --model " + d.string() + " --height 32 --width 32 --steps 1 --seed 3";
  run_ok("encode --model " + d.string() + " --prompt 'a red fox' --out " + (d / "pos.safetensors").string());
  run_ok("generate" + common + " --prompt-embeds " + (d / "pos.safetensors").string() + " --out " + (d / "a.png").string());
  run_ok("generate" + common + " --prompt 'a red fox' --out " + (d / "b.png").string());
  const std::string a = testing::slurp(d / "a.png"), b = testing::slurp(d / "b.png");
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "generate --prompt differs from encode + --prompt-embeds";
}

TEST(CliGeneratePrompt, CfgWithNegativePrompt) {
  const fs::path d = testing::tiny_text_pipeline("gen_prompt");
  const std::string common = " --model " + d.string() + " --height 32 --width 32 --steps 1 --seed 4 --guidance 3";
  run_ok("encode --model " + d.string() + " --prompt 'a red fox' --out " + (d / "p.safetensors").string());
  run_ok("encode --model " + d.string() + " --prompt 'blurry' --out " + (d / "n.safetensors").string());
  run_ok("generate" + common + " --prompt-embeds " + (d / "p.safetensors").string() + " --negative-prompt-embeds " +
         (d / "n.safetensors").string() + " --out " + (d / "c.png").string());
  run_ok("generate" + common + " --prompt 'a red fox' --negative-prompt blurry --out " + (d / "e.png").string());
  EXPECT_TRUE(testing::slurp(d / "c.png") == testing::slurp(d / "e.png"));
  // Without --negative-prompt, CFG uses "" as diffusers does: a different image.
  run_ok("generate" + common + " --prompt 'a red fox' --out " + (d / "f.png").string());
  EXPECT_FALSE(testing::slurp(d / "f.png") == testing::slurp(d / "e.png"));
}

TEST(CliGeneratePrompt, BadCombinations) {
  const fs::path d = testing::tiny_text_pipeline("gen_prompt");
  const auto r1 = testing::run_zimage("generate --model " + d.string() + " --negative-prompt x --prompt-embeds y --out z.png");
  EXPECT_EQ(r1.status, 2);
  EXPECT_NE(r1.err.find("--negative-prompt needs --prompt"), std::string::npos) << r1.err;
  const auto r2 = testing::run_zimage("generate --model " + d.string() + " --prompt x --prompt-embeds y --out z.png");
  EXPECT_EQ(r2.status, 2);
  EXPECT_NE(r2.err.find("exclude each other"), std::string::npos) << r2.err;
}

}  // namespace
}  // namespace zimage

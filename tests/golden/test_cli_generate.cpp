// `zimage generate` end to end on the tiny diffusers pipeline folder
// (golden/models/pipeline_tiny): the PNG pixels against diffusers' PIL image,
// seeded and given latents, CFG with several images, --check-finite, and bad
// input (one line naming the argument, exit 2, no PNG left behind).
#include <cmath>
#include <filesystem>
#include <fstream>

#include "io/png.h"
#include "io/safetensors.h"
#include "support/cli_runner.h"
#include "support/goldens.h"
#include "support/pixels.h"
#include "support/test_support.h"

namespace zimage {
namespace {

namespace fs = std::filesystem;
using testing::run_zimage;

const std::string kPipeline = std::string(ZIMAGE_GOLDEN_DIR) + "/models/pipeline_tiny";

std::string turbo_args() {  // golden/pipeline_turbo.safetensors: 64x96, 8 steps, guidance 0, seed 42
  return "generate --model " + kPipeline + " --prompt-embeds " + testing::golden_path("pipeline_turbo") +
         " --height 64 --width 96 --steps 8 --seed 42";
}

std::string cfg_args() {  // golden/pipeline_cfg.safetensors: 48x64, 6 steps, 2 prompts x 2 images
  const std::string g = testing::golden_path("pipeline_cfg");
  return "generate --model " + kPipeline + " --prompt-embeds " + g + " --negative-prompt-embeds " + g +
         " --height 48 --width 64 --steps 6 --guidance 4 --cfg-normalization 1.2 --cfg-truncation 0.3"
         " --num-images-per-prompt 2 --seed 7";
}

void expect_pixels_match(const std::string& png, const Tensor<int32_t>& want, int64_t item) {
  testing::expect_pixels_match(fs::path(png).filename().string(), read_png(png), want, item);
}

TEST(CliGenerate, TurboSeededMatchesDiffusersPixels) {
  const fs::path dir = testing::scratch_dir("gen_turbo"), png = dir / "turbo.png", lat = dir / "lat.safetensors";
  const auto r = run_zimage(turbo_args() + " --out " + png.string() + " --save-latents " + lat.string());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("step 8/8"), std::string::npos) << "no progress lines: " << r.err;
  EXPECT_NE(r.err.find("ETA"), std::string::npos) << r.err;
  const auto g = SafetensorsFile::open(testing::golden_path("pipeline_turbo"));
  expect_pixels_match(png.string(), g->get<int32_t>("image.uint8"), 0);
  // The seeded latents are torch's, bit for bit.
  const auto l = SafetensorsFile::open(lat.string());
  const auto c = numerics::compare(l->get<float>("latents.init"), g->get<float>("latents.init"));
  std::printf("  latents.init: %s\n", numerics::describe_exact(c).c_str());
  EXPECT_TRUE(numerics::passes_exact(c));
  fs::remove_all(dir);
}

TEST(CliGenerate, CfgFourImagesMatchDiffusersPixels) {
  const fs::path dir = testing::scratch_dir("gen_cfg");
  const auto r = run_zimage(cfg_args() + " --out " + (dir / "cfg.png").string());
  ASSERT_EQ(r.status, 0) << r.err;
  const auto g = SafetensorsFile::open(testing::golden_path("pipeline_cfg"));
  for (int b = 0; b < 4; ++b)
    expect_pixels_match((dir / ("cfg." + std::to_string(b) + ".png")).string(), g->get<int32_t>("image.uint8"), b);
  EXPECT_FALSE(fs::exists(dir / "cfg.png"));
  fs::remove_all(dir);
}

// --latents replaces the seeded noise: the golden's latents.init with another seed gives the same image.
TEST(CliGenerate, GivenLatentsOverrideTheSeed) {
  const fs::path dir = testing::scratch_dir("gen_latents"), png = dir / "given.png";
  const std::string args = "generate --model " + kPipeline + " --prompt-embeds " + testing::golden_path("pipeline_turbo") +
                           " --height 64 --width 96 --seed 999 --latents " + testing::golden_path("pipeline_turbo");
  const auto r = run_zimage(args + " --out " + png.string());
  ASSERT_EQ(r.status, 0) << r.err;
  const auto g = SafetensorsFile::open(testing::golden_path("pipeline_turbo"));
  expect_pixels_match(png.string(), g->get<int32_t>("image.uint8"), 0);
  fs::remove_all(dir);
}

TEST(CliGenerate, Float64RunMatchesDiffusersPixels) {
  const fs::path dir = testing::scratch_dir("gen_f64"), png = dir / "f64.png";
  const auto r = run_zimage(turbo_args() + " --dtype float64 --out " + png.string());
  ASSERT_EQ(r.status, 0) << r.err;
  const auto g = SafetensorsFile::open(testing::golden_path("pipeline_turbo"));
  expect_pixels_match(png.string(), g->get<int32_t>("image.uint8"), 0);
  fs::remove_all(dir);
}

// --weights stream reads the transformer block by block: bitwise the same latents
// as the weights in memory. --weights bf16 refuses weights that are not
// bf16-exact (the tiny pipeline's synthetic weights are not), naming a tensor.
TEST(CliGenerate, StreamedWeightsGiveTheSameLatents) {
  const fs::path dir = testing::scratch_dir("gen_stream");
  for (const char* how : {"memory", "stream"}) {
    const auto r = run_zimage(turbo_args() + " --weights " + how + " --save-latents " + (dir / how).string() +
                              ".safetensors --out " + (dir / how).string() + ".png");
    ASSERT_EQ(r.status, 0) << how << ": " << r.err;
  }
  const auto a = SafetensorsFile::open((dir / "memory.safetensors").string());
  const auto b = SafetensorsFile::open((dir / "stream.safetensors").string());
  const auto c = numerics::compare(a->get<float>("latents"), b->get<float>("latents"));
  std::printf("  final latents, stream vs memory: %s\n", numerics::describe_exact(c).c_str());
  EXPECT_TRUE(numerics::passes_exact(c));
  const auto r = run_zimage(turbo_args() + " --weights bf16 --out " + (dir / "bf16.png").string());
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("bf16"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "not one line: " << r.err;
  EXPECT_FALSE(fs::exists(dir / "bf16.png"));
  fs::remove_all(dir);
}

// A pipeline folder whose transformer holds a huge weight: --check-finite names
// the step and the first module whose output overflows, and writes nothing.
TEST(CliGenerate, CheckFiniteNamesStepAndModule) {
  const fs::path dir = testing::scratch_dir("gen_inf"), pipe = dir / "pipe", png = dir / "x.png";
  fs::copy(kPipeline, pipe, fs::copy_options::recursive);
  const fs::path wfile = pipe / "transformer" / "diffusion_pytorch_model.safetensors";
  {
    const auto f = SafetensorsFile::open(wfile.string());
    SafetensorsWriter w;
    for (const auto& [k, v] : f->metadata()) w.set_metadata(k, v);
    for (const auto& n : f->names()) {
      Tensor<double> t = f->get<double>(n);
      if (n == "layers.1.feed_forward.w2.weight") std::fill(t.data.begin(), t.data.end(), 3e38);  // near FLT_MAX
      w.add(n, t, f->view(n).dtype);
    }
    w.write((dir / "w.safetensors").string());
  }
  fs::rename(dir / "w.safetensors", wfile);
  const std::string args = "generate --model " + pipe.string() + " --prompt-embeds " +
                           testing::golden_path("pipeline_turbo") + " --height 64 --width 96 --out " + png.string();
  const auto r = run_zimage(args + " --check-finite");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("step 1 (transformer)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("'layers.1.feed_forward.w2'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(png));
  fs::remove_all(dir);
}

// ---------------------------------------------------------------- bad input

class CliGenerateBadInput : public ::testing::Test {
 protected:
  fs::path dir = testing::scratch_dir("gen_bad"), png = dir / "out.png";
  void TearDown() override { fs::remove_all(dir); }
  void expect_error(const std::string& args, const std::string& must_name) {
    const auto r = run_zimage(args + " --out " + png.string());
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "not one line: " << r.err;
    EXPECT_NE(r.err.find(must_name), std::string::npos) << "error does not name '" << must_name << "': " << r.err;
    EXPECT_FALSE(fs::exists(png)) << "image left behind";
    EXPECT_FALSE(fs::exists(png.string() + ".tmp")) << "temporary image left behind";
  }
  // An embeddings file with one tensor of the given shape.
  std::string embeds(const std::string& name, Shape shape) {
    SafetensorsWriter w;
    w.add(name, testing::randn<float>(shape, 5), DType::F32);
    const std::string p = (dir / (name + ".safetensors")).string();
    w.write(p);
    return p;
  }
};

TEST_F(CliGenerateBadInput, HeightNotMultipleOf16) { expect_error(turbo_args() + " --height 72", "--height 72"); }
TEST_F(CliGenerateBadInput, WidthNotMultipleOf16) { expect_error(turbo_args() + " --width 100", "--width 100"); }
TEST_F(CliGenerateBadInput, ZeroSteps) { expect_error(turbo_args() + " --steps 0", "--steps"); }
TEST_F(CliGenerateBadInput, StepsNotANumber) { expect_error(turbo_args() + " --steps eight", "--steps"); }
TEST_F(CliGenerateBadInput, SeedNotANumber) { expect_error(turbo_args() + " --seed -3", "--seed"); }
TEST_F(CliGenerateBadInput, GuidanceWithoutNegatives) {
  expect_error(turbo_args() + " --guidance 3", "--negative-prompt-embeds");
}
TEST_F(CliGenerateBadInput, EmbeddingWidthMismatch) {
  expect_error("generate --model " + kPipeline + " --prompt-embeds " + embeds("prompt_embeds.0", {7, 31}) +
                   " --height 64 --width 64",
               "prompt_embeds.0 is 31 wide");
}
TEST_F(CliGenerateBadInput, NegativeEmbeddingWidthMismatch) {
  expect_error(turbo_args() + " --guidance 2 --negative-prompt-embeds " + embeds("prompt_embeds.0", {4, 16}),
               "negative_prompt_embeds.0 is 16 wide");
}
TEST_F(CliGenerateBadInput, NoEmbeddingsInFile) {
  expect_error("generate --model " + kPipeline + " --prompt-embeds " + embeds("cap_feats.0", {7, 32}),
               "prompt_embeds.0");
}
TEST_F(CliGenerateBadInput, LatentsOfTheWrongShape) {
  SafetensorsWriter w;
  w.add("latents", testing::randn<float>({1, 16, 8, 8}, 3), DType::F32);
  w.write((dir / "lat.safetensors").string());
  expect_error(turbo_args() + " --latents " + (dir / "lat.safetensors").string(), "--latents has shape [1, 16, 8, 8]");
}
// A zimage built without the CUDA path (the CPU-only and sanitizer builds): one line naming
// --device cuda. With the CUDA path, the no-GPU refusal is CudaGenerateCli.WithoutGpuOneLineErrorExit2NoPng.
TEST_F(CliGenerateBadInput, DeviceCudaWithoutACudaBuild) {
#ifdef ZIMAGE_CLI_HAS_CUDA
  GTEST_SKIP() << "this zimage has the CUDA path: tests/cuda/test_cuda_generate.cpp checks its refusals";
#endif
  expect_error(turbo_args() + " --device cuda", "--device cuda: this zimage was built without the CUDA path");
}
TEST_F(CliGenerateBadInput, UnknownDevice) { expect_error(turbo_args() + " --device tpu", "--device must be cpu or cuda"); }
TEST_F(CliGenerateBadInput, AttentionWithoutCuda) { expect_error(turbo_args() + " --attention mma", "needs --device cuda"); }
TEST_F(CliGenerateBadInput, Bfloat16OnTheCpu) { expect_error(turbo_args() + " --dtype bfloat16", "--dtype"); }
TEST_F(CliGenerateBadInput, OutputDirectoryMissing) {
  const auto r = run_zimage(turbo_args() + " --out " + (dir / "nope" / "x.png").string());
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--out"), std::string::npos) << r.err;
}
TEST_F(CliGenerateBadInput, PipelineFolderMissingVae) {
  const fs::path pipe = dir / "pipe";
  fs::copy(kPipeline, pipe, fs::copy_options::recursive);
  fs::remove_all(pipe / "vae");
  expect_error("generate --model " + pipe.string() + " --prompt-embeds " + testing::golden_path("pipeline_turbo") +
                   " --height 64 --width 96",
               "lacks vae/");
}
TEST_F(CliGenerateBadInput, PipelineFolderMissingScheduler) {
  const fs::path pipe = dir / "pipe";
  fs::copy(kPipeline, pipe, fs::copy_options::recursive);
  fs::remove_all(pipe / "scheduler");
  expect_error("generate --model " + pipe.string() + " --prompt-embeds " + testing::golden_path("pipeline_turbo") +
                   " --height 64 --width 96",
               "lacks scheduler/");
}
TEST_F(CliGenerateBadInput, NotAPipelineFolder) {
  expect_error("generate --model " + std::string(ZIMAGE_GOLDEN_DIR) + "/models/tiny_single --prompt-embeds " +
                   testing::golden_path("pipeline_turbo"),
               "model_index.json");
}

}  // namespace
}  // namespace zimage

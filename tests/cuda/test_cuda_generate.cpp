// The pipeline with the transformer on the GPU (cuda/dit_model_cuda.h behind generate()'s
// GenerateHooks::open_dit, and `zimage generate --device cuda`), on the tiny diffusers pipeline
// goldens (golden/pipeline_{turbo,cfg}):
//   - fp32 (TF32 off): the free-running loop under T5 (docs/tolerances.md) with diffusers' fp32 run as
//     the peer, and the PNG pixels against diffusers' PIL image (the CPU's pixel gate);
//   - bf16 storage: T5 with diffusers' bf16-transformer run (golden/pipeline_*.bf16) as the peer,
//     the final image's PSNR against the fp64 image within 6 dB of the peer's;
//   - the CLI: without a GPU one line, exit 2, no PNG (this part runs everywhere), and every
//     option refused before any device work.
#include <array>
#include <filesystem>

#include "cuda_support.h"
#include "dit_model_cuda.h"
#include "pipeline/synthetic_pipeline.h"
#include "pipeline_cuda.h"
#include "io/png.h"
#include "io/safetensors.h"
#include "support/cli_runner.h"
#include "support/pipeline_golden.h"
#include "support/pixels.h"
#include "dit/model_folder.h"

namespace zimage {
namespace {

namespace fs = std::filesystem;
using testing::PipelineGolden;

std::unique_ptr<DitModel<float>> cuda_dit(const PipelineGolden& g, gpu::DType dt) {
  gpu::CudaOptions o;
  o.dtype = dt;
  return gpu::open_cuda_dit(g.pipe.transformer, o);
}

// The loop on the GPU model from the golden's own initial latents and embeddings.
std::vector<Tensor<double>> cuda_loop(const PipelineGolden& g, const DitModel<float>& dit) {
  DenoiseTrace<float> t;
  denoise(dit, g.schedule(), g.opt.cfg, g.get<float>("latents.init"), g.embeds<float>("prompt_embeds."),
          g.negatives<float>(), t.recorder());
  std::vector<Tensor<double>> out;
  for (const auto& x : t.latents) out.push_back(testing::widen(x));
  return out;
}

class CudaGenerate : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaGenerate, Fp32LoopT5AndPixelsMatchDiffusers) {
  ZIMAGE_REQUIRE_CUDA();
  const PipelineGolden g(GetParam());
  const testing::Fp64Loop truth = testing::fp64_loop(g);
  const auto dit = cuda_dit(g, gpu::DType::F32);
  std::vector<Tensor<double>> peer;
  for (int k = 0; k < g.opt.steps; ++k) peer.push_back(g.get<double>("latents.step." + std::to_string(k)));
  testing::expect_t5_drift("cuda fp32", cuda_loop(g, *dit), peer, truth, testing::drift_budget(g, truth, numerics::Tier::T3));

  // generate() end to end with the GPU transformer: seeded latents, CFG, decode, 8-bit images.
  GenerateHooks<float> hooks;
  hooks.open_dit = [](const ModelFolder& f, DitWeights) { return gpu::open_cuda_dit(f, gpu::CudaOptions{}); };
  const Generated<float> out = generate<float>(g.pipe, g.request(), hooks);
  ASSERT_FALSE(out.nonfinite) << *out.nonfinite;
  EXPECT_EQ(out.weights.rfind("cuda float32 (", 0), 0u) << out.weights;
  const Tensor<int32_t> want = g.get<int32_t>("image.uint8");
  ASSERT_EQ(int64_t(out.images.size()), want.shape[0]);
  for (size_t b = 0; b < out.images.size(); ++b)
    testing::expect_pixels_match("image " + std::to_string(b), out.images[b], want, int64_t(b));
}

TEST_P(CudaGenerate, Bf16LoopT5AgainstDiffusersBf16Pipeline) {
  ZIMAGE_REQUIRE_CUDA();
  const PipelineGolden g(GetParam());
  const auto peer16 = testing::open_pipeline_bf16_golden(g);
  const testing::Fp64Loop truth = testing::fp64_loop(g);
  const auto dit = cuda_dit(g, gpu::DType::BF16);
  std::vector<Tensor<double>> peer;
  for (int k = 0; k < g.opt.steps; ++k) peer.push_back(peer16->get<double>("latents.step." + std::to_string(k)));
  const std::vector<Tensor<double>> ours = cuda_loop(g, *dit);
  testing::expect_t5_drift("cuda bf16", ours, peer, truth, testing::drift_budget(g, truth, numerics::Tier::T4));
  const auto vd = load_vae_weights<double>(g.pipe.vae.config, *g.pipe.vae.params, VaePart::Decoder);
  const double p_ours = testing::psnr(decode_latents(g.pipe.vae.config, vd, ours.back()), truth.image);
  const double p_peer = testing::psnr(peer16->get<double>("image.decoded"), truth.image);
  std::printf("  image PSNR vs fp64: cuda bf16 %.1f dB, diffusers bf16 %.1f dB (gate: ours >= peer - 6 dB)\n", p_ours,
              p_peer);
  EXPECT_GE(p_ours, p_peer - 6.0);
}

INSTANTIATE_TEST_SUITE_P(Goldens, CudaGenerate, ::testing::ValuesIn(testing::pipeline_cases()),
                         [](const auto& info) { return testing::test_name(info.param); });

// ---------------------------------------------------------------- the resident pipeline

// ResidentCudaPipeline (what BM_CudaImage_bf16 times) against the cuda_generate_hooks flow (what
// `zimage generate --device cuda` runs and the tests above gate against diffusers): on the tiny
// configs in memory, a prompt and a negative through the GPU text encoder, CFG, the GPU VAE; the
// latents and the 8-bit images bit for bit, for a second image too (the resident models keep no
// state between images that changes them), in fp32 and bf16.
TEST(ResidentCudaPipeline, BitwiseTheLeanFlowOnTheTinyConfigs) {
  ZIMAGE_REQUIRE_CUDA();
  const std::string g = ZIMAGE_GOLDEN_DIR;
  const PipelineFolder pipe = synthetic_pipeline(SyntheticPipelineSpec::from_files(
      g + "/models/pipeline_tiny/transformer/config.json", g + "/text_encoder/tiny_te/config.json",
      g + "/models/pipeline_tiny/vae/config.json", g + "/text_encoder/tokenizer", 3));
  GenerateRequest req;
  req.opt.height = 64;
  req.opt.width = 96;
  req.opt.steps = 3;
  req.opt.cfg.guidance_scale = 3;
  req.seed = 7;
  req.prompts = {"a red fox in the snow"};
  req.negative_prompts = {"blurry"};
  for (gpu::DType dt : {gpu::DType::F32, gpu::DType::BF16}) {
    gpu::CudaPipelineOptions o;
    o.dtype = dt;
    const Generated<float> lean = generate<float>(pipe, req, gpu::cuda_generate_hooks(pipe.transformer.config, o));
    const gpu::ResidentCudaPipeline resident(pipe, o);
    for (int image = 0; image < 2; ++image) {
      const Generated<float> got = resident.generate(req);
      const std::string what = std::string(gpu::dtype_name(dt)) + " image " + std::to_string(image);
      EXPECT_TRUE(got.latents.data == lean.latents.data) << what;
      ASSERT_EQ(got.images.size(), lean.images.size()) << what;
      for (size_t i = 0; i < got.images.size(); ++i) EXPECT_TRUE(got.images[i].pixels == lean.images[i].pixels) << what;
    }
  }
}

// The hooks refuse before any model is read: float16 with its one line, and, without a GPU, the
// missing device.
TEST(CudaGenerateHooks, Float16AndAMissingDeviceAreRefused) {
  const ZImageConfig cfg = ZImageConfig::from_file(std::string(ZIMAGE_GOLDEN_DIR) + "/models/pipeline_tiny/transformer/config.json");
  gpu::CudaPipelineOptions o;
  o.dtype = gpu::DType::F16;
  EXPECT_THROW((void)gpu::cuda_generate_hooks(cfg, o), Error);
  std::string why;
  if (gpu::device_available(&why)) return;
  o.dtype = gpu::DType::BF16;
  try {
    (void)gpu::cuda_generate_hooks(cfg, o);
    ADD_FAILURE() << "no device, yet the hooks were made";
  } catch (const Error& e) {
    std::printf("  %s\n", e.what());
    EXPECT_NE(std::string(e.what()).find("--device cuda: no CUDA device"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------- the CLI

class CudaGenerateCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = testing::scratch_dir("cuda_generate_cli");
    out = dir / "out.png";
    fs::remove(out);
  }
  void TearDown() override { fs::remove_all(dir); }
  std::string generate(const std::string& extra) const {
    return "generate --model " + std::string(ZIMAGE_GOLDEN_DIR) + "/models/pipeline_tiny --prompt-embeds " +
           testing::golden_path("pipeline_turbo") + " --height 64 --width 96 --seed 42 --out " + out.string() + " " +
           extra;
  }
  void expect_refused(const std::string& extra, const std::string& needle) {
    const testing::CliResult r = testing::run_zimage(generate(extra));
    std::printf("  zimage generate ... %s\n", extra.c_str());
    testing::expect_refusal(r, needle);
    EXPECT_FALSE(fs::exists(out)) << "a PNG was written";
  }
  fs::path dir, out;
};

TEST_F(CudaGenerateCli, WithoutGpuOneLineErrorExit2NoPng) {
  std::string why;
  if (gpu::device_available(&why)) GTEST_SKIP() << "a CUDA device is present: the no-GPU path is not reachable here";
  expect_refused("--device cuda", "--device cuda: no CUDA device");
  expect_refused("--device cuda --dtype bfloat16 --attention mma", "--device cuda: no CUDA device");
}

TEST_F(CudaGenerateCli, BadOptionsRefusedBeforeAnyDeviceWork) {  // with or without a GPU
  expect_refused("--device cuda --dtype float16", "--dtype must be float32 or bfloat16 with --device cuda");
  expect_refused("--device cuda --dtype float64", "--dtype must be float32 or bfloat16 with --device cuda");
  expect_refused("--device cuda --weights memory", "--weights");
  expect_refused("--device cuda --attention flash3", "--attention");
  expect_refused("--attention mma", "--attention chooses the CUDA attention kernel");
  expect_refused("--device tpu", "--device must be cpu or cuda");
  expect_refused("--dtype bfloat16", "--dtype must be float32 or float64 with --device cpu");
}

// The CUDA path's environment variables are read before any file or device (check_cuda_environment):
// a bad value is one line naming the variable, even on a machine without a GPU, where before the
// VAE's was read only after the whole denoising loop.
TEST_F(CudaGenerateCli, BadEnvironmentVariableRefusedBeforeAnyDeviceWork) {  // with or without a GPU
  const std::vector<std::array<std::string, 3>> cases = {
      {"ZIMAGE_ATTENTION", "flash3", "ZIMAGE_ATTENTION must be auto, v1_simt, mma, mma_wide or cudnn, not 'flash3'"},
      {"ZIMAGE_GEMM_ALGO", "fastest", "ZIMAGE_GEMM_ALGO must be auto, heuristic or timed, not 'fastest'"},
      {"ZIMAGE_VAE_CONV", "winograd", "ZIMAGE_VAE_CONV must be auto, im2col or cudnn, not 'winograd'"},
      {"ZIMAGE_CUDA_MEMORY_LIMIT", "24GB", "ZIMAGE_CUDA_MEMORY_LIMIT '24GB' must be a whole number of bytes"}};
  for (const auto& [var, value, needle] : cases) {
    ASSERT_EQ(::setenv(var.c_str(), value.c_str(), 1), 0);
    expect_refused("--device cuda --dtype bfloat16", needle);
    ::unsetenv(var.c_str());
  }
}

// Out of GPU memory (ZIMAGE_CUDA_MEMORY_LIMIT below the transformer's size): one line naming the
// component and the size it asked for, exit 2, no PNG.
TEST_F(CudaGenerateCli, OutOfMemoryIsOneLineNamingTheComponentNoPng) {
  ZIMAGE_REQUIRE_CUDA();
  ASSERT_EQ(setenv("ZIMAGE_CUDA_MEMORY_LIMIT", "64K", 1), 0);
  expect_refused("--device cuda", "out of GPU memory: the transformer (upload) asked for ");
  unsetenv("ZIMAGE_CUDA_MEMORY_LIMIT");
}

TEST_F(CudaGenerateCli, Fp32PngMatchesDiffusersPixels) {
  ZIMAGE_REQUIRE_CUDA();
  const fs::path latents = dir / "latents.safetensors";
  const testing::CliResult r = testing::run_zimage(generate("--device cuda --steps 8 --save-latents " + latents.string()));
  ASSERT_EQ(r.status, 0) << r.err;
  std::printf("%s", r.err.c_str());
  ASSERT_TRUE(fs::exists(out));
  const PipelineGolden g("pipeline_turbo");
  testing::expect_pixels_match("zimage generate --device cuda", read_png(out.string()), g.get<int32_t>("image.uint8"), 0);
  // The latents' producer names what ran on the GPU: with --prompt-embeds no text encoder did.
  const std::string producer = SafetensorsFile::open(latents.string())->metadata().at("producer");
  std::printf("  producer: %s\n", producer.c_str());
  EXPECT_NE(producer.find("(transformer and VAE float32 on "), std::string::npos) << producer;
  EXPECT_EQ(producer.find("text encoder"), std::string::npos) << producer;
}

}  // namespace
}  // namespace zimage

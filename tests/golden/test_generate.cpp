// The library's generate() (pipeline/generate.h) on the tiny diffusers
// pipeline folder, without the CLI: images against diffusers' PIL images, the
// step callback, the DiT hook the CUDA model plugs into, and every input
// check before any model is loaded. synthetic_pipeline: a pipeline made in
// memory (the GPU benchmark's), its weights and its refusals.
#include <cmath>
#include <filesystem>

#include "io/safetensors.h"
#include "pipeline/generate.h"
#include "pipeline/pipeline_files.h"
#include "pipeline/synthetic_pipeline.h"
#include "dit/synthetic_checkpoint.h"
#include "support/goldens.h"
#include "support/cli_runner.h"
#include "support/pixels.h"
#include "support/test_support.h"
#include "dit/model_folder.h"

namespace zimage {
namespace {

const std::string kPipeline = std::string(ZIMAGE_GOLDEN_DIR) + "/models/pipeline_tiny";

// golden/pipeline_cfg.safetensors: 48x64, 6 steps, 2 prompts x 2 images, CFG (seed 7).
GenerateRequest cfg_request() {
  const std::string g = testing::golden_path("pipeline_cfg");
  GenerateRequest r;
  r.opt.height = 48;
  r.opt.width = 64;
  r.opt.steps = 6;
  r.opt.num_images_per_prompt = 2;
  r.opt.cfg.guidance_scale = 4;
  r.opt.cfg.cfg_normalization = 1.2;
  r.opt.cfg.cfg_truncation = 0.3;
  r.seed = 7;
  r.prompt_embeds = read_prompt_embeds(g, false);
  r.negative_prompt_embeds = read_prompt_embeds(g, true);
  return r;
}

// golden/pipeline_turbo.safetensors: 64x96, 8 steps, guidance 0, seed 42.
GenerateRequest turbo_request() {
  GenerateRequest r;
  r.opt.height = 64;
  r.opt.width = 96;
  r.opt.steps = 8;
  r.seed = 42;
  r.prompt_embeds = read_prompt_embeds(testing::golden_path("pipeline_turbo"), false);
  return r;
}

// A DitModel around the CPU one that counts forwards and batch items: the hook
// a CUDA model takes.
struct CountingDit final : DitModel<float> {
  std::unique_ptr<DitModel<float>> inner;
  mutable int forwards = 0, items = 0;
  const ZImageConfig& config() const override { return inner->config(); }
  std::string weights() const override { return "counting " + inner->weights(); }
  std::vector<Tensor<float>> forward(const DitInputs<float>& in, Activations<float>* a) const override {
    ++forwards;
    items += int(in.x.size());
    return inner->forward(in, a);
  }
};

TEST(Generate, CfgFourImagesMatchDiffusersPixelsThroughTheDitHook) {
  const PipelineFolder pipe = open_pipeline_folder(kPipeline);
  CountingDit* seen = nullptr;
  GenerateHooks<float> hooks;
  hooks.open_dit = [&](const ModelFolder& f, DitWeights how) -> std::unique_ptr<DitModel<float>> {
    auto m = std::make_unique<CountingDit>();
    m->inner = open_dit_model<float>(f, how);
    seen = m.get();
    return m;
  };
  int forwards = 0, items = 0;
  hooks.on_step = [&](const StepEvent<float>&) {
    forwards = seen->forwards, items = seen->items;
    return true;
  };
  const Generated<float> g = generate<float>(pipe, cfg_request(), hooks);
  ASSERT_FALSE(g.nonfinite);
  EXPECT_EQ(g.weights, "counting memory");
  // One batched forward a step; 4 images, twice (positives, negatives) while CFG is on. cfg_truncation 0.3
  // turns CFG off for the later steps, so items is between 6 * 4 and 6 * 8.
  EXPECT_EQ(forwards, 6);
  EXPECT_GT(items, 6 * 4);
  EXPECT_LT(items, 6 * 8);
  const auto golden = SafetensorsFile::open(testing::golden_path("pipeline_cfg"));
  ASSERT_EQ(g.images.size(), 4u);
  for (int b = 0; b < 4; ++b)
    testing::expect_pixels_match("image " + std::to_string(b), g.images[size_t(b)], golden->get<int32_t>("image.uint8"), b);
}

TEST(Generate, StepCallbackSeesEveryStepAndStopsTheLoop) {
  const PipelineFolder pipe = open_pipeline_folder(kPipeline);
  DenoiseTrace<float> trace;
  GenerateHooks<float> hooks;
  std::vector<int> steps;
  hooks.on_step = [&](const StepEvent<float>& e) {
    steps.push_back(e.step);
    EXPECT_EQ(e.steps, 8);
    return trace.recorder()(e);
  };
  const Generated<float> full = generate<float>(pipe, turbo_request(), hooks);
  EXPECT_EQ(steps, (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(full.images.size(), 1u);
  // The seeded latents are torch's, bit for bit.
  const auto golden = SafetensorsFile::open(testing::golden_path("pipeline_turbo"));
  const auto c = numerics::compare(full.init_latents, golden->get<float>("latents.init"));
  std::printf("  latents.init: %s\n", numerics::describe_exact(c).c_str());
  EXPECT_TRUE(numerics::passes_exact(c));
  testing::expect_pixels_match("turbo", full.images[0], golden->get<int32_t>("image.uint8"), 0);

  hooks.on_step = [](const StepEvent<float>& e) { return e.step < 3; };
  const Generated<float> stopped = generate<float>(pipe, turbo_request(), hooks);
  EXPECT_TRUE(stopped.images.empty()) << "a stopped loop decodes nothing";
  const auto same = numerics::compare(stopped.latents, trace.latents[2]);
  std::printf("  stopped after step 3 vs step 3 of the full run: %s\n", numerics::describe_exact(same).c_str());
  EXPECT_TRUE(numerics::passes_exact(same));
}

// Each bad request is a one-line zimage::Error naming the argument, thrown
// before the transformer is opened (and before a text encoder would load).
TEST(Generate, BadRequestsAreRefusedBeforeAnyModelLoads) {
  const PipelineFolder pipe = open_pipeline_folder(kPipeline);
  int opened = 0;
  GenerateHooks<float> hooks;
  hooks.open_dit = [&](const ModelFolder& f, DitWeights how) {
    ++opened;
    return open_dit_model<float>(f, how);
  };
  struct Case {
    std::string name, expect;
    std::function<void(GenerateRequest&)> edit;
  };
  const std::vector<Case> cases = {
      {"steps_0", "--steps", [](GenerateRequest& r) { r.opt.steps = 0; }},
      {"height_50", "--height", [](GenerateRequest& r) { r.opt.height = 50; }},
      {"images_0", "--num-images-per-prompt", [](GenerateRequest& r) { r.opt.num_images_per_prompt = 0; }},
      {"shift_negative", "--shift", [](GenerateRequest& r) { r.opt.shift = -1.0; }},
      {"latents_wrong_shape", "--latents", [](GenerateRequest& r) { r.latents = Tensor<float>({1, 16, 4, 4}); }},
      {"cfg_without_negatives", "--negative-prompt-embeds", [](GenerateRequest& r) { r.opt.cfg.guidance_scale = 3; }},
      {"prompt_and_embeds", "exclude each other", [](GenerateRequest& r) { r.prompts = {"a cat"}; }},
      {"no_prompt", "no prompt", [](GenerateRequest& r) { r.prompt_embeds.clear(); }},
      {"negative_without_prompt", "--negative-prompt needs --prompt", [](GenerateRequest& r) { r.negative_prompts = {"x"}; }},
      {"embeds_nan", "prompt_embeds.0", [](GenerateRequest& r) { r.prompt_embeds[0][3] = std::nanf(""); }},
      {"embeds_too_wide", "cap_feat_dim", [](GenerateRequest& r) { r.prompt_embeds[0] = Tensor<float>({5, 1000}); }},
  };
  for (const Case& c : cases) {
    GenerateRequest r = turbo_request();
    c.edit(r);
    std::string what;
    try {
      generate<float>(pipe, r, hooks);
    } catch (const Error& e) {
      what = e.what();
    }
    std::printf("  %s: %s\n", c.name.c_str(), what.c_str());
    EXPECT_NE(what.find(c.expect), std::string::npos) << c.name << ": '" << what << "'";
    EXPECT_EQ(what.find('\n'), std::string::npos) << c.name;
  }
  EXPECT_EQ(opened, 0) << "a bad request opened the transformer";
}

// ---- synthetic_pipeline ---------------------------------------------------------------------

const std::string kTokenizer = std::string(ZIMAGE_GOLDEN_DIR) + "/text_encoder/tokenizer";

// The tiny pipeline's transformer and VAE configs with the tiny Qwen3 (hidden 32 = the tiny DiT's
// cap_feat_dim).
SyntheticPipelineSpec tiny_spec() {
  return SyntheticPipelineSpec::from_files(kPipeline + "/transformer/config.json",
                                           std::string(ZIMAGE_GOLDEN_DIR) + "/text_encoder/tiny_te/config.json",
                                           kPipeline + "/vae/config.json", kTokenizer, 11);
}

// Prompt to images in memory, twice: the same latents bit for bit, finite 8-bit images of the
// asked size; the transformer's weights are the ones write_synthetic_checkpoint writes to disk.
TEST(SyntheticPipeline, TinyConfigsGenerateRepeatablyWithTheCheckpointsWeights) {
  const PipelineFolder pipe = synthetic_pipeline(tiny_spec());
  GenerateRequest req;
  req.opt.height = 32;
  req.opt.width = 48;
  req.opt.steps = 2;
  req.prompts = {"a red fox"};
  const Generated<float> a = generate<float>(pipe, req), b = generate<float>(pipe, req);
  ASSERT_EQ(a.images.size(), 1u);
  EXPECT_EQ(a.images[0].height, 32);
  EXPECT_EQ(a.images[0].width, 48);
  EXPECT_TRUE(a.latents.data == b.latents.data);
  for (float v : a.latents.data) ASSERT_TRUE(std::isfinite(v));

  const auto dir = testing::scratch_dir("synthetic_pipeline");
  SyntheticCheckpointOptions o;
  o.seed = 11;
  write_synthetic_checkpoint(pipe.transformer.config, dir.string(), o);
  const ModelFolder disk = open_model_folder(dir.string());
  int n = 0;
  for (const auto& [name, shape] : disk.params->shapes()) {
    ASSERT_EQ(pipe.transformer.params->shapes().at(name), shape) << name;
    ASSERT_TRUE(pipe.transformer.params->load_float(name).data == disk.params->load_float(name).data) << name;
    ++n;
  }
  EXPECT_EQ(size_t(n), pipe.transformer.params->shapes().size());
  std::printf("  %d transformer tensors equal the written checkpoint's\n", n);
  std::filesystem::remove_all(dir);
}

// At the real configs nothing is generated until a model loads it: the pipeline is made at once.
// Its transformer has the parameter count diffusers' ZImageTransformer2DModel reported at the
// Turbo config (tools/gpu_peers/peer_diffusers.py on the 2026-12-04 H200: "# params 6154908736").
TEST(SyntheticPipeline, RealConfigsMadeWithoutGeneratingWeights) {
  SyntheticPipelineSpec s;
  s.tokenizer_dir = kTokenizer;
  const PipelineFolder pipe = synthetic_pipeline(s);
  int64_t params = 0;
  for (const auto& [name, shape] : pipe.transformer.params->shapes()) params += shape_numel(shape);
  EXPECT_EQ(params, 6154908736);
  EXPECT_EQ(pipe.scheduler.shift, 3.0);
  EXPECT_EQ(pipe.prompt_encoder->text_encoder().config().num_hidden_layers, 36);
  EXPECT_EQ(pipe.vae.config.latent_channels, 16);
}

TEST(SyntheticPipeline, MismatchedConfigsAndAMissingTokenizerAreRefused) {
  auto expect_error = [](const SyntheticPipelineSpec& s, const std::string& want) {
    try {
      (void)synthetic_pipeline(s);
      ADD_FAILURE() << "accepted; expected: " << want;
    } catch (const Error& e) {
      const std::string m = e.what();
      std::printf("  %s\n", m.c_str());
      EXPECT_NE(m.find(want), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
  };
  SyntheticPipelineSpec s = tiny_spec();
  s.text_encoder.hidden_size = 64;
  expect_error(s, "cap_feat_dim 32 is not the text encoder's hidden_size 64");
  s = tiny_spec();
  s.vae.latent_channels = 4;
  expect_error(s, "is not the VAE's latent_channels 4");
  s = tiny_spec();
  s.tokenizer_dir = kTokenizer + "/absent";
  expect_error(s, "absent: no tokenizer.json");
}

}  // namespace
}  // namespace zimage

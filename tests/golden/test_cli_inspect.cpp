// zimage inspect and zimage write-synthetic, end to end through the CLI:
// the Turbo parameter count from the real config alone, complete and broken
// folders, the ComfyUI single file, bf16-exactness (both ways), and the
// synthetic writer's fp32 and bf16 variants giving bitwise equal forwards.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "dit/config.h"
#include "io/param_source.h"
#include "support/cli_runner.h"

namespace zimage {
namespace {

namespace fs = std::filesystem;

using CliRun = testing::CliResult;

// zimage ARGS, echoed with its status and output.
CliRun zimage(const std::string& args) {
  const CliRun r = testing::run_zimage(args);
  std::printf("$ zimage %s -> %d\n%s%s", args.c_str(), r.status, r.out.c_str(), r.err.c_str());
  return r;
}

bool has(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

void write_config(const fs::path& dir, const ZImageConfig& cfg) {
  fs::create_directories(dir);
  auto j = cfg.to_json();
  j["_class_name"] = "ZImageTransformer2DModel";
  std::ofstream(dir / "config.json") << j.dump(2);
}

TEST(CliInspect, TurboParameterCountFromTheConfigAlone) {
  const fs::path d = testing::scratch_dir("inspect_turbo");
  write_config(d, ZImageConfig{});  // the defaults are Z-Image-Turbo's config.json
  const CliRun r = zimage("inspect " + d.string());
  EXPECT_TRUE(has(r.out, "parameters implied by the config: 6,154,908,736 in 521 tensors")) << r.out;
  EXPECT_EQ(r.status, 1);  // no weights: a problem, named
  EXPECT_TRUE(has(r.out, "PROBLEM: weights:")) << r.out;
}

TEST(CliInspect, PipelineFolderComplete) {
  const CliRun r = zimage("inspect " + std::string(ZIMAGE_GOLDEN_DIR) + "/models/pipeline_tiny");
  EXPECT_EQ(r.status, 0);
  for (const char* s : {"component transformer: ZImageTransformer2DModel", "component vae: AutoencoderKL",
                        "component scheduler: FlowMatchEulerDiscreteScheduler", "parameters implied by the config: 706,144",
                        "dtypes: F32 x 101", "complete: every parameter", "inspect: no problems found"})
    EXPECT_TRUE(has(r.out, s)) << s;
  // Synthetic fp32 goldens: not bf16-exact, and inspect says so (the check is not vacuous).
  EXPECT_TRUE(has(r.out, "bf16-exact: 0 of 101 tensors")) << r.out;
}

// A whole pipeline folder as downloaded: text_encoder/ and tokenizer/ are
// described (weights, dtypes, files) though the reference does not run them;
// a component model_index.json lists but the folder lacks is a problem.
TEST(CliInspect, PipelineWithTextEncoderAndTokenizer) {
  const fs::path d = testing::scratch_dir("inspect_pipeline");
  fs::remove_all(d);
  fs::copy(std::string(ZIMAGE_GOLDEN_DIR) + "/models/pipeline_tiny", d, fs::copy_options::recursive);
  fs::create_directories(d / "text_encoder");
  fs::create_directories(d / "tokenizer");
  std::ofstream(d / "text_encoder" / "config.json") << R"({"architectures": ["Qwen3Model"], "hidden_size": 8})";
  SafetensorsWriter w;
  Tensor<float> emb({10, 8});
  for (int64_t i = 0; i < emb.numel(); ++i) emb[i] = float(i % 7);  // small integers: bf16-exact
  w.add("embed_tokens.weight", emb, DType::BF16);
  w.write((d / "text_encoder" / "model.safetensors").string());
  std::ofstream(d / "tokenizer" / "tokenizer.json") << "{}";
  std::ifstream in(d / "model_index.json");
  auto index = nlohmann::json::parse(in);
  index["text_encoder"] = {"transformers", "Qwen3Model"};
  index["tokenizer"] = {"transformers", "Qwen2Tokenizer"};
  std::ofstream(d / "model_index.json") << index.dump(2);
  CliRun r = zimage("inspect " + d.string());
  EXPECT_EQ(r.status, 0) << r.out;
  for (const char* s : {"component text_encoder: Qwen3Model", "tensors: 1, values: 80, bytes: 160", "dtypes: BF16 x 1",
                        "component tokenizer: Qwen2Tokenizer", "files: tokenizer.json"})
    EXPECT_TRUE(has(r.out, s)) << s;
  fs::remove_all(d / "tokenizer");
  r = zimage("inspect " + d.string());
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(has(r.out, "PROBLEM: model_index.json lists tokenizer but")) << r.out;
}

TEST(CliInspect, MissingAndUnexpectedTensorsAreListed) {
  const fs::path d = testing::scratch_dir("inspect_broken");
  const std::string src = std::string(ZIMAGE_GOLDEN_DIR) + "/models/tiny_single";
  fs::copy_file(src + "/config.json", d / "config.json", fs::copy_options::overwrite_existing);
  const auto f = SafetensorsFile::open(src + "/diffusion_pytorch_model.safetensors");
  SafetensorsWriter w;
  for (const auto& n : f->names())
    if (n != "layers.1.feed_forward.w3.weight") w.add(n, f->get<float>(n));
  w.add("layers.1.attention.qkv.weight", Tensor<float>({3, 2}, 0.5f));
  w.write((d / "diffusion_pytorch_model.safetensors").string());
  const CliRun r = zimage("inspect " + d.string());
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(has(r.out, "PROBLEM: 1 missing tensor(s)")) << r.out;
  EXPECT_TRUE(has(r.out, "layers.1.feed_forward.w3.weight [170, 64]")) << r.out;
  EXPECT_TRUE(has(r.out, "PROBLEM: 1 unexpected tensor(s)")) << r.out;
  EXPECT_TRUE(has(r.out, "layers.1.attention.qkv.weight [3, 2]")) << r.out;
}

TEST(CliInspect, ComfySingleFile) {
  const CliRun r = zimage("inspect " + std::string(ZIMAGE_GOLDEN_DIR) + "/comfy/comfy_tiny.safetensors");
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(has(r.out, "ComfyUI single-file Z-Image transformer")) << r.out;
  EXPECT_TRUE(has(r.out, "dim 32, n_heads 2, n_layers 2, n_refiner_layers 1")) << r.out;
  EXPECT_TRUE(has(r.out, "complete: every parameter")) << r.out;
}

TEST(CliInspect, BadPathIsOneLine) {
  const CliRun r = zimage("inspect /nonexistent/zimage_dir");
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err, "zimage: error: /nonexistent/zimage_dir: does not exist\n");
}

// write-synthetic at tiny size: fp32 and bf16 variants, both complete and
// bf16-exact, and the forwards from them bitwise equal.
TEST(CliWriteSynthetic, Fp32AndBf16VariantsAgree) {
  const fs::path d = testing::scratch_dir("write_synth");
  const std::string cfg = std::string(ZIMAGE_GOLDEN_DIR) + "/models/tiny_single/config.json";
  const std::string in = (d / "in.safetensors").string();
  ASSERT_EQ(zimage("write-synthetic --config " + cfg + " --out " + (d / "f32").string() +
                   " --shard-gb 0.001 --inputs " + in + " --latent 6 --caption 9").status, 0);
  ASSERT_EQ(zimage("write-synthetic --config " + cfg + " --out " + (d / "bf16").string() + " --dtype bfloat16").status, 0);
  // Sharded like save_pretrained: an index and several shards (1 MiB limit here).
  EXPECT_TRUE(fs::exists(d / "f32" / "diffusion_pytorch_model.safetensors.index.json"));
  int shards = 0;
  for (const auto& e : fs::directory_iterator(d / "f32")) shards += e.path().extension() == ".safetensors";
  EXPECT_GE(shards, 2);
  const CliRun a = zimage("inspect " + (d / "f32").string()), b = zimage("inspect " + (d / "bf16").string());
  EXPECT_EQ(a.status, 0);
  EXPECT_EQ(b.status, 0);
  EXPECT_TRUE(has(a.out, "dtypes: F32 x 101")) << a.out;
  EXPECT_TRUE(has(b.out, "dtypes: BF16 x 101")) << b.out;
  EXPECT_TRUE(has(a.out, "bf16-exact: all 101 tensors")) << a.out;
  EXPECT_TRUE(has(a.out, "values: 706,144, bytes: 2,824,576")) << a.out;
  EXPECT_TRUE(has(b.out, "values: 706,144, bytes: 1,412,288")) << b.out;
  const std::string oa = (d / "a.safetensors").string(), ob = (d / "b.safetensors").string();
  ASSERT_EQ(zimage("dit --model " + (d / "f32").string() + " --inputs " + in + " --output " + oa).status, 0);
  ASSERT_EQ(zimage("dit --model " + (d / "bf16").string() + " --inputs " + in + " --output " + ob).status, 0);
  const auto sa = SafetensorsFile::open(oa)->get<float>("sample.0"), sb = SafetensorsFile::open(ob)->get<float>("sample.0");
  EXPECT_EQ(sa.shape, (Shape{16, 1, 6, 6}));
  EXPECT_EQ(sa.data, sb.data);
  double ss = 0;
  for (float v : sa.data) ss += double(v) * v;
  EXPECT_GT(ss, 0.0);
}

}  // namespace
}  // namespace zimage

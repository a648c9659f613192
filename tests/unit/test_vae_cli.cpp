// `zimage vae` end to end without data files (synthetic weights written to a
// temporary folder): decode / encode equal the library bit for bit, and bad
// input is one line on stderr naming the file, tensor, key or argument, exit
// status 2, with no output file left behind.
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "io/safetensors.h"
#include "support/cli_runner.h"
#include "support/test_support.h"
#include "vae/autoencoder_kl.h"
#include "vae/synthetic_vae.h"

namespace zimage {
namespace {

namespace fs = std::filesystem;

using RunResult = testing::CliResult;
using testing::run_zimage;

VaeConfig tiny() {
  VaeConfig c = flux_vae_config();
  c.block_out_channels = {16, 32};
  c.down_block_types.assign(2, "DownEncoderBlock2D");
  c.up_block_types.assign(2, "UpDecoderBlock2D");
  c.layers_per_block = 1;
  c.norm_num_groups = 8;
  c.sample_size = {16};
  c.use_post_quant_conv = true;
  return c;
}

class VaeCli : public ::testing::Test {
 protected:
  fs::path dir = fs::path(::testing::TempDir()) / ("zimage_vae_cli_" + std::to_string(::getpid()));
  fs::path vae = dir / "vae", config = dir / "vae" / "config.json", latents = dir / "z.safetensors",
           image = dir / "x.safetensors", out = dir / "out.safetensors";
  VaeConfig cfg = tiny();

  void SetUp() override {
    fs::remove_all(dir);
    fs::create_directories(vae);
    std::ofstream(config) << cfg.to_json().dump(2);
    write_vae([](const std::string&) { return true; });
    write_tensor(latents, "latents", testing::randn<float>({2, 16, 10, 7}, testing::test_seed()));
    write_tensor(image, "image", testing::randn<float>({1, 3, 16, 12}, testing::test_seed() + 1, 0.5));
  }
  void TearDown() override { fs::remove_all(dir); }

  template <class Keep>
  void write_vae(Keep keep) {
    const auto src = synthetic_param_source(vae_synthetic_spec(cfg, 5));
    SafetensorsWriter w;
    for (const auto& [name, shape] : src->shapes())
      if (keep(name)) w.add(name, src->load(name));
    w.write((vae / "diffusion_pytorch_model.safetensors").string());
  }
  static void write_tensor(const fs::path& p, const std::string& name, const Tensor<float>& t, DType as = DType::F32) {
    SafetensorsWriter w;
    w.add(name, t, as);
    w.write(p.string());
  }
  VaeWeights<float> weights() const {
    return load_vae_weights<float>(cfg, *synthetic_param_source(vae_synthetic_spec(cfg, 5)));
  }
  Tensor<float> z() const { return SafetensorsFile::open(latents.string())->get<float>("latents"); }
  Tensor<float> output(const std::string& name) const { return SafetensorsFile::open(out.string())->get<float>(name); }

  // Exit status 2, one line naming `needle`, and no output file.
  void expect_error(const std::string& args, const std::string& needle) {
    fs::remove(out);
    const RunResult r = run_zimage(args);
    std::printf("  zimage %s\n    -> %d: %s", args.substr(0, 60).c_str(), r.status, r.err.c_str());
    EXPECT_EQ(r.status, 2) << args;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr '" << r.err << "' lacks '" << needle << "'";
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("zimage: error: ", 0), 0u) << r.err;
    EXPECT_FALSE(fs::exists(out)) << args;
  }
  std::string decode_args() const { return "vae decode --vae " + vae.string() + " --latents " + latents.string() + " --out " + out.string(); }
};

TEST_F(VaeCli, DecodeEqualsTheLibrary) {
  const RunResult r = run_zimage(decode_args());
  std::printf("  %s", r.out.c_str());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("peak RSS"), std::string::npos);
  testing::expect_exact("zimage vae decode vs vae_decode<float>", numerics::compare(output("image"), vae_decode(cfg, weights(), z())));
}

TEST_F(VaeCli, DecodeUnscaleAndTiledEqualTheLibrary) {
  ASSERT_EQ(run_zimage(decode_args() + " --unscale").status, 0);
  testing::expect_exact("--unscale", numerics::compare(output("image"), vae_decode(cfg, weights(), unscale_latents(cfg, z()))));
  ASSERT_EQ(run_zimage(decode_args() + " --tiled").status, 0);  // 10 x 7 latents > one 8-latent tile
  testing::expect_exact("--tiled", numerics::compare(output("image"), vae_tiled_decode(cfg, weights(), z())));
  ASSERT_EQ(run_zimage(decode_args() + " --tiled --tile-latent 4 --tile-sample 8 --tile-overlap 0.5").status, 0);
  testing::expect_exact("--tiled 4/8/0.5", numerics::compare(output("image"), vae_tiled_decode(cfg, weights(), z(), {4, 8, 0.5})));
}

TEST_F(VaeCli, EncodeEqualsTheLibrary) {
  const RunResult r = run_zimage("vae encode --vae " + vae.string() + " --image " + image.string() + " --out " + out.string());
  ASSERT_EQ(r.status, 0) << r.err;
  const auto [mean, logvar] = vae_encode(cfg, weights(), SafetensorsFile::open(image.string())->get<float>("image"));
  testing::expect_exact("mean", numerics::compare(output("mean"), mean));
  testing::expect_exact("logvar", numerics::compare(output("logvar"), logvar));
}

TEST_F(VaeCli, SyntheticDecodeRuns) {
  const RunResult r = run_zimage("vae decode --synthetic --config " + config.string() + " --seed 5 --latents " + latents.string() +
                              " --out " + out.string());
  ASSERT_EQ(r.status, 0) << r.err;
  testing::expect_exact("--synthetic --seed 5 equals the folder written from seed 5",
                        numerics::compare(output("image"), vae_decode(cfg, weights(), z())));
}

TEST_F(VaeCli, BadInputIsOneLine) {
  const std::string v = "vae decode --vae " + vae.string() + " --out " + out.string() + " --latents ";
  write_tensor(dir / "c4.safetensors", "latents", Tensor<float>({1, 4, 8, 8}, 0.5f));
  expect_error(v + (dir / "c4.safetensors").string(), "have 4 channels, the VAE config has latent_channels 16");
  write_tensor(dir / "r3.safetensors", "latents", Tensor<float>({16, 8, 8}, 0.5f));
  expect_error(v + (dir / "r3.safetensors").string(), "must be [B, 16, h, w]");
  {
    SafetensorsWriter w;
    w.add("a", Tensor<float>({1, 16, 2, 2}));
    w.add("b", Tensor<float>({1, 16, 2, 2}));
    w.write((dir / "two.safetensors").string());
  }
  expect_error(v + (dir / "two.safetensors").string(), "missing input tensor 'latents'");
  expect_error(v + latents.string() + " --name zz", "missing input tensor 'zz'");
  Tensor<float> nan({1, 16, 2, 2}, 0.5f);
  nan[7] = std::nanf("");
  write_tensor(dir / "nan.safetensors", "latents", nan);
  expect_error(v + (dir / "nan.safetensors").string(), "holds nan at flat index 7");
  {
    SafetensorsWriter w;
    w.add("latents", Tensor<int32_t>({1, 16, 2, 2}));
    w.write((dir / "int.safetensors").string());
  }
  expect_error(v + (dir / "int.safetensors").string(), "is I32, expected a float dtype");
  expect_error(v + (dir / "none.safetensors").string(), "none.safetensors");
  expect_error(decode_args() + " --bogus 1", "unknown argument --bogus");
  expect_error(decode_args() + " --synthetic", "give exactly one of --vae DIR and --synthetic");
  expect_error("vae decode --vae " + vae.string() + " --out " + out.string(), "give exactly one of --latents FILE and --random-latents");
  expect_error(decode_args() + " --tile-latent 4", "need --tiled");
  expect_error(decode_args() + " --tiled --tile-overlap 1.5", "overlap factor");
  expect_error(decode_args() + " --dtype bf16", "--dtype must be float32 or float64");
  expect_error(decode_args() + " --dtype", "argument --dtype needs a value");
  expect_error("vae transcode", "unknown subcommand 'transcode'");
  expect_error("vae encode --vae " + vae.string() + " --image " + image.string(), "missing required argument --out");
  write_tensor(dir / "odd.safetensors", "image", Tensor<float>({1, 3, 15, 12}, 0.5f));
  expect_error("vae encode --vae " + vae.string() + " --image " + (dir / "odd.safetensors").string() + " --out " + out.string(),
               "has H, W not multiples of 2");
  expect_error("vae decode --synthetic --random-latents 1,16,0,4 --out " + out.string(), "--random-latents '1,16,0,4'");
}

TEST_F(VaeCli, BadFolderIsOneLine) {
  write_vae([](const std::string& n) { return n != "decoder.mid_block.attentions.0.to_k.bias"; });
  expect_error(decode_args(), "missing tensor 'decoder.mid_block.attentions.0.to_k.bias'");
  nlohmann::json j = cfg.to_json();
  j["act_fn"] = "gelu";
  std::ofstream(config) << j.dump();
  expect_error(decode_args(), "key 'act_fn' is 'gelu'");
  fs::remove(config);
  expect_error(decode_args(), "config.json: cannot open");
}

// --device: refused before any file is read (the --vae folder given does not exist, so reaching
// the model would name it instead). With the CUDA path, the GPU run is CudaVaeCli in
// tests/cuda/test_cuda_vae.cpp.
TEST_F(VaeCli, DeviceRefusedBeforeAnyFileIsRead) {
  const std::string absent = "vae decode --vae " + (dir / "absent").string() + " --random-latents 1,16,4,4 --out " + out.string();
  const std::string enc = "vae encode --vae " + (dir / "absent").string() + " --image " + image.string() + " --out " + out.string();
  expect_error(absent + " --device tpu", "--device must be cpu or cuda, not 'tpu'");
  expect_error(absent + " --dtype bfloat16", "--dtype must be float32 or float64 with --device cpu");
#ifdef ZIMAGE_CLI_HAS_CUDA
  expect_error(absent + " --device cuda --dtype float64", "--dtype must be float32 or bfloat16 with --device cuda");
  expect_error(enc + " --device cuda --dtype float16", "--dtype must be float32 or bfloat16 with --device cuda");
  // Without a GPU: the device refusal; with one, the absent folder (nothing else).
  fs::remove(out);
  const RunResult r = run_zimage(absent + " --device cuda");
  std::printf("  --device cuda -> %d: %s", r.status, r.err.c_str());
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(r.err.find("--device cuda: no CUDA device") != std::string::npos || r.err.find("absent") != std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(out));
#else
  expect_error(absent + " --device cuda", "--device cuda: this zimage was built without the CUDA path");
  expect_error(enc + " --device cuda", "--device cuda: this zimage was built without the CUDA path");
#endif
}

}  // namespace
}  // namespace zimage

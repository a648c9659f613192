// --check-finite on the VAE subcommands: a weight set near FLT_MAX makes a
// module's output overflow; the command names that module (the first whose
// output holds NaN/Inf), exits 1 and writes nothing. Without the flag the same
// run completes, so the flag is what catches it.
#include <cmath>
#include <filesystem>
#include <fstream>

#include "io/safetensors.h"
#include "support/cli_runner.h"
#include "support/test_support.h"

namespace zimage {
namespace {

namespace fs = std::filesystem;

// A copy of golden/models/vae_tiny whose tensor `name` is set to 3e38 everywhere.
fs::path poisoned_vae(const fs::path& dir, const std::string& name) {
  const fs::path vae = dir / "vae";
  fs::copy(std::string(ZIMAGE_GOLDEN_DIR) + "/models/vae_tiny", vae, fs::copy_options::recursive);
  const fs::path file = vae / "diffusion_pytorch_model.safetensors";
  const auto f = SafetensorsFile::open(file.string());
  SafetensorsWriter w;
  for (const auto& [k, v] : f->metadata()) w.set_metadata(k, v);
  for (const auto& n : f->names()) {
    Tensor<double> t = f->get<double>(n);
    if (n == name) std::fill(t.data.begin(), t.data.end(), 3e38);
    w.add(n, t, f->view(n).dtype);
  }
  w.write((dir / "w.safetensors").string());
  fs::rename(dir / "w.safetensors", file);
  return vae;
}

TEST(CliCheckFinite, VaeDecodeNamesTheFirstOverflowingModule) {
  const fs::path dir = testing::scratch_dir("cf_vae_decode"), out = dir / "img.safetensors";
  const fs::path vae = poisoned_vae(dir, "decoder.mid_block.resnets.0.conv1.weight");
  const std::string args = "vae decode --vae " + vae.string() + " --random-latents 1,16,4,4 --out " + out.string();
  const auto plain = testing::run_zimage(args);
  EXPECT_EQ(plain.status, 0) << "without --check-finite the run completes: " << plain.err;
  fs::remove(out);
  const auto r = testing::run_zimage(args + " --check-finite");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("'decoder.mid_block.resnets.0.conv1'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));
  fs::remove_all(dir);
}

TEST(CliCheckFinite, VaeEncodeNamesTheFirstOverflowingModule) {
  const fs::path dir = testing::scratch_dir("cf_vae_encode"), out = dir / "lat.safetensors";
  const fs::path vae = poisoned_vae(dir, "encoder.conv_in.weight");
  SafetensorsWriter img;
  img.add("image", testing::randn<float>({1, 3, 16, 16}, 4, 0.5), DType::F32);
  img.write((dir / "image.safetensors").string());
  const auto r = testing::run_zimage("vae encode --vae " + vae.string() + " --image " + (dir / "image.safetensors").string() +
                                     " --out " + out.string() + " --check-finite");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("'encoder.conv_in'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));
  fs::remove_all(dir);
}

// zimage encode: a text-encoder weight near FLT_MAX; the first overflowing module is named.
TEST(CliCheckFinite, EncodeNamesTheFirstOverflowingModule) {
  const fs::path dir = testing::scratch_dir("cf_encode"), pipe = dir / "pipe", out = dir / "embeds.safetensors";
  const std::string te = std::string(ZIMAGE_GOLDEN_DIR) + "/text_encoder";
  fs::create_directories(pipe);
  fs::copy(te + "/tiny_te", pipe / "text_encoder", fs::copy_options::recursive);
  fs::copy(te + "/tokenizer", pipe / "tokenizer", fs::copy_options::recursive);
  const std::string target = "layers.0.mlp.down_proj.weight";
  for (const auto& e : fs::directory_iterator(pipe / "text_encoder")) {
    if (e.path().extension() != ".safetensors") continue;
    const auto f = SafetensorsFile::open(e.path().string());
    if (!f->contains(target)) continue;
    SafetensorsWriter w;
    for (const auto& [k, v] : f->metadata()) w.set_metadata(k, v);
    for (const auto& n : f->names()) {
      Tensor<double> t = f->get<double>(n);
      if (n == target) std::fill(t.data.begin(), t.data.end(), 3e38);
      w.add(n, t, f->view(n).dtype);
    }
    w.write((dir / "w.safetensors").string());
    fs::rename(dir / "w.safetensors", e.path());
  }
  const std::string args = "encode --model " + pipe.string() + " --prompt 'a red cube' --out " + out.string();
  const auto plain = testing::run_zimage(args);
  EXPECT_EQ(plain.status, 0) << "without --check-finite the run completes: " << plain.err;
  fs::remove(out);
  const auto r = testing::run_zimage(args + " --check-finite");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("'layers.0.mlp"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));
  fs::remove_all(dir);
}

// inspect runs no module: --check-finite scans the weights themselves.
TEST(CliCheckFinite, InspectNamesAWeightHoldingNaN) {
  const fs::path dir = testing::scratch_dir("cf_inspect"), model = dir / "model";
  fs::copy(std::string(ZIMAGE_GOLDEN_DIR) + "/models/tiny_single", model, fs::copy_options::recursive);
  const fs::path file = model / "diffusion_pytorch_model.safetensors";
  {
    const auto f = SafetensorsFile::open(file.string());
    SafetensorsWriter w;
    for (const auto& [k, v] : f->metadata()) w.set_metadata(k, v);
    for (const auto& n : f->names()) {
      Tensor<double> t = f->get<double>(n);
      if (n == "layers.0.attention.to_k.weight") t[17] = std::nan("");
      w.add(n, t, f->view(n).dtype);
    }
    w.write((dir / "w.safetensors").string());
  }
  fs::rename(dir / "w.safetensors", file);
  const auto clean = testing::run_zimage("inspect " + model.string());
  EXPECT_EQ(clean.status, 0) << "without --check-finite the NaN is not looked for: " << clean.err;
  const fs::path out = dir / "out.txt";
  const int raw = std::system((std::string(ZIMAGE_CLI) + " inspect " + model.string() + " --check-finite >" + out.string()).c_str());
  std::ifstream in(out);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(WEXITSTATUS(raw), 1) << text;
  EXPECT_NE(text.find("'layers.0.attention.to_k.weight' holds 1 NaN/Inf values, the first at flat index 17"), std::string::npos)
      << text;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace zimage

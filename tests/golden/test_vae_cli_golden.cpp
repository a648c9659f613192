// `zimage vae` on the shipped VAE goldens: decode with a diffusers-saved
// (sharded) folder matches diffusers' AutoencoderKL.decode within the T2
// budget; `zimage vae validate` passes a good golden and fails (exit 1) one
// whose encode.logvar was perturbed by one part in a thousand.
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "support/goldens.h"
#include "support/test_support.h"
#include "vae/vae_golden.h"
#include "vae/module_table.h"

namespace zimage {
namespace {

namespace fs = std::filesystem;

int run(const std::string& args, std::string* out = nullptr) {
  const fs::path o = fs::path(::testing::TempDir()) / ("zimage_vae_cli_golden_" + std::to_string(::getpid()) + ".out");
  const int raw = std::system((std::string(ZIMAGE_CLI) + " " + args + " >" + o.string() + " 2>&1").c_str());
  std::ifstream in(o);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::printf("%s", text.c_str());
  if (out) *out = text;
  return WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
}

class VaeCliGolden : public ::testing::Test {
 protected:
  fs::path dir = fs::path(::testing::TempDir()) / ("zimage_vae_cli_golden_" + std::to_string(::getpid()));
  void SetUp() override { fs::create_directories(dir); }
  void TearDown() override { fs::remove_all(dir); }
};

TEST_F(VaeCliGolden, DecodeShardedFolderMatchesDiffusers) {
  const VaeGolden g = open_vae_golden(testing::golden_path("vae_flux_like"));
  SafetensorsWriter w;
  w.add("latents", g.get<float>("decode:in.z"));
  w.write((dir / "z.safetensors").string());
  for (const char* dtype : {"float32", "float64"}) {
    ASSERT_EQ(run("vae decode --vae " + std::string(ZIMAGE_GOLDEN_DIR) + "/models/vae_flux_like --latents " +
                  (dir / "z.safetensors").string() + " --out " + (dir / "x.safetensors").string() + " --dtype " + dtype),
              0);
    const Tensor<double> got = SafetensorsFile::open((dir / "x.safetensors").string())->get<double>("image");
    testing::expect_within(std::string("zimage vae decode (") + dtype + ") vs diffusers decode",
                           numerics::compare(got, g.get<double>("decode")), vae_row_budget(g, "decode"));
  }
}

TEST_F(VaeCliGolden, ValidatePassesAndFailsAPerturbedGolden) {
  const std::string model = std::string(ZIMAGE_GOLDEN_DIR) + "/models/vae_tiny";
  std::string text;
  EXPECT_EQ(run("vae validate --golden " + testing::golden_path("vae_tiny"), &text), 0);
  EXPECT_NE(text.find(" 0 failed"), std::string::npos);
  // A copy whose encode.logvar is off by 1e-3 (relative): that row, and only it, fails.
  const auto f = SafetensorsFile::open(testing::golden_path("vae_tiny"));
  SafetensorsWriter w;
  for (const auto& [k, v] : f->metadata()) w.set_metadata(k, v);
  for (const auto& n : f->names()) {
    if (n == "encode.logvar") continue;
    const TensorView& v = f->view(n);
    w.add_raw(n, v.dtype, v.shape, std::vector<uint8_t>(v.data, v.data + v.nbytes));
  }
  Tensor<float> bad = f->get<float>("encode.logvar");
  for (auto& x : bad.data) x *= 1.001f;
  w.add("encode.logvar", bad);
  const fs::path copy = dir / "vae_tiny_bad.safetensors";
  w.write(copy.string());
  EXPECT_EQ(run("vae validate --golden " + copy.string() + " --model " + model, &text), 1);
  EXPECT_NE(text.find(" 1 failed"), std::string::npos);
}

}  // namespace
}  // namespace zimage

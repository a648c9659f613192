// `zimage dit --device cuda`: without a GPU, one line on stderr, exit status 2 and no output file
// (this part runs everywhere); with one, float32 and bfloat16 write sample.0 (float32 within the
// T2 budget of the diffusers golden); float16 and unknown devices are one-line errors, exit 2,
// nothing written.
#include <filesystem>

#include "cuda_support.h"
#include "support/cli_runner.h"
#include "support/goldens.h"
#include "validation/golden_file.h"
#include "dit/module_table.h"

namespace zimage {
namespace {

namespace fs = std::filesystem;

class CudaCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = testing::scratch_dir("cuda_cli");
    inputs = dir / "in.safetensors";
    out = dir / "out.safetensors";
    fs::remove(out);
    const GoldenFile g = open_golden(testing::golden_path("tiny_single"));
    SafetensorsWriter w;
    w.add("x.0", g.get<double>("x.0"), zimage::DType::F32);
    w.add("cap_feats.0", g.get<double>("cap_feats.0"), zimage::DType::F32);
    w.add("t", g.get<double>("t"), zimage::DType::F32);
    w.write(inputs.string());
  }
  void TearDown() override { fs::remove_all(dir); }
  std::string dit(const std::string& extra) const {
    return "dit --model " + std::string(ZIMAGE_GOLDEN_DIR) + "/models/tiny_single --inputs " + inputs.string() +
           " --output " + out.string() + " " + extra;
  }
  void expect_refused(const std::string& extra, const std::string& needle) {
    const testing::CliResult r = testing::run_zimage(dit(extra));
    std::printf("  zimage %s\n", extra.c_str());
    testing::expect_refusal(r, needle);
    EXPECT_FALSE(fs::exists(out)) << "an output file was written";
  }
  fs::path dir, inputs, out;
};

TEST_F(CudaCli, WithoutGpuOneLineErrorExit2NoOutput) {
  std::string why;
  if (gpu::device_available(&why)) GTEST_SKIP() << "a CUDA device is present: the no-GPU path is not reachable here";
  expect_refused("--device cuda", "no CUDA device");
  expect_refused("--device cuda --dtype bfloat16", "no CUDA device");
}

TEST_F(CudaCli, Float16AndUnknownDeviceRefused) {
  // These refusals come before any device work: they hold with or without a GPU.
  expect_refused("--device cuda --dtype float16", "--dtype float16");
  expect_refused("--device tpu", "--device");
  expect_refused("--device cuda --dtype float64", "--dtype");
}

TEST_F(CudaCli, Float32AndBfloat16RunOnGpu) {
  ZIMAGE_REQUIRE_CUDA();
  const GoldenFile g = open_golden(testing::golden_path("tiny_single"));
  for (const char* dt : {"float32", "bfloat16"}) {
    fs::remove(out);
    const testing::CliResult r = testing::run_zimage(dit(std::string("--device cuda --dtype ") + dt));
    ASSERT_EQ(r.status, 0) << r.err;
    ASSERT_TRUE(fs::exists(out));
    const auto f = SafetensorsFile::open(out.string());
    const Tensor<double> s = f->get<double>("sample.0");
    if (std::string(dt) == "float32")
      testing::expect_within("zimage dit --device cuda float32 sample.0 vs golden T2",
                             numerics::compare(s, g.get<double>("sample.0")),
                             dit_module_budget(numerics::Tier::T2, "sample.0", g.config, 64 + 32));
    else
      for (double v : s.data) ASSERT_TRUE(std::isfinite(v));
  }
}

}  // namespace
}  // namespace zimage

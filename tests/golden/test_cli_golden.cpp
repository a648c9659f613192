// The CLI end to end on shipped goldens: `zimage dit` on a diffusers-saved
// model folder reproduces diffusers' sample and dumps activations under
// diffusers' names; `zimage validate` passes a good golden, fails (exit 1) a
// golden whose output was perturbed, and refuses a golden holding NaN.
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "io/safetensors.h"
#include "support/cli_runner.h"
#include "support/goldens.h"
#include "support/test_support.h"
#include "dit/module_table.h"

namespace zimage {
namespace {

namespace fs = std::filesystem;

int run(const std::string& args) { return testing::run_zimage(args).status; }

fs::path scratch(const std::string& name) {
  const fs::path d = fs::path(::testing::TempDir()) / ("zimage_cli_golden_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d / name;
}

// A copy of a golden with one tensor replaced.
void copy_with(const std::string& src, const std::string& dst, const std::string& name, const Tensor<double>& value) {
  const auto f = SafetensorsFile::open(src);
  SafetensorsWriter w;
  for (const auto& [k, v] : f->metadata()) w.set_metadata(k, v);
  for (const auto& n : f->names()) {
    const TensorView& v = f->view(n);
    if (n == name) w.add(n, value, v.dtype);
    else w.add_raw(n, v.dtype, v.shape, std::vector<uint8_t>(v.data, v.data + v.nbytes));
  }
  w.write(dst);
}

TEST(CliGolden, DitOnShardedDiffusersFolderMatchesGoldenSample_tiny_batch2) {
  const std::string golden = testing::golden_path("tiny_batch2");
  const fs::path out = scratch("out.safetensors"), acts = scratch("acts.safetensors");
  ASSERT_EQ(run("dit --model " + std::string(ZIMAGE_GOLDEN_DIR) + "/models/tiny_batch2 --inputs " + golden +
                " --output " + out.string() + " --dtype float64 --dump-activations " + acts.string()),
            0);
  const auto g = open_golden(golden);
  const auto o = SafetensorsFile::open(out.string());
  for (int i = 0; i < 2; ++i) {
    const std::string s = "sample." + std::to_string(i);
    // The output is stored as F32, which adds one fp32 rounding to the double result.
    testing::expect_within("zimage dit " + s, numerics::compare(o->get<double>(s), g.get<double>(s)),
                           dit_module_budget(numerics::Tier::T2, s, g.config, 96));
  }
  const auto a = SafetensorsFile::open(acts.string());
  for (const char* n : {"t_embedder", "noise_refiner.0", "context_refiner.1", "layers.1.attention", "layers.0.feed_forward.w2",
                        "all_final_layer.2-1", "patchify.cap_pos_ids.1", "rope_embedder.cap"})
    EXPECT_TRUE(a->contains(n)) << "activation dump lacks " << n;
  // The golden keeps block 0's sub-module captures only (metadata "thinned": later-block-leaves,
  // docs/goldens.md); layers.1.attention has layers.0.attention's shape.
  EXPECT_EQ(a->view("layers.1.attention").shape, g.file->view("layers.0.attention").shape);
}

TEST(CliGolden, ValidateWithUserModelPasses_tiny_single) {
  EXPECT_EQ(run("validate --model " + std::string(ZIMAGE_GOLDEN_DIR) + "/models/tiny_single --goldens " +
                testing::golden_path("tiny_single")),
            0);
}

TEST(CliGolden, ValidateFailsOnPerturbedSample_tiny_single) {
  const std::string src = testing::golden_path("tiny_single");
  Tensor<double> s = SafetensorsFile::open(src)->get<double>("sample.0");
  s[17] += 1e-3;  // one element, 1e-3 absolute: far past the whole-model budget's max_n
  const fs::path bad = scratch("perturbed.safetensors");
  copy_with(src, bad.string(), "sample.0", s);
  EXPECT_EQ(run("validate --model " + std::string(ZIMAGE_GOLDEN_DIR) + "/models/tiny_single --goldens " + bad.string()), 1);
}

TEST(CliGolden, GoldenWithNaNIsRefusedNamingTheTensor) {
  const std::string src = testing::golden_path("tiny_single");
  Tensor<double> s = SafetensorsFile::open(src)->get<double>("layers.0");
  s[5] = std::nan("");
  const fs::path bad = scratch("nan.safetensors");
  copy_with(src, bad.string(), "layers.0", s);
  try {
    open_golden(bad.string());
    FAIL() << "a golden with NaN was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'layers.0'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("index 5"), std::string::npos) << e.what();
  }
  EXPECT_EQ(run("validate --goldens " + bad.string()), 2);
}

TEST(CliGolden, ConstantGoldenIsRefused) {
  const std::string src = testing::golden_path("tiny_single");
  Tensor<double> s = SafetensorsFile::open(src)->get<double>("sample.0");
  for (auto& v : s.data) v = 0.0;  // a cached black image
  const fs::path bad = scratch("constant.safetensors");
  copy_with(src, bad.string(), "sample.0", s);
  EXPECT_THROW(open_golden(bad.string()), Error);
}

}  // namespace
}  // namespace zimage

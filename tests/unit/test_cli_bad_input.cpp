// Bad input to the CLI: one line on stderr that names the file, tensor or
// argument, exit status 2, no crash, and no output file left behind.
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "io/safetensors.h"
#include "dit/transformer.h"
#include "support/cli_runner.h"
#include "support/test_support.h"

namespace zimage {
namespace {

namespace fs = std::filesystem;

using RunResult = testing::CliResult;
using testing::run_zimage;

// A tiny model folder written with the project's writer and synthetic weights.
class CliBadInput : public ::testing::Test {
 protected:
  fs::path dir = fs::path(::testing::TempDir()) / ("zimage_cli_" + std::to_string(::getpid()));
  fs::path model = dir / "model", inputs = dir / "in.safetensors", out = dir / "out.safetensors";
  ZImageConfig cfg = testing::tiny_config(1);

  void SetUp() override {
    fs::remove_all(dir);
    fs::create_directories(model);
    std::ofstream(model / "config.json") << cfg.to_json().dump(2);
    write_model([](const std::string&) { return true; });
    write_inputs({16, 1, 8, 8}, {5, 32}, DType::F32);
  }
  void TearDown() override { fs::remove_all(dir); }

  template <class Keep>
  void write_model(Keep keep, const std::string& bad_shape_name = "", const std::string& nan_name = "") {
    const auto src = synthetic_param_source(testing::synthetic_spec(cfg, 3));
    SafetensorsWriter w;
    for (const auto& [name, shape] : src->shapes()) {
      if (!keep(name)) continue;
      Tensor<double> t = src->load(name);
      if (name == bad_shape_name) t = t.reshaped({t.numel()});
      if (name == nan_name) t[5] = std::nan("");
      w.add(name, t);
    }
    w.write((model / "diffusion_pytorch_model.safetensors").string());
  }
  void write_inputs(Shape x, Shape cap, DType x_dtype, double cap_value_7 = 0, double t = 0.5) {
    SafetensorsWriter w;
    w.add("x.0", testing::randn<double>(x, 1), x_dtype);
    Tensor<double> c = testing::randn<double>(cap, 2);
    if (cap_value_7 != 0) c[7] = cap_value_7;
    w.add("cap_feats.0", c);
    w.add("t", Tensor<double>({1}, t));
    w.write(inputs.string());
  }
  std::string dit_args() const {
    return "dit --model " + model.string() + " --inputs " + inputs.string() + " --output " + out.string();
  }
  void expect_error(const RunResult& r, const std::string& must_name) {
    testing::expect_refusal(r, must_name);
    EXPECT_EQ(r.err.rfind("zimage: error: ", 0), 0u) << r.err;
    EXPECT_FALSE(fs::exists(out)) << "partial output left behind";
    EXPECT_FALSE(fs::exists(out.string() + ".tmp")) << "temporary output left behind";
  }
};

TEST_F(CliBadInput, ValidInputsSucceed) {
  const RunResult r = run_zimage(dit_args());
  ASSERT_EQ(r.status, 0) << r.err;
  const auto f = SafetensorsFile::open(out.string());
  EXPECT_EQ(f->view("sample.0").shape, (Shape{16, 1, 8, 8}));
}

TEST_F(CliBadInput, MissingArgument) { expect_error(run_zimage("dit --model " + model.string()), "--inputs"); }
TEST_F(CliBadInput, UnknownArgument) { expect_error(run_zimage(dit_args() + " --steps 3"), "--steps"); }
TEST_F(CliBadInput, BadDtype) { expect_error(run_zimage(dit_args() + " --dtype float16"), "--dtype"); }
TEST_F(CliBadInput, ModelWithoutConfig) {
  fs::remove(model / "config.json");
  expect_error(run_zimage(dit_args()), "config.json");
}
TEST_F(CliBadInput, TruncatedModelFile) {
  fs::resize_file(model / "diffusion_pytorch_model.safetensors", 4000);
  expect_error(run_zimage(dit_args()), "diffusion_pytorch_model.safetensors");
}
TEST_F(CliBadInput, MissingWeight) {
  write_model([](const std::string& n) { return n != "layers.0.feed_forward.w2.weight"; });
  expect_error(run_zimage(dit_args()), "layers.0.feed_forward.w2.weight");
}
TEST_F(CliBadInput, WrongWeightShape) {
  write_model([](const std::string&) { return true; }, "cap_embedder.1.weight");
  expect_error(run_zimage(dit_args()), "cap_embedder.1.weight");
}
TEST_F(CliBadInput, MissingInputsFile) {
  fs::remove(inputs);
  expect_error(run_zimage(dit_args()), inputs.string());
}
TEST_F(CliBadInput, InputWrongDtype) {
  write_inputs({16, 1, 8, 8}, {5, 32}, DType::F64);
  expect_error(run_zimage(dit_args()), "x.0");
}
TEST_F(CliBadInput, ImageNotDivisibleByPatch) {
  write_inputs({16, 1, 8, 7}, {5, 32}, DType::F32);
  expect_error(run_zimage(dit_args()), "x.0");
}
TEST_F(CliBadInput, CaptionWidthMismatch) {
  write_inputs({16, 1, 8, 8}, {5, 31}, DType::F32);
  expect_error(run_zimage(dit_args()), "cap_feats.0");
}
TEST_F(CliBadInput, InputHoldingNaNNamesTensorAndIndex) {
  write_inputs({16, 1, 8, 8}, {5, 32}, DType::F32, std::nan(""));
  const RunResult r = run_zimage(dit_args());
  expect_error(r, "'cap_feats.0'");
  EXPECT_NE(r.err.find("flat index 7"), std::string::npos) << r.err;
}
TEST_F(CliBadInput, InputHoldingInfNamesTensorAndIndex) {
  write_inputs({16, 1, 8, 8}, {5, 32}, DType::F32, 0, INFINITY);
  const RunResult r = run_zimage(dit_args());
  expect_error(r, "'t'");
  EXPECT_NE(r.err.find("flat index 0"), std::string::npos) << r.err;
}
TEST_F(CliBadInput, CaptionPastRopeTable) {
  ZImageConfig small = cfg;
  small.axes_lens = {64, 32, 32};  // longest caption 32
  std::ofstream(model / "config.json") << small.to_json().dump(2);
  write_inputs({16, 1, 8, 8}, {33, 32}, DType::F32);
  expect_error(run_zimage(dit_args()), "a caption of 33 tokens pads to 64");
}

// NaN tracing: a NaN in one weight of layers.0's w3 shows up first in that
// Linear's output, in every row of the unified sequence (B 1, L 32 + 32).
TEST_F(CliBadInput, CheckFiniteNamesFirstModuleCountAndIndex) {
  write_model([](const std::string&) { return true; }, "", "layers.0.feed_forward.w3.weight");
  const RunResult r = run_zimage(dit_args() + " --check-finite");
  std::printf("  stderr: %s", r.err.c_str());
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("'layers.0.feed_forward.w3' holds 64 NaN/Inf values, the first at flat index 0"), std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(out)) << "a traced non-finite run must not write its output";
}
TEST_F(CliBadInput, CheckFiniteCleanRunWritesOutput) {
  const RunResult r = run_zimage(dit_args() + " --check-finite");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::exists(out));
}
TEST_F(CliBadInput, CheckFiniteAcceptedByEverySubcommand) {
  EXPECT_EQ(run_zimage("rope-limits --model " + model.string() + " --check-finite").status, 0);
  EXPECT_EQ(run_zimage("validate --check-finite --model " + model.string() + " --goldens " + (dir / "none.safetensors").string()).status, 2);
}

TEST_F(CliBadInput, ValidateMissingGolden) {
  expect_error(run_zimage("validate --goldens " + (dir / "nope.safetensors").string()), "nope.safetensors");
}

}  // namespace
}  // namespace zimage

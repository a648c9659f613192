// Full-size checkpoints (label `fullsize`; not built by default: configure
// with -DZIMAGE_BUILD_FULLSIZE_TESTS=ON and run tools/test-fullsize.sh, which
// writes the ~37 GB of synthetic checkpoints these tests read).
// ZIMAGE_FULLSIZE_DIR holds fp32/ and bf16/ (zimage write-synthetic, Turbo
// config) and inputs_512.safetensors (x.0 [16,1,64,64]: a 512x512 image;
// cap_feats.0 [128, 2560]; t [1]).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/held_bf16.h"
#include "dit/synthetic_checkpoint.h"
#include "dit/transformer.h"
#include "dit/model_folder.h"

namespace zimage {
namespace {

std::string data_dir() {
  const char* d = std::getenv("ZIMAGE_FULLSIZE_DIR");
  return d ? d : "";
}

#define NEED_DATA()                                                                                      \
  if (data_dir().empty()) FAIL() << "ZIMAGE_FULLSIZE_DIR is not set: run tools/test-fullsize.sh, which " \
                                    "writes the synthetic full-size checkpoints and runs these tests"

// A field of /proc/self/status in kB (VmHWM: peak resident set; VmRSS, RssAnon, RssFile: now).
int64_t status_kb(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::stoll(line.substr(key.size() + 1));
  return -1;
}

constexpr int64_t kTurboParams = 6'154'908'736;

void check_folder(const std::string& sub, DType dtype) {
  const ModelFolder mf = open_model_folder(data_dir() + "/" + sub);  // config + check_complete
  int64_t values = 0, bytes = 0;
  for (const auto& [name, shape] : mf.params->shapes()) {
    values += shape_numel(shape);
    const TensorView* v = mf.params->view(name);
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(v->dtype, dtype) << name;
    bytes += int64_t(v->nbytes);
  }
  std::printf("%s: %lld parameters, %lld bytes\n", sub.c_str(), static_cast<long long>(values), static_cast<long long>(bytes));
  EXPECT_EQ(values, kTurboParams);
  EXPECT_EQ(bytes, kTurboParams * int64_t(dtype_size(dtype)));
  std::ifstream idx(data_dir() + "/" + sub + "/diffusion_pytorch_model.safetensors.index.json");
  EXPECT_EQ(nlohmann::json::parse(idx)["metadata"]["total_size"].get<int64_t>(), bytes);
}

TEST(Fullsize, Fp32FolderCompleteWithTurboCount) {
  NEED_DATA();
  check_folder("fp32", DType::F32);
}

TEST(Fullsize, Bf16FolderCompleteWithTurboCount) {
  NEED_DATA();
  check_folder("bf16", DType::BF16);
}

// zimage inspect on the full-size folders: count, dtypes, bf16-exactness (every value scanned), completeness.
TEST(Fullsize, InspectReportsTurbo) {
  NEED_DATA();
  for (const std::string sub : {"fp32", "bf16"}) {
    const std::string out = data_dir() + "/inspect_" + sub + ".txt";
    const int raw = std::system((std::string(ZIMAGE_CLI) + " inspect " + data_dir() + "/" + sub + " >" + out).c_str());
    std::ifstream in(out);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::printf("%s", text.c_str());
    EXPECT_EQ(raw, 0) << sub;
    for (const std::string& want : std::vector<std::string>
         {"parameters implied by the config: 6,154,908,736 in 521 tensors", "tensors: 521, values: 6,154,908,736",
          std::string("dtypes: ") + (sub == "fp32" ? "F32" : "BF16") + " x 521", "bf16-exact: all 521 tensors",
          "complete: every parameter", "inspect: no problems found"})
      EXPECT_NE(text.find(want), std::string::npos) << sub << ": " << want;
  }
}

// The two variants hold the same numbers, and those are the generator's.
TEST(Fullsize, VariantsHoldTheSameValues) {
  NEED_DATA();
  const ModelFolder a = open_model_folder(data_dir() + "/fp32"), b = open_model_folder(data_dir() + "/bf16");
  for (const std::string name : {"layers.29.feed_forward.w2.weight", "cap_pad_token", "t_embedder.mlp.0.weight",
                                  "noise_refiner.1.attention.norm_k.weight"}) {
    const Tensor<float> x = a.params->load_float(name), y = b.params->load_float(name);
    std::vector<float> want(size_t(x.numel()));
    synthetic_bf16_values(0, name, x.shape, want.data());
    EXPECT_EQ(x.data, y.data) << name;
    EXPECT_EQ(x.data, want) << name;
  }
}

// The full-depth forward at 512x512 (1024 image + 128 caption tokens) from
// `params`, streamed block by block; prints the timings and the peak RSS
// (VmHWM: each ctest test is its own process) and checks the goal of 16 GB.
void forward_at_512_within_memory(const ModelFolder& mf, const ParamSource& params,
                                  std::chrono::steady_clock::time_point t0) {
  const auto in_file = SafetensorsFile::open(data_dir() + "/inputs_512.safetensors");
  DitInputs<float> in;
  in.x.push_back(in_file->get<float>("x.0"));
  in.cap_feats.push_back(in_file->get<float>("cap_feats.0"));
  in.t = in_file->get<float>("t");
  ASSERT_EQ(in.x[0].shape, (Shape{16, 1, 64, 64}));
  ASSERT_EQ(in.cap_feats[0].shape, (Shape{128, 2560}));
  const double open_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto last = std::chrono::steady_clock::now();
  int64_t max_file_kb = 0;
  const auto out = zimage_forward_streaming<float>(mf.config, params, in, nullptr, {}, [&](const std::string& path) {
    const auto now = std::chrono::steady_clock::now();
    max_file_kb = std::max(max_file_kb, status_kb("RssFile"));
    std::printf("  %-18s loaded after %6.1f s (RSS %lld MB, of which file pages %lld MB)\n", path.c_str(),
                std::chrono::duration<double>(now - last).count(), static_cast<long long>(status_kb("VmRSS") / 1024),
                static_cast<long long>(status_kb("RssFile") / 1024));
    std::fflush(stdout);
    last = now;
  });
  const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int64_t hwm_kb = status_kb("VmHWM");
  std::printf("full-depth forward, 1024 image + 128 caption tokens: open %.1f s, total %.1f s, peak RSS %.2f GB "
              "(largest file-page share seen %.2f GB)\n",
              open_s, total_s, double(hwm_kb) / 1048576.0, double(max_file_kb) / 1048576.0);
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].shape, (Shape{16, 1, 64, 64}));
  double ss = 0;
  for (float v : out[0].data) {
    ASSERT_TRUE(std::isfinite(v));
    ss += double(v) * v;
  }
  std::printf("sample.0 rms %.6g\n", std::sqrt(ss / double(out[0].numel())));
  EXPECT_GT(ss, 0.0);
  EXPECT_LE(hwm_kb, int64_t(16) << 20) << "peak RSS above the 16 GB goal";
}

// Streaming from the memory-mapped fp32 shards: one block resident at a time.
TEST(Fullsize, ForwardAt512WithinMemory) {
  NEED_DATA();
  const auto t0 = std::chrono::steady_clock::now();
  const ModelFolder mf = open_model_folder(data_dir() + "/fp32");
  forward_at_512_within_memory(mf, *mf.params, t0);
}

// Every weight held in memory as bf16 first (hold_as_bf16: 12.3 GB resident,
// what `zimage generate --weights bf16` does so that 8 steps read the file
// once), then the same forward. That it equals the fp32 forward bit for bit
// is tested at tiny size (tests/golden/test_streaming_forward.cpp).
TEST(Fullsize, ForwardAt512FromBf16HeldWeightsWithinMemory) {
  NEED_DATA();
  const auto t0 = std::chrono::steady_clock::now();
  const ModelFolder mf = open_model_folder(data_dir() + "/fp32");
  const std::shared_ptr<ParamSource> held = hold_as_bf16(mf.params);
  std::printf("held as bf16 after %.1f s: RSS %lld MB\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
              static_cast<long long>(status_kb("VmRSS") / 1024));
  forward_at_512_within_memory(mf, *held, t0);
}

}  // namespace
}  // namespace zimage

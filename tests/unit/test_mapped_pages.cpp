// Memory-bounded loading: converting the tensors of a mapped safetensors file
// one after another must not leave the file's pages in the resident set
// (release_mapped_pages, MADV_DONTNEED). Measured with /proc/self/status
// RssFile on a 256 MB temporary file; the mutation (no release) shows the
// gate can fail.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "io/param_source.h"

namespace zimage {
namespace {

int64_t rss_file_kb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("RssFile:", 0) == 0) return std::stoll(line.substr(8));
  return -1;
}

class MappedPages : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::filesystem::path(::testing::TempDir()) / ("zimage_mapped_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    SafetensorsWriter w;
    for (int i = 0; i < 4; ++i) {  // 4 x 16M floats = 256 MB
      Tensor<float> t({4096, 4096});
      for (int64_t k = 0; k < t.numel(); ++k) t[k] = float(k % 251) * 0.25f + float(i);
      w.add("t" + std::to_string(i), t);
    }
    w.write((dir_ / "diffusion_pytorch_model.safetensors").string());
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }
  static inline std::filesystem::path dir_;
};

TEST_F(MappedPages, LoadingReleasesTheFilePages) {
  ASSERT_GE(rss_file_kb(), 0) << "no RssFile in /proc/self/status";
  const auto src = open_weight_folder(dir_.string());
  const int64_t before = rss_file_kb();
  int64_t worst = 0;
  for (int i = 0; i < 4; ++i) {
    const Tensor<float> t = src->load_float("t" + std::to_string(i));
    ASSERT_EQ(t[5], 5 * 0.25f + float(i));
    worst = std::max(worst, rss_file_kb() - before);
  }
  std::printf("RssFile growth while loading 256 MB of mapped tensors: at most %lld kB\n", static_cast<long long>(worst));
  EXPECT_LT(worst, 16 * 1024);  // well under one 64 MB tensor
}

TEST_F(MappedPages, MutationWithoutReleaseAccumulates) {
  const auto src = open_weight_folder(dir_.string());
  const int64_t before = rss_file_kb();
  for (int i = 0; i < 4; ++i) {
    const TensorView* v = src->view("t" + std::to_string(i));
    ASSERT_NE(v, nullptr);
    const Tensor<float> t = to_tensor<float>(*v);  // what load_float does, minus release_mapped_pages
    ASSERT_EQ(t[5], 5 * 0.25f + float(i));
  }
  const int64_t grown = rss_file_kb() - before;
  std::printf("without release: RssFile grew by %lld kB\n", static_cast<long long>(grown));
  EXPECT_GT(grown, 200 * 1024);  // the gate above would have failed
  for (int i = 0; i < 4; ++i) release_mapped_pages(*src->view("t" + std::to_string(i)));
}

}  // namespace
}  // namespace zimage

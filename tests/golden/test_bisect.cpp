// Layer bisection end to end (docs/bisect.md) on a tiny model folder:
// golden/bisect/tiny_single_real.safetensors was dumped by
// tools/golden/dump_real.py from golden/models/tiny_single (diffusers,
// --hooks blocks --expand layers.1) for golden/bisect/prompt_embeds_tiny.
// `zimage validate --model DIR --goldens FILE` passes on that folder and, on
// a copy with half of one weight's values nudged by 2^-6 relative, names the module holding it.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "io/safetensors.h"
#include "support/cli_runner.h"

namespace zimage {
namespace {

namespace fs = std::filesystem;

const std::string kGolden = std::string(ZIMAGE_GOLDEN_DIR) + "/bisect/tiny_single_real.safetensors";
const std::string kModel = std::string(ZIMAGE_GOLDEN_DIR) + "/models/tiny_single";

struct Out {
  int status;
  std::string out;
};

Out validate(const std::string& model) {
  const fs::path d = testing::scratch_dir("bisect_io");
  const std::string o = (d / "out.txt").string();
  const int raw = std::system((std::string(ZIMAGE_CLI) + " validate --model " + model + " --goldens " + kGolden + " >" + o +
                               " 2>&1").c_str());
  std::ifstream in(o);
  Out r{WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw),
        std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>())};
  const auto tail = r.out.rfind("\n", r.out.size() > 2 ? r.out.size() - 2 : 0);
  std::printf("validate --model %s -> %d\n%s", model.c_str(), r.status,
              r.out.substr(tail == std::string::npos ? 0 : tail + 1).c_str());
  return r;
}

// A copy of the tiny model with the first half of `tensor`'s values scaled by
// (1 + 2^-6). Not a uniform scale: RMSNorm undoes those (norm_q / norm_k after
// to_q / to_k, attention_norm2 after the whole attention), and rightly so.
std::string nudged_copy(const std::string& tensor) {
  const fs::path d = testing::scratch_dir("bisect_" + tensor);
  fs::copy_file(kModel + "/config.json", d / "config.json", fs::copy_options::overwrite_existing);
  const auto f = SafetensorsFile::open(kModel + "/diffusion_pytorch_model.safetensors");
  SafetensorsWriter w;
  bool found = false;
  for (const auto& n : f->names()) {
    Tensor<float> t = f->get<float>(n);
    if (n == tensor) {
      for (size_t i = 0; i < t.data.size() / 2; ++i) t.data[i] *= 1.0f + 1.0f / 64.0f;
      found = true;
    }
    w.add(n, t);
  }
  EXPECT_TRUE(found) << tensor;
  w.write((d / "diffusion_pytorch_model.safetensors").string());
  return d.string();
}

TEST(Bisect, CleanFolderPasses) {
  const Out r = validate(kModel);
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find(" passed, 0 failed"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("first diverging"), std::string::npos) << r.out;
}

// Mutation: a wrong weight inside the expanded block is named down to the Linear.
TEST(Bisect, NamesTheLinearInsideTheExpandedBlock) {
  const Out r = validate(nudged_copy("layers.1.feed_forward.w2.weight"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("first diverging module (teacher-forced, in diffusers' forward order): layers.1.feed_forward.w2 "),
            std::string::npos)
      << r.out;
}

// Mutation: outside the expanded block, the first pass names the block.
TEST(Bisect, NamesTheBlockOnTheCoarsePass) {
  const Out r = validate(nudged_copy("noise_refiner.0.attention.to_v.weight"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("first diverging module (teacher-forced, in diffusers' forward order): noise_refiner.0 "),
            std::string::npos)
      << r.out;
}

}  // namespace
}  // namespace zimage

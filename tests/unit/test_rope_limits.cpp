// RoPE limits (issue: the 1505-token crash): the longest caption per config,
// the one-line error before any compute, the image-side limits, and the
// opt-in extension that is bitwise identical inside the table.
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "dit/rope_limits.h"
#include "dit/transformer.h"
#include "support/test_support.h"

namespace zimage {
namespace {

ZImageConfig with_axes_lens(std::vector<int> lens) {
  ZImageConfig c;  // Z-Image-Turbo
  c.axes_lens = std::move(lens);
  return c;
}

std::string error_of(const ZImageConfig& cfg, int64_t caption, Shape x) {
  try {
    check_rope_positions(cfg, caption, x, 0);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_mentions(const std::string& msg, std::initializer_list<const char*> parts) {
  std::printf("  %s\n", msg.c_str());
  for (const char* p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
}

TEST(RopeLimits, Turbo1536Accepts1504) { EXPECT_EQ(rope_limits(with_axes_lens({1536, 512, 512})).max_caption, 1504); }
TEST(RopeLimits, DiffusersDefault1024Accepts992) { EXPECT_EQ(rope_limits(with_axes_lens({1024, 512, 512})).max_caption, 992); }

// Every caption length around the boundary: accepted iff it is <= the limit.
TEST(RopeLimits, CaptionBoundaryIsExact_1536_and_1024) {
  for (int lens : {1536, 1024}) {
    const ZImageConfig cfg = with_axes_lens({lens, 512, 512});
    const int64_t limit = lens == 1536 ? 1504 : 992;
    for (int64_t L = limit - 40; L <= limit + 40; ++L)
      EXPECT_EQ(error_of(cfg, L, {16, 1, 128, 128}).empty(), L <= limit) << "axes_lens[0] " << lens << " caption " << L;
  }
}

TEST(RopeLimits, Caption1505ErrorNamesLengthsRowTableAndLimit) {
  expect_mentions(error_of(with_axes_lens({1536, 512, 512}), 1505, {16, 1, 128, 128}),
                  {"cap_feats.0", "1505 tokens", "pads to 1536", "position 1537", "axes_lens[0] = 1536", "at most 1504 tokens"});
  expect_mentions(error_of(with_axes_lens({1024, 512, 512}), 993, {16, 1, 128, 128}),
                  {"993 tokens", "pads to 1024", "position 1025", "axes_lens[0] = 1024", "at most 992 tokens"});
}

TEST(RopeLimits, ImagePastAxes1And2IsAnError) {
  const ZImageConfig cfg = with_axes_lens({1536, 512, 512});
  EXPECT_EQ(error_of(cfg, 32, {16, 1, 1024, 1024}), "");  // 512 x 512 patches: rows 0..511
  expect_mentions(error_of(cfg, 32, {16, 1, 1026, 64}), {"x.0", "axis-1 position 512", "axes_lens[1] = 512", "512 x 512 patches"});
  expect_mentions(error_of(cfg, 32, {16, 1, 64, 1030}), {"x.0", "axis-2 position 514", "axes_lens[2] = 512"});
}

// Extension: rows inside the default table are bitwise the same.
template <class T>
void expect_extension_bitwise() {
  const auto base = precompute_freqs_cis<T>({32, 48, 48}, {1536, 512, 512}, 256.0);
  const auto ext = precompute_freqs_cis<T>({32, 48, 48}, {4096, 600, 512}, 256.0);
  for (size_t a = 0; a < 3; ++a) {
    ASSERT_GT(ext[a].numel(), base[a].numel() - 1);
    EXPECT_EQ(std::memcmp(ext[a].ptr(), base[a].ptr(), sizeof(T) * size_t(base[a].numel())), 0) << "axis " << a;
  }
}
TEST(RopeExtension, InsideTableBitwiseIdentical_float) { expect_extension_bitwise<float>(); }
TEST(RopeExtension, InsideTableBitwiseIdentical_double) { expect_extension_bitwise<double>(); }

// The forward refuses 1505 without the extension and runs with it; with the
// extension, a caption inside the limit gives a bitwise identical output.
TEST(RopeExtension, ForwardRefuses1505WithoutAndRunsWith) {
  ZImageConfig cfg = testing::tiny_config(1);
  cfg.n_refiner_layers = 1;
  const auto w = load_weights<float>(cfg, *synthetic_param_source(testing::synthetic_spec(cfg, 9)));
  auto inputs = [&](int64_t L) {
    DitInputs<float> in;
    in.x.push_back(testing::randn<float>({16, 1, 4, 4}, 1));
    in.cap_feats.push_back(testing::randn<float>({L, 32}, 2));
    in.t = Tensor<float>({1}, 0.5f);
    return in;
  };
  EXPECT_THROW(zimage_forward(w, inputs(1505)), Error);
  ForwardOptions ext;
  ext.rope_extend = true;
  EXPECT_EQ(zimage_forward<float>(w, inputs(1505), nullptr, ext).at(0).shape, (Shape{16, 1, 4, 4}));
  const auto a = zimage_forward(w, inputs(40));
  const auto b = zimage_forward<float>(w, inputs(40), nullptr, ext);
  EXPECT_EQ(a[0].data, b[0].data) << "the extension changed a result inside the table";
}

TEST(RopeLimitsCli, PrintsTheLimitAndWhy_Turbo_and_Default) {
  namespace fs = std::filesystem;
  for (int lens : {1536, 1024}) {
    const fs::path dir = fs::path(::testing::TempDir()) / ("zimage_rope_limits_" + std::to_string(::getpid()) + "_" + std::to_string(lens));
    fs::create_directories(dir);
    std::ofstream(dir / "config.json") << with_axes_lens({lens, 512, 512}).to_json().dump();
    const fs::path out = dir / "out.txt";
    const int raw = std::system((std::string(ZIMAGE_CLI) + " rope-limits --model " + dir.string() + " > " + out.string()).c_str());
    ASSERT_TRUE(WIFEXITED(raw) && WEXITSTATUS(raw) == 0);
    std::ifstream in(out);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    expect_mentions(text, {lens == 1536 ? "longest caption: 1504 tokens" : "longest caption: 992 tokens",
                           lens == 1536 ? "needs row 1537" : "needs row 1025", "largest image: 512 x 512 patches"});
    fs::remove_all(dir);
  }
}

}  // namespace
}  // namespace zimage

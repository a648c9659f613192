// PNG writer/reader (reference/io/png.h): round trip through libpng, and the
// error paths leave nothing at the target path.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/png.h"

namespace zimage {
namespace {

namespace fs = std::filesystem;

fs::path scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("zimage_test_png_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d / name;
}

Image8 gradient(int64_t h, int64_t w, int64_t c) {
  Image8 img{h, w, c, {}};
  img.pixels.resize(h * w * c);
  for (int64_t i = 0; i < h * w * c; ++i) img.pixels[i] = static_cast<uint8_t>((i * 37 + i / 7) & 0xff);
  return img;
}

class PngRoundTrip : public ::testing::TestWithParam<int> {};

TEST_P(PngRoundTrip, PixelsComeBackExactly) {
  const int channels = GetParam();
  const Image8 img = gradient(13, 21, channels);
  const fs::path p = scratch("rt" + std::to_string(channels) + ".png");
  write_png(p.string(), img);
  EXPECT_FALSE(fs::exists(p.string() + ".tmp"));
  const Image8 back = read_png(p.string());
  EXPECT_EQ(back.height, 13);
  EXPECT_EQ(back.width, 21);
  EXPECT_EQ(back.channels, channels);
  EXPECT_EQ(back.pixels, img.pixels);
}
INSTANTIATE_TEST_SUITE_P(Channels, PngRoundTrip, ::testing::Values(1, 3, 4),
                         [](const auto& i) { return std::string("C").append(std::to_string(i.param)); });

TEST(PngErrors, UnwritableDirectoryNamesTheFileAndLeavesNothing) {
  const std::string p = (scratch("x").parent_path() / "no_such_dir" / "out.png").string();
  try {
    write_png(p, gradient(4, 4, 3));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(p));
}

TEST(PngErrors, ShapeMismatchIsRefusedBeforeWriting) {
  Image8 img = gradient(4, 4, 3);
  img.pixels.pop_back();
  const fs::path p = scratch("bad.png");
  EXPECT_THROW(write_png(p.string(), img), Error);
  EXPECT_FALSE(fs::exists(p));
}

TEST(PngErrors, NotAPngAndTruncatedPngAreErrors) {
  const fs::path txt = scratch("not.png");
  std::ofstream(txt) << "hello, not a png";
  EXPECT_THROW(read_png(txt.string()), Error);
  const fs::path good = scratch("good.png"), cut = scratch("cut.png");
  write_png(good.string(), gradient(32, 32, 3));
  const auto size = fs::file_size(good);
  fs::copy_file(good, cut, fs::copy_options::overwrite_existing);
  fs::resize_file(cut, size / 2);
  try {
    read_png(cut.string());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cut.png"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace zimage

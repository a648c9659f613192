// PNG writer/reader (reference/io/png.h): round trip through libpng, and the
// error paths leave nothing at the target path. The writer's own encoder (encode_png: libpng's
// filter choice, deflate in parallel runs of rows; docs/png.md): every chunk's CRC, one zlib stream
// that inflates with its Adler-32 checked, the pixels back exactly through libpng at shapes that
// cross, fill and fall short of a run, the same bytes for 1 and 2 threads, and a file no larger
// than libpng's own at its defaults (+1 %).
#include <gtest/gtest.h>
#include <omp.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

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

// A photo-like image: smooth gradients and edges plus a little grain (what a generated image
// compresses like, about 2:1), from an integer hash so the bytes are the same everywhere.
Image8 photo_like(int64_t h, int64_t w, int64_t c) {
  Image8 img{h, w, c, {}};
  img.pixels.resize(size_t(h * w * c));
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int64_t k = 0; k < c; ++k) {
        const uint32_t hash = uint32_t((y * 73856093) ^ (x * 19349663) ^ (k * 83492791)) * 2654435761u;
        const int64_t v = 40 + (x * (k + 1)) / 9 + y / 5 + ((x / 97 + y / 61) % 2) * 30 + int64_t(hash >> 29) - 4;
        img.pixels[size_t((y * w + x) * c + k)] = uint8_t(std::clamp<int64_t>(v, 0, 255));
      }
  return img;
}

struct PngChunk {
  std::string type;
  std::vector<uint8_t> data;
};

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

// The chunks of a PNG file in memory, each CRC checked.
std::vector<PngChunk> png_chunks(const std::vector<uint8_t>& f) {
  const std::vector<uint8_t> sig = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  EXPECT_TRUE(f.size() >= 8 && std::equal(sig.begin(), sig.end(), f.begin())) << "PNG signature";
  std::vector<PngChunk> out;
  for (size_t at = 8; at + 12 <= f.size();) {
    const uint32_t n = be32(&f[at]);
    EXPECT_LE(at + 12 + n, f.size()) << "chunk at byte " << at << " runs past the file";
    if (at + 12 + n > f.size()) break;
    PngChunk c{std::string(f.begin() + long(at + 4), f.begin() + long(at + 8)),
               std::vector<uint8_t>(f.begin() + long(at + 8), f.begin() + long(at + 8 + n))};
    EXPECT_EQ(be32(&f[at + 8 + n]), uint32_t(crc32_z(0, &f[at + 4], n + 4))) << c.type << " at byte " << at << " CRC";
    out.push_back(std::move(c));
    at += 12 + n;
  }
  return out;
}

struct PngCase {
  int64_t h, w, c;
  std::string content;
};
void PrintTo(const PngCase& p, std::ostream* os) { *os << p.content << " " << p.h << "x" << p.w << "x" << p.c; }

Image8 make(const PngCase& p) {
  if (p.content == "photo") return photo_like(p.h, p.w, p.c);
  if (p.content == "flat") return Image8{p.h, p.w, p.c, std::vector<uint8_t>(size_t(p.h * p.w * p.c), 77)};
  if (p.content == "noise") {  // incompressible: more than 1 MiB of stream, so several IDATs
    Image8 img{p.h, p.w, p.c, std::vector<uint8_t>(size_t(p.h * p.w * p.c))};
    for (size_t i = 0; i < img.pixels.size(); ++i) {  // murmur3's finalizer of i
      uint32_t v = uint32_t(i);
      v ^= v >> 16, v *= 0x85ebca6bu, v ^= v >> 13, v *= 0xc2b2ae35u, v ^= v >> 16;
      img.pixels[i] = uint8_t(v >> 24);
    }
    return img;
  }
  return gradient(p.h, p.w, p.c);
}

class PngEncode : public ::testing::TestWithParam<PngCase> {};

// The file's structure: IHDR (the shape, 8 bits, the colour type), IDATs of at most 1 MiB that
// together are one zlib stream inflating to H rows of 1 + W C bytes with valid filter types, its
// Adler-32 checked by inflate, then IEND; and libpng reads the pixels back exactly.
TEST_P(PngEncode, ValidStreamAndPixelsBackExactly) {
  const PngCase& p = GetParam();
  const Image8 img = make(p);
  const std::vector<uint8_t> f = encode_png(img);
  const std::vector<PngChunk> chunks = png_chunks(f);
  ASSERT_GE(chunks.size(), 3u);
  ASSERT_EQ(chunks.front().type, "IHDR");
  ASSERT_EQ(chunks.front().data.size(), 13u);
  EXPECT_EQ(be32(&chunks.front().data[0]), uint32_t(p.w));
  EXPECT_EQ(be32(&chunks.front().data[4]), uint32_t(p.h));
  EXPECT_EQ(chunks.front().data[8], 8);
  EXPECT_EQ(chunks.front().data[9], p.c == 1 ? 0 : p.c == 3 ? 2 : 6);
  EXPECT_EQ(chunks.back().type, "IEND");
  std::vector<uint8_t> zs;
  for (size_t i = 1; i + 1 < chunks.size(); ++i) {
    EXPECT_EQ(chunks[i].type, "IDAT");
    EXPECT_LE(chunks[i].data.size(), size_t(1) << 20);
    zs.insert(zs.end(), chunks[i].data.begin(), chunks[i].data.end());
  }
  const size_t raw_size = size_t(p.h * (1 + p.w * p.c));
  std::vector<uint8_t> raw(raw_size + 1);
  z_stream z{};
  ASSERT_EQ(inflateInit(&z), Z_OK);
  z.next_in = zs.data();
  z.avail_in = uInt(zs.size());
  z.next_out = raw.data();
  z.avail_out = uInt(raw.size());
  EXPECT_EQ(inflate(&z, Z_FINISH), Z_STREAM_END) << "one zlib stream, Adler-32 included";
  EXPECT_EQ(z.total_out, raw_size);
  EXPECT_EQ(z.avail_in, 0u) << "bytes after the zlib stream";
  inflateEnd(&z);
  for (int64_t y = 0; y < p.h; ++y) EXPECT_LE(raw[size_t(y * (1 + p.w * p.c))], 4) << "row " << y << " filter type";
  const fs::path path = scratch("enc_" + p.content + std::to_string(p.h) + "x" + std::to_string(p.w) + ".png");
  write_png(path.string(), img);
  const Image8 back = read_png(path.string());
  EXPECT_EQ(back.height, p.h);
  EXPECT_EQ(back.width, p.w);
  EXPECT_EQ(back.channels, p.c);
  EXPECT_TRUE(back.pixels == img.pixels) << "pixels differ after the round trip";
  std::printf("  %s %lldx%lldx%lld: %zu bytes (raw %zu), %zu IDAT\n", p.content.c_str(), (long long)p.h, (long long)p.w,
              (long long)p.c, f.size(), raw_size, chunks.size() - 2);
}

// Runs are 256 KiB of whole rows: 3 x 1024 + 1 bytes a row gives 85 rows a run, so 1024 rows make
// 13 runs, the last short; 170 rows exactly two; a row wider than a run one row a run; 1 x 1; noise
// that needs two IDAT chunks.
INSTANTIATE_TEST_SUITE_P(Shapes, PngEncode,
                         ::testing::Values(PngCase{1, 1, 3, "gradient"}, PngCase{7, 1, 1, "gradient"},
                                           PngCase{170, 1024, 3, "photo"}, PngCase{1024, 1024, 3, "photo"},
                                           PngCase{300, 517, 4, "photo"}, PngCase{96, 90000, 1, "gradient"},
                                           PngCase{600, 600, 3, "flat"}, PngCase{255, 333, 1, "photo"},
                                           PngCase{700, 700, 3, "noise"}),
                         [](const auto& i) {
                           return i.param.content + "_H" + std::to_string(i.param.h) + "_W" +
                                  std::to_string(i.param.w) + "_C" + std::to_string(i.param.c);
                         });

// The bytes are the image's alone: the same for 1 and 2 threads (the runs are fixed by the row
// size, never by the thread count).
TEST(PngEncodeThreads, SameBytesForOneAndTwoThreads) {
  const Image8 img = photo_like(700, 640, 3);
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<uint8_t> one = encode_png(img);
  omp_set_num_threads(2);
  const std::vector<uint8_t> two = encode_png(img);
  omp_set_num_threads(before);
  EXPECT_TRUE(one == two) << one.size() << " vs " << two.size() << " bytes";
}

// Cutting the stream into 256 KiB runs costs almost nothing in size (each run also starts from the
// 32 KiB before it, as pigz does). At most 1 % larger than libpng's own file at its defaults (what write_png wrote
// before, and what PIL's default level matches), on the photo-like image at 1024 x 1024.
TEST(PngEncodeSize, WithinOnePercentOfLibpngsDefaults) {
  const Image8 img = photo_like(1024, 1024, 3);
  const size_t ours = encode_png(img).size(), libpng = encode_png_libpng(img).size();
  const double ratio = double(ours) / double(libpng);
  std::printf(
      "  1024x1024x3 photo-like: encode_png %zu bytes, libpng %zu bytes, ratio %.4f (limit 1.01, %.1f%% of the "
      "1%% allowance used)\n",
      ours, libpng, ratio, std::max(0.0, ratio - 1) / 0.01 * 100);
  EXPECT_LE(ratio, 1.01);
}

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

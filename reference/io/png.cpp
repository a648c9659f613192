#include "io/png.h"

#include <png.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "core/error.h"

namespace zimage {

namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { if (f) std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

// libpng reports errors by longjmp (throwing through its C frames is not
// allowed): each function below catches them with setjmp and throws there.
// Warnings are dropped.
void on_warning(png_structp, png_const_charp) {}

}  // namespace

namespace {

// Bytes of the filtered image a deflate run takes (whole rows, at least one): fixed, so that the
// file's bytes depend on the image only, never on the thread count. A 1024 x 1024 RGB image makes
// 13 runs (docs/png.md: what the runs cost in size).
constexpr size_t kRunBytes = size_t(256) << 10;
constexpr size_t kWindow = size_t(32) << 10;    // deflate's window: a run's dictionary
constexpr size_t kIdatBytes = size_t(1) << 20;  // the most data one IDAT chunk holds

void check_image(const std::string& what, const Image8& img) {
  ZIMAGE_CHECK(img.height > 0 && img.width > 0, what + ": cannot write an empty image");
  ZIMAGE_CHECK(img.channels == 1 || img.channels == 3 || img.channels == 4,
               what + ": PNG needs 1, 3 or 4 channels, not " + std::to_string(img.channels));
  ZIMAGE_CHECK(static_cast<int64_t>(img.pixels.size()) == img.height * img.width * img.channels,
               what + ": pixel buffer size does not match the image shape");
  ZIMAGE_CHECK(img.height <= 0x7fffffff && img.width <= 0x7fffffff, what + ": image too large for PNG");
}

// |v| of a filtered byte read as signed: libpng's measure of how well a filter did.
inline uint32_t signed_abs(uint8_t v) { return v < 128 ? v : 256u - v; }

inline uint8_t paeth(int a, int b, int c) {
  const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return uint8_t(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

// Row y filtered into out[0, 1 + rb): the filter type byte, then the filtered bytes. Of the five
// filters (None, Sub, Up, Average, Paeth; PNG spec 9.2) the one with the least sum of signed_abs,
// the first on a tie: libpng's default choice for 8-bit images. `up` is the row above (zeros for
// the first row); `cand` holds 5 rb bytes.
void filter_row(const uint8_t* row, const uint8_t* up, int64_t rb, int bpp, uint8_t* cand, uint8_t* out) {
  uint8_t *none = cand, *sub = cand + rb, *upf = cand + 2 * rb, *avg = cand + 3 * rb, *pae = cand + 4 * rb;
  const int64_t head = std::min<int64_t>(bpp, rb);
  for (int64_t i = 0; i < head; ++i) {  // no pixel to the left: a = c = 0
    const int x = row[i], b = up[i];
    none[i] = uint8_t(x), sub[i] = uint8_t(x), upf[i] = uint8_t(x - b);
    avg[i] = uint8_t(x - b / 2), pae[i] = uint8_t(x - paeth(0, b, 0));
  }
  for (int64_t i = head; i < rb; ++i) {
    const int x = row[i], a = row[i - bpp], b = up[i], c = up[i - bpp];
    none[i] = uint8_t(x), sub[i] = uint8_t(x - a), upf[i] = uint8_t(x - b);
    avg[i] = uint8_t(x - (a + b) / 2), pae[i] = uint8_t(x - paeth(a, b, c));
  }
  uint32_t best_sum = UINT32_MAX;
  int best = 0;
  for (int f = 0; f < 5; ++f) {
    const uint8_t* c = cand + f * rb;
    uint32_t sum = 0;
    for (int64_t i = 0; i < rb; ++i) sum += signed_abs(c[i]);
    if (sum < best_sum) best_sum = sum, best = f;
  }
  out[0] = uint8_t(best);
  std::memcpy(out + 1, cand + best * rb, size_t(rb));
}

void put_u32(std::vector<uint8_t>& o, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) o.push_back(uint8_t(v >> s));
}

void put_chunk(std::vector<uint8_t>& o, const char type[4], const uint8_t* data, size_t n) {
  put_u32(o, uint32_t(n));
  const size_t at = o.size();
  o.insert(o.end(), type, type + 4);
  o.insert(o.end(), data, data + n);
  put_u32(o, uint32_t(crc32_z(0, o.data() + at, n + 4)));
}

}  // namespace

std::vector<uint8_t> encode_png(const Image8& img) {
  check_image("encode_png", img);
  const int bpp = int(img.channels);
  const int64_t H = img.height, rb = img.width * img.channels, stride = 1 + rb;
  ZIMAGE_CHECK(stride <= (int64_t(1) << 30), "encode_png: rows of more than 1 GiB are not written");
  std::vector<uint8_t> filtered(size_t(H * stride));
  const std::vector<uint8_t> zeros(static_cast<size_t>(rb), 0);  // the row above the first
#pragma omp parallel
  {
    std::vector<uint8_t> cand(static_cast<size_t>(5 * rb));
#pragma omp for schedule(static)
    for (int64_t y = 0; y < H; ++y)
      filter_row(img.pixels.data() + y * rb, y > 0 ? img.pixels.data() + (y - 1) * rb : zeros.data(), rb, bpp,
                 cand.data(), filtered.data() + y * stride);
  }

  // deflate in runs of whole rows (pigz's scheme): each run primed with the 32 KiB before it and
  // ended on a byte boundary with an empty stored block (Z_SYNC_FLUSH), the last one with Z_FINISH.
  const int64_t run_rows = std::max<int64_t>(1, int64_t(kRunBytes) / stride);
  const int64_t runs = (H + run_rows - 1) / run_rows;
  std::vector<std::vector<uint8_t>> out(static_cast<size_t>(runs));
  int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : failed)
  for (int64_t r = 0; r < runs; ++r) {
    const size_t begin = size_t(r * run_rows * stride), end = size_t(std::min(H, (r + 1) * run_rows) * stride);
    const bool last = r + 1 == runs;
    z_stream z{};
    if (deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_FILTERED) != Z_OK) {
      failed = 1;
      continue;
    }
    const size_t dict = std::min(begin, kWindow);
    if (dict > 0 && deflateSetDictionary(&z, filtered.data() + begin - dict, uInt(dict)) != Z_OK) failed = 1;
    std::vector<uint8_t>& o = out[size_t(r)];
    o.resize(deflateBound(&z, uLong(end - begin)) + 16);  // + the sync flush's empty stored block
    z.next_in = filtered.data() + begin;
    z.avail_in = uInt(end - begin);
    size_t done = 0;
    for (int rc = Z_OK; !failed;) {
      z.next_out = o.data() + done;
      z.avail_out = uInt(o.size() - done);
      rc = deflate(&z, last ? Z_FINISH : Z_SYNC_FLUSH);
      done = o.size() - z.avail_out;
      if (rc == Z_STREAM_END || (!last && rc == Z_OK && z.avail_in == 0 && z.avail_out > 0)) break;
      if (rc != Z_OK && rc != Z_BUF_ERROR) failed = 1;
      o.resize(o.size() * 2);  // deflateBound should make this unreachable
    }
    o.resize(done);
    deflateEnd(&z);
  }
  ZIMAGE_CHECK(!failed, "encode_png: zlib's deflate failed");

  std::vector<uint8_t> zs = {0x78, 0x9c};  // zlib header: deflate, 32 KiB window, level 6
  for (const auto& o : out) zs.insert(zs.end(), o.begin(), o.end());
  put_u32(zs, uint32_t(adler32_z(1, filtered.data(), filtered.size())));

  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> ihdr;
  put_u32(ihdr, uint32_t(img.width));
  put_u32(ihdr, uint32_t(img.height));
  const uint8_t color = img.channels == 1 ? 0 : img.channels == 3 ? 2 : 6;
  ihdr.insert(ihdr.end(), {8, color, 0, 0, 0});  // depth 8, colour type, deflate, filter method 0, no interlace
  put_chunk(png, "IHDR", ihdr.data(), ihdr.size());
  for (size_t at = 0; at < zs.size(); at += kIdatBytes)
    put_chunk(png, "IDAT", zs.data() + at, std::min(kIdatBytes, zs.size() - at));
  put_chunk(png, "IEND", nullptr, 0);
  return png;
}

std::vector<uint8_t> encode_png_libpng(const Image8& img) {
  check_image("encode_png_libpng", img);
  struct Sink {
    static void write(png_structp p, png_bytep data, png_size_t n) {
      auto* o = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(p));
      o->insert(o->end(), data, data + n);
    }
    static void flush(png_structp) {}
  };
  std::vector<uint8_t> out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, on_warning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) {
    png_destroy_write_struct(&png, &info);
    throw Error("encode_png_libpng: libpng could not start a write");
  }
  std::vector<png_bytep> rows(size_t(img.height));
  for (int64_t y = 0; y < img.height; ++y)
    rows[size_t(y)] = const_cast<png_bytep>(img.pixels.data() + y * img.width * img.channels);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw Error("encode_png_libpng: libpng failed");
  }
  const int color = img.channels == 1   ? PNG_COLOR_TYPE_GRAY
                    : img.channels == 3 ? PNG_COLOR_TYPE_RGB
                                        : PNG_COLOR_TYPE_RGB_ALPHA;
  png_set_write_fn(png, &out, Sink::write, Sink::flush);
  png_set_IHDR(png, info, static_cast<png_uint_32>(img.width), static_cast<png_uint_32>(img.height), 8, color,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

void write_png(const std::string& path, const Image8& img) {
  check_image(path, img);
  const std::vector<uint8_t> bytes = encode_png(img);
  const std::string tmp = path + ".tmp";
  {
    FilePtr f(std::fopen(tmp.c_str(), "wb"));
    ZIMAGE_CHECK(f != nullptr, path + ": cannot open for writing");
    const bool written = std::fwrite(bytes.data(), 1, bytes.size(), f.get()) == bytes.size() &&
                         std::fflush(f.get()) == 0 && !std::ferror(f.get());
    f.reset();
    if (!written) {
      std::filesystem::remove(tmp);
      throw Error(path + ": write failed (disk full?)");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp);
    throw Error(path + ": cannot move the finished image into place: " + ec.message());
  }
}

Image8 read_png(const std::string& path) {
  FilePtr f(std::fopen(path.c_str(), "rb"));
  ZIMAGE_CHECK(f != nullptr, path + ": cannot open");
  png_byte sig[8];
  ZIMAGE_CHECK(std::fread(sig, 1, 8, f.get()) == 8 && png_sig_cmp(sig, 0, 8) == 0, path + ": not a PNG file");
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, on_warning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw Error(path + ": libpng could not start a read");
  }
  Image8 img;
  std::vector<png_bytep> rows;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw Error(path + ": corrupt or truncated PNG");
  }
  png_init_io(png, f.get());
  png_set_sig_bytes(png, 8);
  png_read_info(png, info);
  const int depth = png_get_bit_depth(png, info), color = png_get_color_type(png, info);
  if (depth != 8 || (color != PNG_COLOR_TYPE_GRAY && color != PNG_COLOR_TYPE_RGB && color != PNG_COLOR_TYPE_RGB_ALPHA)) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw Error(path + ": only 8-bit gray, RGB or RGBA PNGs are read");
  }
  img.height = png_get_image_height(png, info);
  img.width = png_get_image_width(png, info);
  img.channels = png_get_channels(png, info);
  img.pixels.resize(img.height * img.width * img.channels);
  rows.resize(img.height);
  for (int64_t y = 0; y < img.height; ++y) rows[y] = img.pixels.data() + y * img.width * img.channels;
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return img;
}

}  // namespace zimage

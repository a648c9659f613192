#include "io/png.h"

#include <png.h>

#include <cstdio>
#include <filesystem>
#include <memory>

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

void write_png(const std::string& path, const Image8& img) {
  ZIMAGE_CHECK(img.height > 0 && img.width > 0, path + ": cannot write an empty image");
  ZIMAGE_CHECK(img.channels == 1 || img.channels == 3 || img.channels == 4,
               path + ": PNG needs 1, 3 or 4 channels, not " + std::to_string(img.channels));
  ZIMAGE_CHECK(static_cast<int64_t>(img.pixels.size()) == img.height * img.width * img.channels,
               path + ": pixel buffer size does not match the image shape");
  ZIMAGE_CHECK(img.height <= 0x7fffffff && img.width <= 0x7fffffff, path + ": image too large for PNG");
  const std::string tmp = path + ".tmp";
  {
    FilePtr f(std::fopen(tmp.c_str(), "wb"));
    ZIMAGE_CHECK(f != nullptr, path + ": cannot open for writing");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, on_warning);
    png_infop info = png ? png_create_info_struct(png) : nullptr;
    if (!png || !info) {
      png_destroy_write_struct(&png, &info);
      std::filesystem::remove(tmp);
      throw Error(path + ": libpng could not start a write");
    }
    std::vector<png_bytep> rows(img.height);
    for (int64_t y = 0; y < img.height; ++y)
      rows[y] = const_cast<png_bytep>(img.pixels.data() + y * img.width * img.channels);
    if (setjmp(png_jmpbuf(png))) {
      png_destroy_write_struct(&png, &info);
      f.reset();
      std::filesystem::remove(tmp);
      throw Error(path + ": libpng failed while writing (disk full?)");
    }
    const int color = img.channels == 1 ? PNG_COLOR_TYPE_GRAY
                      : img.channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGB_ALPHA;
    png_init_io(png, f.get());
    png_set_IHDR(png, info, static_cast<png_uint_32>(img.width), static_cast<png_uint_32>(img.height), 8, color,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    png_write_image(png, rows.data());
    png_write_end(png, nullptr);
    png_destroy_write_struct(&png, &info);
    const bool flushed = std::fflush(f.get()) == 0 && !std::ferror(f.get());
    f.reset();
    if (!flushed) {
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

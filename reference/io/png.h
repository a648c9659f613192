// PNG files: 8-bit gray, RGB or RGBA images, written atomically (tmp file + rename, so a failed
// write leaves no half-written image), read through libpng. The writer is the project's own
// (docs/png.md): rows filtered as libpng's default filter choice does, then deflated at zlib's level
// 6 in fixed runs of rows on every core, so a 1024 x 1024 image no longer takes a third of a second.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace zimage {

struct Image8 {
  int64_t height = 0, width = 0, channels = 3;  // row-major [H, W, C]
  std::vector<uint8_t> pixels;
};

// Throws zimage::Error naming the file on any failure; nothing is left at `path` then.
void write_png(const std::string& path, const Image8& img);
// The bytes write_png writes: a PNG file in memory (signature, IHDR, IDAT chunks of at most 1 MiB,
// IEND). The same bytes for any thread count.
std::vector<uint8_t> encode_png(const Image8& img);
// libpng's own encoder at its defaults (what write_png used before 2026-12-07, and what PIL's
// level 6 matches in size): the size and speed peer of encode_png in tests and the benchmark.
std::vector<uint8_t> encode_png_libpng(const Image8& img);
Image8 read_png(const std::string& path);  // 8-bit gray/RGB/RGBA as stored (tests, tools)

}  // namespace zimage

// PNG files through libpng: 8-bit RGB images, written atomically (tmp file +
// rename, so a failed write leaves no half-written image).
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
Image8 read_png(const std::string& path);  // 8-bit gray/RGB/RGBA as stored (tests, tools)

}  // namespace zimage

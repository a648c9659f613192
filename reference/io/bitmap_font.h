// A 5x7 pixel bitmap font of our own design for labels on generated images
// (contact sheets): printable ASCII 0x20..0x7E, 95 glyphs, lowercase distinct
// from uppercase. Every other byte (control characters, DEL, bytes >= 0x80)
// draws as the "unknown" glyph, a filled 5x7 box; a UTF-8 multi-byte sequence
// (its length read from the lead byte) is ONE unknown glyph. docs/contact_sheet.md.
#pragma once
#include <array>
#include <cstdint>
#include <string>

#include "io/png.h"

namespace zimage {

// Glyph cells are 6x9 pixels at scale 1 (5x7 glyph, 1 px spacing right, 2 px below);
// at scale s every font pixel is an s x s block. Scales below 1 throw zimage::Error.
int64_t text_width(const std::string& text, int scale);  // pixels: glyphs * 6 * scale, 0 for ""
int64_t text_height(int scale);                          // 9 * scale

// Draws text with its top-left at (x, y) in an 8-bit RGB image; only the glyph pixels
// are written (no background). Pixels outside the image are clipped (no crash for any
// x, y, including negative). Throws zimage::Error when img is not 3-channel or its
// pixel buffer does not match its shape.
void draw_text(Image8& img, int64_t x, int64_t y, const std::string& text, int scale,
               const std::array<uint8_t, 3>& rgb);

// text itself when text_width(text, scale) <= max_width; otherwise its longest glyph
// prefix followed by "..." that fits, or as many dots as fit when not even "..." fits
// (possibly ""). Cuts between glyphs, never inside a UTF-8 sequence.
std::string fit_text(const std::string& text, int64_t max_width, int scale);

}  // namespace zimage

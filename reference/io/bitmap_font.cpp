// The glyph data of io/bitmap_font.h (designed by hand for this project) and
// the text drawing: UTF-8 splitting into glyphs, scaling, clipping.
#include "io/bitmap_font.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "core/error.h"

namespace zimage {

namespace {

constexpr int kGlyphW = 5, kGlyphH = 7, kCellW = 6, kCellH = 9;
constexpr int kFirst = 0x20, kCount = 95, kUnknown = kCount;  // glyph index of the filled box
constexpr int kPerBank = 8;

// The 95 glyphs, 8 to a bank in code order from space (the last bank holds 7).
// Each bank is 7 rows, top to bottom; a row holds the bank's glyphs side by side,
// 5 columns each, separated by one space; '#' lights a pixel.
const char* const kBanks[][kGlyphH] = {
    // sp    !     "     #     $     %     &     '
    {"..... ..#.. .#.#. .#.#. ..#.. ##... .##.. ..#..",
     "..... ..#.. .#.#. .#.#. .#### ##..# #..#. ..#..",
     "..... ..#.. .#.#. ##### #.#.. ...#. #.#.. .#...",
     "..... ..#.. ..... .#.#. .###. ..#.. .#... .....",
     "..... ..#.. ..... ##### ..#.# .#... #.#.# .....",
     "..... ..... ..... .#.#. ####. #..## #..#. .....",
     "..... ..#.. ..... .#.#. ..#.. ...## .##.# ....."},
    // (     )     *     +     ,     -     .     /
    {"...#. .#... ..... ..... ..... ..... ..... ....#",
     "..#.. ..#.. ..#.. ..#.. ..... ..... ..... ....#",
     ".#... ...#. #.#.# ..#.. ..... ..... ..... ...#.",
     ".#... ...#. .###. ##### ..... .###. ..... ..#..",
     ".#... ...#. #.#.# ..#.. .##.. ..... ..... .#...",
     "..#.. ..#.. ..#.. ..#.. ..#.. ..... .##.. #....",
     "...#. .#... ..... ..... .#... ..... .##.. #...."},
    // 0     1     2     3     4     5     6     7
    {".###. ..#.. .###. ##### ...#. ##### ..##. #####",
     "#...# .##.. #...# ...#. ..##. #.... .#... ....#",
     "#..## #.#.. ....# ..#.. .#.#. ####. #.... ...#.",
     "#.#.# ..#.. ...#. ...#. #..#. ....# ####. ..#..",
     "##..# ..#.. ..#.. ....# ##### ....# #...# .#...",
     "#...# ..#.. .#... #...# ...#. #...# #...# .#...",
     ".###. ##### ##### .###. ...#. .###. .###. .#..."},
    // 8     9     :     ;     <     =     >     ?
    {".###. .###. ..... ..... ....# ..... #.... .###.",
     "#...# #...# .##.. .##.. ...#. ..... .#... #...#",
     "#...# #...# .##.. .##.. ..#.. ##### ..#.. ....#",
     ".###. .#### ..... ..... .#... ..... ...#. ...#.",
     "#...# ....# .##.. .##.. ..#.. ##### ..#.. ..#..",
     "#...# ...#. .##.. ..#.. ...#. ..... .#... .....",
     ".###. .##.. ..... .#... ....# ..... #.... ..#.."},
    // @     A     B     C     D     E     F     G
    {".###. .###. ####. .###. ###.. ##### ##### .###.",
     "#...# #...# #...# #...# #..#. #.... #.... #...#",
     "#.### #...# #...# #.... #...# #.... #.... #....",
     "#.#.# ##### ####. #.... #...# ####. ####. #.###",
     "#.### #...# #...# #.... #...# #.... #.... #...#",
     "#.... #...# #...# #...# #..#. #.... #.... #...#",
     ".###. #...# ####. .###. ###.. ##### #.... .####"},
    // H     I     J     K     L     M     N     O
    {"#...# .###. ..### #...# #.... #...# #...# .###.",
     "#...# ..#.. ...#. #..#. #.... ##.## #...# #...#",
     "#...# ..#.. ...#. #.#.. #.... #.#.# ##..# #...#",
     "##### ..#.. ...#. ##... #.... #.#.# #.#.# #...#",
     "#...# ..#.. ...#. #.#.. #.... #...# #..## #...#",
     "#...# ..#.. #..#. #..#. #.... #...# #...# #...#",
     "#...# .###. .##.. #...# ##### #...# #...# .###."},
    // P     Q     R     S     T     U     V     W
    {"####. .###. ####. .#### ##### #...# #...# #...#",
     "#...# #...# #...# #.... ..#.. #...# #...# #...#",
     "#...# #...# #...# #.... ..#.. #...# #...# #...#",
     "####. #...# ####. .###. ..#.. #...# #...# #.#.#",
     "#.... #.#.# #.#.. ....# ..#.. #...# #...# #.#.#",
     "#.... #..#. #..#. ....# ..#.. #...# .#.#. #.#.#",
     "#.... .##.# #...# ####. ..#.. .###. ..#.. .#.#."},
    // X     Y     Z     [     \     ]     ^     _
    {"#...# #...# ##### .###. #.... .###. ..#.. .....",
     "#...# #...# ....# .#... #.... ...#. .#.#. .....",
     ".#.#. .#.#. ...#. .#... .#... ...#. #...# .....",
     "..#.. ..#.. ..#.. .#... ..#.. ...#. ..... .....",
     ".#.#. ..#.. .#... .#... ...#. ...#. ..... .....",
     "#...# ..#.. #.... .#... ....# ...#. ..... .....",
     "#...# ..#.. ##### .###. ....# .###. ..... #####"},
    // `     a     b     c     d     e     f     g
    {".#... ..... #.... ..... ....# ..... ..##. .....",
     "..#.. ..... #.... ..... ....# ..... .#..# .##.#",
     "..... .###. ####. .#### .#### .###. .#... #..##",
     "..... ....# #...# #.... #...# #...# ###.. #...#",
     "..... .#### #...# #.... #...# ##### .#... .####",
     "..... #...# #...# #.... #...# #.... .#... ....#",
     "..... .#### ####. .#### .#### .###. .#... .###."},
    // h     i     j     k     l     m     n     o
    {"#.... ..#.. ...#. #.... .#... ..... ..... .....",
     "#.... ..... ..... #.... .#... ..... ..... .....",
     "#.##. .##.. ..##. #..#. .#... ##.#. #.##. .###.",
     "##..# ..#.. ...#. #.#.. .#... #.#.# ##..# #...#",
     "#...# ..#.. ...#. ##... .#... #.#.# #...# #...#",
     "#...# ..#.. #..#. #.#.. .#... #.#.# #...# #...#",
     "#...# .###. .##.. #..#. ..##. #.#.# #...# .###."},
    // p     q     r     s     t     u     v     w
    {"..... ..... ..... ..... .#... ..... ..... .....",
     "####. .##.# ..... ..... .#... ..... ..... .....",
     "#...# #..## #.##. .#### ###.. #...# #...# #...#",
     "#...# #...# ##..# #.... .#... #...# #...# #...#",
     "####. .#### #.... .###. .#... #...# #...# #.#.#",
     "#.... ....# #.... ....# .#..# #..## .#.#. #.#.#",
     "#.... ....# #.... ####. ..##. .##.# ..#.. .#.#."},
    // x     y     z     {     |     }     ~
    {"..... ..... ..... ...## ..#.. ##... .....",
     "..... #...# ..... ..#.. ..#.. ..#.. .....",
     "#...# #...# ##### ..#.. ..#.. ..#.. .#...",
     ".#.#. #...# ...#. .#... ..#.. ...#. #.#.#",
     "..#.. .#### ..#.. ..#.. ..#.. ..#.. ...#.",
     ".#.#. ....# .#... ..#.. ..#.. ..#.. .....",
     "#...# .###. ##### ...## ..#.. ##... ....."},
};

using Bitmap = std::array<uint8_t, kGlyphH>;  // one byte per row, bit 4 = leftmost column

// Parses kBanks once; a malformed bank is a bug in this file (std::logic_error).
std::vector<Bitmap> parse_banks() {
  std::vector<Bitmap> glyphs(kCount + 1);
  for (int g = 0; g < kCount; ++g) {
    const auto& bank = kBanks[g / kPerBank];
    const int in_bank = std::min(kPerBank, kCount - g / kPerBank * kPerBank);
    for (int r = 0; r < kGlyphH; ++r) {
      const std::string row = bank[r];
      if (static_cast<int>(row.size()) != in_bank * kCellW - 1)
        throw std::logic_error("bitmap_font: bank " + std::to_string(g / kPerBank) + " row has the wrong length");
      uint8_t bits = 0;
      for (int c = 0; c < kGlyphW; ++c) {
        const char p = row[(g % kPerBank) * kCellW + c];
        if (p != '#' && p != '.') throw std::logic_error("bitmap_font: glyph rows hold only '#' and '.'");
        bits = static_cast<uint8_t>(bits << 1 | (p == '#'));
      }
      glyphs[g][r] = bits;
    }
  }
  glyphs[kUnknown].fill((1 << kGlyphW) - 1);
  return glyphs;
}

const Bitmap& glyph_bitmap(int index) {
  static const std::vector<Bitmap> glyphs = parse_banks();
  return glyphs[index];
}

// How many bytes the glyph starting at text[i] spans: 1, or a UTF-8 sequence's length
// as its lead byte says, cut short where a continuation byte is missing.
size_t glyph_bytes(const std::string& text, size_t i) {
  const auto lead = static_cast<uint8_t>(text[i]);
  const size_t want = lead >= 0xF0 && lead <= 0xF7 ? 4 : lead >= 0xE0 && lead <= 0xEF ? 3
                      : lead >= 0xC0 && lead <= 0xDF ? 2 : 1;
  size_t n = 1;
  while (n < want && i + n < text.size() && (static_cast<uint8_t>(text[i + n]) & 0xC0) == 0x80) ++n;
  return n;
}

// The glyph index of each glyph of text, and where each starts in the bytes.
struct Glyphs {
  std::vector<int> index;
  std::vector<size_t> start;
};

Glyphs split_glyphs(const std::string& text) {
  Glyphs out;
  for (size_t i = 0; i < text.size(); i += glyph_bytes(text, i)) {
    const auto b = static_cast<uint8_t>(text[i]);
    out.index.push_back(b >= kFirst && b < kFirst + kCount ? b - kFirst : kUnknown);
    out.start.push_back(i);
  }
  return out;
}

void check_scale(int scale) {
  ZIMAGE_CHECK(scale >= 1, "text scale must be >= 1, not " + std::to_string(scale));
}

// Fills the image's part of the rectangle [x0, x0 + w) x [y0, y0 + h).
void fill_clipped(Image8& img, int64_t x0, int64_t y0, int64_t w, int64_t h, const std::array<uint8_t, 3>& rgb) {
  const int64_t xa = std::max<int64_t>(x0, 0), xb = std::min(x0 + w, img.width);
  const int64_t ya = std::max<int64_t>(y0, 0), yb = std::min(y0 + h, img.height);
  for (int64_t y = ya; y < yb; ++y)
    for (int64_t x = xa; x < xb; ++x) std::copy(rgb.begin(), rgb.end(), &img.pixels[(y * img.width + x) * 3]);
}

}  // namespace

int64_t text_width(const std::string& text, int scale) {
  check_scale(scale);
  return static_cast<int64_t>(split_glyphs(text).index.size()) * kCellW * scale;
}

int64_t text_height(int scale) {
  check_scale(scale);
  return int64_t{kCellH} * scale;
}

void draw_text(Image8& img, int64_t x, int64_t y, const std::string& text, int scale,
               const std::array<uint8_t, 3>& rgb) {
  check_scale(scale);
  ZIMAGE_CHECK(img.channels == 3, "draw_text needs a 3-channel image, not " + std::to_string(img.channels));
  ZIMAGE_CHECK(static_cast<int64_t>(img.pixels.size()) == img.height * img.width * 3,
               "draw_text: the pixel buffer does not match the image shape");
  // Early outs first, so that no sum below can overflow: past them x < width, y < height.
  if (x >= img.width || y >= img.height || y < -text_height(scale)) return;
  const int64_t cell = int64_t{kCellW} * scale;
  const Glyphs glyphs = split_glyphs(text);
  for (size_t g = 0; g < glyphs.index.size(); ++g) {
    const int64_t gx = x + static_cast<int64_t>(g) * cell;
    if (gx >= img.width) break;
    if (gx + cell <= 0) continue;
    const Bitmap& bitmap = glyph_bitmap(glyphs.index[g]);
    for (int r = 0; r < kGlyphH; ++r)
      for (int c = 0; c < kGlyphW; ++c)
        if (bitmap[r] >> (kGlyphW - 1 - c) & 1) fill_clipped(img, gx + c * scale, y + r * scale, scale, scale, rgb);
  }
}

std::string fit_text(const std::string& text, int64_t max_width, int scale) {
  check_scale(scale);
  const int64_t cell = int64_t{kCellW} * scale;
  const Glyphs glyphs = split_glyphs(text);
  const auto n = static_cast<int64_t>(glyphs.index.size());
  if (n * cell <= max_width) return text;
  const int64_t room = std::max<int64_t>(max_width, 0) / cell;  // glyphs that fit
  if (room < 3) return std::string(room, '.');
  return text.substr(0, glyphs.start[room - 3]) + "...";
}

}  // namespace zimage

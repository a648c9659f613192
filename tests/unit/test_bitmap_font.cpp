// The 5x7 label font (reference/io/bitmap_font.h): every glyph lit and distinct,
// the look-alikes apart, UTF-8 sequences as one unknown glyph, widths, scaling,
// clipping at any coordinates, and cutting labels with "...".
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/bitmap_font.h"

namespace zimage {
namespace {

constexpr std::array<uint8_t, 3> kInk{0, 0, 0};

Image8 canvas(int64_t h, int64_t w, uint8_t v) { return Image8{h, w, 3, std::vector<uint8_t>(h * w * 3, v)}; }

// 1 where `text` at `scale`, drawn black on white at (0, 0), lit a pixel; row-major over its cells.
std::vector<uint8_t> mask(const std::string& text, int scale = 1) {
  Image8 img = canvas(text_height(scale), std::max<int64_t>(text_width(text, scale), 1), 255);
  draw_text(img, 0, 0, text, scale, kInk);
  std::vector<uint8_t> m(img.height * img.width);
  for (size_t i = 0; i < m.size(); ++i) m[i] = img.pixels[i * 3] == 0;
  return m;
}

int lit(const std::vector<uint8_t>& m) { return static_cast<int>(std::count(m.begin(), m.end(), 1)); }

int differing(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  int n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += a[i] != b[i];
  return n;
}

std::string printable(int c) { return std::string(1, static_cast<char>(c)); }

TEST(BitmapFont, EveryPrintableGlyphLightsAPixel_ExceptSpace_AndOnlyInside5x7) {
  for (int c = 0x20; c <= 0x7E; ++c) {
    const std::vector<uint8_t> m = mask(printable(c));
    ASSERT_EQ(m.size(), 6u * 9u);
    if (c == ' ')
      EXPECT_EQ(lit(m), 0);
    else
      EXPECT_GT(lit(m), 0) << "glyph '" << printable(c) << "' is blank";
    for (int y = 0; y < 9; ++y)
      for (int x = 0; x < 6; ++x) {
        if (x < 5 && y < 7) continue;
        EXPECT_EQ(m[y * 6 + x], 0) << "'" << printable(c) << "' lights spacing pixel " << x << "," << y;
      }
  }
}

TEST(BitmapFont, All95GlyphsArePairwiseDistinct_AndNoneIsTheUnknownBox) {
  std::vector<std::vector<uint8_t>> masks;
  for (int c = 0x20; c <= 0x7E; ++c) masks.push_back(mask(printable(c)));
  const std::vector<uint8_t> unknown = mask("\x01");
  for (size_t a = 0; a < masks.size(); ++a) {
    EXPECT_NE(masks[a], unknown) << "'" << printable(0x20 + a) << "'";
    for (size_t b = a + 1; b < masks.size(); ++b)
      EXPECT_NE(masks[a], masks[b]) << "'" << printable(0x20 + a) << "' and '" << printable(0x20 + b) << "'";
  }
}

// Look-alikes must differ in at least 3 pixels, not 1, to be told apart at a glance.
TEST(BitmapFont, LookAlikesDifferIn3PixelsOrMore_l_1_I_bar_O_0_Q_D_g_9_q_S_5_B_8_Z_2_c_o) {
  const std::vector<std::string> groups = {"l1I|", "O0QD", "g9q", "S5", "B8", "Z2", "co0", "uv", "rn"};
  for (const std::string& g : groups)
    for (size_t a = 0; a < g.size(); ++a)
      for (size_t b = a + 1; b < g.size(); ++b)
        EXPECT_GE(differing(mask(g.substr(a, 1)), mask(g.substr(b, 1))), 3) << "'" << g[a] << "' vs '" << g[b] << "'";
}

TEST(BitmapFont, EveryLowercaseLetterDiffersFromItsUppercase) {
  for (char c = 'a'; c <= 'z'; ++c)
    EXPECT_NE(mask(std::string(1, c)), mask(std::string(1, static_cast<char>(c - 'a' + 'A')))) << c;
}

TEST(BitmapFont, UnknownGlyphIsAFilled5x7Box) {
  const std::vector<uint8_t> m = mask("\x01");
  EXPECT_EQ(lit(m), 35);
  for (int y = 0; y < 7; ++y)
    for (int x = 0; x < 5; ++x) EXPECT_EQ(m[y * 6 + x], 1) << x << "," << y;
}

TEST(BitmapFont, Utf8_e_acute_IsOneUnknownGlyph) {
  const std::string e_acute = "\xC3\xA9";
  EXPECT_EQ(text_width(e_acute, 1), 6);
  EXPECT_EQ(mask(e_acute), mask("\x01"));
}

// Bytes, and the glyphs they draw as: 'U' = the unknown box.
struct GlyphSplit {
  std::string name, bytes, glyphs;
};
void PrintTo(const GlyphSplit& p, std::ostream* os) { *os << p.name; }

class BitmapFontSplit : public ::testing::TestWithParam<GlyphSplit> {};

TEST_P(BitmapFontSplit, DrawsAsTheExpectedGlyphs) {
  const GlyphSplit& p = GetParam();
  std::string expected = p.glyphs;
  for (char& c : expected)
    if (c == 'U') c = '\x01';
  EXPECT_EQ(text_width(p.bytes, 1), static_cast<int64_t>(6 * p.glyphs.size()));
  EXPECT_EQ(mask(p.bytes), mask(expected));
}

INSTANTIATE_TEST_SUITE_P(
    Bytes, BitmapFontSplit,
    ::testing::Values(GlyphSplit{"tab", "\t", "U"}, GlyphSplit{"del", "\x7F", "U"},
                      GlyphSplit{"nul_between_a_b", std::string("a\0b", 3), "aUb"},
                      GlyphSplit{"cafe_e_acute_bang", "caf\xC3\xA9!", "cafU!"},
                      GlyphSplit{"euro_3_bytes", "\xE2\x82\xAC", "U"},
                      GlyphSplit{"emoji_4_bytes_then_x", "\xF0\x9F\x98\x80x", "Ux"},
                      GlyphSplit{"lone_continuation_then_A", "\x80" "A", "UA"},
                      GlyphSplit{"truncated_3_byte_then_A", "\xE2\x82" "A", "UA"},
                      GlyphSplit{"lead_at_the_end", "ab\xC3", "abU"},
                      GlyphSplit{"bytes_FF_FE", "\xFF\xFE", "UU"}),
    [](const auto& i) { return i.param.name; });

TEST(BitmapFont, TextWidthAndHeight_Scale1_Scale3) {
  EXPECT_EQ(text_width("", 1), 0);
  EXPECT_EQ(text_width("", 3), 0);
  EXPECT_EQ(text_width("a", 1), 6);
  EXPECT_EQ(text_width("abc", 1), 18);
  EXPECT_EQ(text_width("abc", 3), 54);
  EXPECT_EQ(text_width("seed 42", 2), 84);
  EXPECT_EQ(text_height(1), 9);
  EXPECT_EQ(text_height(3), 27);
  EXPECT_THROW(text_width("a", 0), Error);
  EXPECT_THROW(text_height(-1), Error);
}

TEST(BitmapFont, Scale3_IsScale1_WithEveryPixelA3x3Block) {
  const std::string text = "Ag~";
  const std::vector<uint8_t> small = mask(text, 1), big = mask(text, 3);
  const int64_t w1 = text_width(text, 1), w3 = text_width(text, 3);
  ASSERT_EQ(big.size(), small.size() * 9);
  for (int64_t y = 0; y < text_height(3); ++y)
    for (int64_t x = 0; x < w3; ++x) ASSERT_EQ(big[y * w3 + x], small[(y / 3) * w1 + x / 3]) << x << "," << y;
}

TEST(BitmapFont, DrawTextRefusesANon3ChannelImage) {
  Image8 gray{9, 6, 1, std::vector<uint8_t>(54, 255)};
  EXPECT_THROW(draw_text(gray, 0, 0, "a", 1, kInk), Error);
}

// Clipping: a 20x30 canvas; "Wg#@" at scale 2 (48x18) drawn at (x, y). The pixels inside must be
// those of the same text drawn on a canvas large enough to hold it; nothing else may change.
struct ClipCase {
  std::string name;
  int64_t x, y;
  bool visible;  // some glyph pixel lands in the canvas
};
void PrintTo(const ClipCase& p, std::ostream* os) { *os << p.name; }

class BitmapFontClip : public ::testing::TestWithParam<ClipCase> {};

TEST_P(BitmapFontClip, OnlyInImagePixelsChange) {
  const ClipCase& p = GetParam();
  const std::string text = "Wg#@";
  const int64_t h = 20, w = 30, margin = 100;
  Image8 img = canvas(h, w, 77);
  draw_text(img, p.x, p.y, text, 2, kInk);
  Image8 expected = canvas(h, w, 77);
  if (p.x >= -margin && p.x <= margin && p.y >= -margin && p.y <= margin) {
    Image8 big = canvas(h + 2 * margin, w + 2 * margin, 77);
    draw_text(big, p.x + margin, p.y + margin, text, 2, kInk);
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w * 3; ++x)
        expected.pixels[y * w * 3 + x] = big.pixels[((y + margin) * big.width + margin) * 3 + x];
  }
  EXPECT_EQ(img.pixels, expected.pixels);
  EXPECT_EQ(img.pixels != canvas(h, w, 77).pixels, p.visible);
}

INSTANTIATE_TEST_SUITE_P(
    At, BitmapFontClip,
    ::testing::Values(ClipCase{"x0_y0", 0, 0, true}, ClipCase{"x_minus7_y_minus5", -7, -5, true},
                      ClipCase{"x20_y10", 20, 10, true}, ClipCase{"x29_y19_one_corner_pixel", 29, 19, true},
                      ClipCase{"x30_y0_right_of_it", 30, 0, false}, ClipCase{"x0_y20_below_it", 0, 20, false},
                      ClipCase{"x_minus48_y0_left_of_it", -48, 0, false},
                      ClipCase{"x0_y_minus18_above_it", 0, -18, false},
                      ClipCase{"x_minus100_y_minus100", -100, -100, false},
                      ClipCase{"x_int64min_y_int64min", INT64_MIN, INT64_MIN, false},
                      ClipCase{"x_int64max_y_int64max", INT64_MAX, INT64_MAX, false},
                      ClipCase{"x_int64min_y0", INT64_MIN, 0, false}, ClipCase{"x0_y_int64max", 0, INT64_MAX, false},
                      ClipCase{"x_int64max_y_int64min", INT64_MAX, INT64_MIN, false}),
    [](const auto& i) { return i.param.name; });

TEST(BitmapFont, FitText_CutsWithDotsBetweenGlyphs) {
  const std::string hello = "hello world";  // 11 glyphs, 66 px at scale 1
  EXPECT_EQ(fit_text(hello, 66, 1), hello);
  EXPECT_EQ(fit_text(hello, 1000, 1), hello);
  EXPECT_EQ(fit_text(hello, 65, 1), "hello w...");
  EXPECT_EQ(fit_text(hello, 48, 1), "hello...");
  EXPECT_EQ(fit_text(hello, 48, 2), "h...");
  EXPECT_EQ(fit_text(hello, 18, 1), "...");
  EXPECT_EQ(fit_text(hello, 17, 1), "..");
  EXPECT_EQ(fit_text(hello, 5, 1), "");
  EXPECT_EQ(fit_text(hello, -3, 1), "");
  EXPECT_EQ(fit_text("", 0, 1), "");
  const std::string e = "\xC3\xA9";
  EXPECT_EQ(fit_text(e + e + e + e + e, 24, 1), e + "...");  // never half a sequence
  for (int64_t room = 0; room < 80; ++room) EXPECT_LE(text_width(fit_text(hello, room, 1), 1), room);
}

}  // namespace
}  // namespace zimage

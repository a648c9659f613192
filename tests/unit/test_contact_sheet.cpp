// The contact sheet (reference/io/contact_sheet.h): fitted sizes, the box filter and
// nearest enlargement on hand-computed pixels, images placed where the layout says,
// the size formula against rendered sheets, empty cells, labels, and every refusal.
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/bitmap_font.h"
#include "io/contact_sheet.h"

namespace zimage {
namespace {

Image8 solid(int64_t h, int64_t w, uint8_t v) { return Image8{h, w, 3, std::vector<uint8_t>(h * w * 3, v)}; }

// An image from per-pixel RGB triples, row-major.
Image8 from_rgb(int64_t h, int64_t w, const std::vector<std::array<uint8_t, 3>>& px) {
  Image8 img = solid(h, w, 0);
  for (size_t i = 0; i < px.size(); ++i) std::copy(px[i].begin(), px[i].end(), &img.pixels[i * 3]);
  return img;
}

std::array<uint8_t, 3> pixel(const Image8& img, int64_t y, int64_t x) {
  const uint8_t* p = &img.pixels[(y * img.width + x) * 3];
  return {p[0], p[1], p[2]};
}

constexpr std::array<uint8_t, 3> kWhite{255, 255, 255};

// A sheet with empty labels (so label strips stay white) over the given cells.
ContactSheet grid(const std::vector<std::vector<const Image8*>>& cells) {
  ContactSheet s;
  s.cells = cells;
  s.row_labels.assign(cells.size(), "");
  s.column_labels.assign(cells.empty() ? 0 : cells[0].size(), "");
  return s;
}

struct FitCase {
  int64_t h, w, cell, fitted_h, fitted_w;
};
void PrintTo(const FitCase& p, std::ostream* os) { *os << p.h << "x" << p.w << " in " << p.cell; }

class ContactSheetFittedSize : public ::testing::TestWithParam<FitCase> {};

TEST_P(ContactSheetFittedSize, IsTheDocumentedSize) {
  const FitCase& p = GetParam();
  EXPECT_EQ(fitted_size(p.h, p.w, p.cell), std::make_pair(p.fitted_h, p.fitted_w));
  const Image8 fitted = fit_image(solid(p.h, p.w, 9), p.cell);
  EXPECT_EQ(fitted.height, p.fitted_h);
  EXPECT_EQ(fitted.width, p.fitted_w);
}

INSTANTIATE_TEST_SUITE_P(
    FittedSize, ContactSheetFittedSize,
    ::testing::Values(FitCase{512, 512, 256, 256, 256},  // down by 2
                      FitCase{32, 32, 256, 256, 256},    // up by 8
                      FitCase{256, 256, 256, 256, 256},  // equal
                      FitCase{64, 32, 16, 16, 8}, FitCase{32, 64, 16, 8, 16},
                      FitCase{100, 300, 256, 50, 150},   // f = 2
                      FitCase{1024, 768, 256, 256, 192},  // f = 4
                      FitCase{257, 100, 256, 129, 50},   // f = 2, ceil
                      FitCase{17, 17, 16, 9, 9},         // f = 2, ceil
                      FitCase{1000, 1, 256, 250, 1},     // never below 1 px
                      FitCase{200, 100, 256, 200, 100},  // f = 1: kept
                      FitCase{3, 5, 16, 9, 15}),         // up by 3
    [](const auto& i) {
      const FitCase& p = i.param;
      return std::to_string(p.h) + "x" + std::to_string(p.w) + "_in_" + std::to_string(p.cell);
    });

TEST(ContactSheet, FittedSize_RefusesEmptySizes) {
  EXPECT_THROW(fitted_size(0, 4, 16), Error);
  EXPECT_THROW(fitted_size(4, -1, 16), Error);
  EXPECT_THROW(fitted_size(4, 4, 0), Error);
}

// 4x4 -> 2x2 (cell 2, f = 2). Each 2x2 block's top-left pixel differs from its rounded mean,
// so nearest sampling fails; the .5 means fail truncation.
TEST(ContactSheet, FitImage_BoxFilter_4x4_to_2x2_MeansRoundedHalfUp) {
  // R:  0   1 | 10  10      G: constant 7      B:  3   4 | 100 101
  //     0   0 | 11  10                             4   3 | 102 103
  //     0   1 | 254 255                            1   2 |   9   9
  //     1   0 | 255 254                            2   2 |   9   8
  const uint8_t r[16] = {0, 1, 10, 10, 0, 0, 11, 10, 0, 1, 254, 255, 1, 0, 255, 254};
  const uint8_t b[16] = {3, 4, 100, 101, 4, 3, 102, 103, 1, 2, 9, 9, 2, 2, 9, 8};
  std::vector<std::array<uint8_t, 3>> px;
  for (int i = 0; i < 16; ++i) px.push_back({r[i], 7, b[i]});
  const Image8 out = fit_image(from_rgb(4, 4, px), 2);
  ASSERT_EQ(out.height, 2);
  ASSERT_EQ(out.width, 2);
  // R means: 1/4 -> 0, 41/4 -> 10, 2/4 -> 1, 1018/4 = 254.5 -> 255.
  // B means: 14/4 = 3.5 -> 4, 406/4 = 101.5 -> 102, 7/4 -> 2, 35/4 -> 9.
  const std::vector<uint8_t> expected = {0, 7, 4, 10, 7, 102, 1, 7, 2, 255, 7, 9};
  EXPECT_EQ(out.pixels, expected);
}

// 3x3 -> 2x2 (cell 2, f = 2): blocks cut by the edge average the pixels they hold.
TEST(ContactSheet, FitImage_BoxFilter_3x3_to_2x2_EdgeBlocksAverageWhatTheyHold) {
  //  10 20 | 31
  //  30 40 | 50
  //  ------+---
  //  61 70 | 99
  std::vector<std::array<uint8_t, 3>> px;
  for (uint8_t v : {10, 20, 31, 30, 40, 50, 61, 70, 99}) px.push_back({v, v, v});
  const Image8 out = fit_image(from_rgb(3, 3, px), 2);
  ASSERT_EQ(out.height, 2);
  ASSERT_EQ(out.width, 2);
  // 100/4 = 25; 81/2 = 40.5 -> 41; 131/2 = 65.5 -> 66; 99.
  EXPECT_EQ(pixel(out, 0, 0), (std::array<uint8_t, 3>{25, 25, 25}));
  EXPECT_EQ(pixel(out, 0, 1), (std::array<uint8_t, 3>{41, 41, 41}));
  EXPECT_EQ(pixel(out, 1, 0), (std::array<uint8_t, 3>{66, 66, 66}));
  EXPECT_EQ(pixel(out, 1, 1), (std::array<uint8_t, 3>{99, 99, 99}));
}

TEST(ContactSheet, FitImage_Nearest_2x2_to_4x4) {
  const Image8 img = from_rgb(2, 2, {{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {10, 11, 12}});
  const Image8 out = fit_image(img, 4);
  ASSERT_EQ(out.height, 4);
  ASSERT_EQ(out.width, 4);
  for (int64_t y = 0; y < 4; ++y)
    for (int64_t x = 0; x < 4; ++x) EXPECT_EQ(pixel(out, y, x), pixel(img, y / 2, x / 2)) << x << "," << y;
}

// Cell 16 (scale 1, line 9, gap 4), no title: header = 4 + (9 + 4) = 17, row 0's cells at
// y = 17 + 9 = 26; column 1 at x = 4 + (16 + 4) = 24. Sheet 44 wide, 17 + 9 + 16 + 4 = 46 high.
TEST(ContactSheet, Sheet_2x2Image_In16Cell_Is8pxBlocksAtRow0Column1) {
  const Image8 img = from_rgb(2, 2, {{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {10, 11, 12}});
  const Image8 blank = solid(16, 16, 255);
  const Image8 out = render_contact_sheet(grid({{&blank, &img}}), 16);
  ASSERT_EQ(out.height, 46);
  ASSERT_EQ(out.width, 44);
  for (int64_t y = 0; y < out.height; ++y)
    for (int64_t x = 0; x < out.width; ++x) {
      const bool inside = y >= 26 && y < 42 && x >= 24 && x < 40;
      EXPECT_EQ(pixel(out, y, x), inside ? pixel(img, (y - 26) / 8, (x - 24) / 8) : kWhite) << x << "," << y;
    }
}

// A 32x32 image with R = x, G = y in a 16 px cell: each output pixel averages x = 2i, 2i + 1
// (and y likewise): 2i + 0.5 rounds up to 2i + 1.
TEST(ContactSheet, Sheet_32x32Image_In16Cell_IsBoxFiltered) {
  Image8 img = solid(32, 32, 0);
  for (int64_t y = 0; y < 32; ++y)
    for (int64_t x = 0; x < 32; ++x) {
      img.pixels[(y * 32 + x) * 3] = static_cast<uint8_t>(x);
      img.pixels[(y * 32 + x) * 3 + 1] = static_cast<uint8_t>(y);
    }
  const Image8 out = render_contact_sheet(grid({{&img}}), 16);
  for (int64_t j = 0; j < 16; ++j)
    for (int64_t i = 0; i < 16; ++i)
      ASSERT_EQ(pixel(out, 26 + j, 4 + i), (std::array<uint8_t, 3>{uint8_t(2 * i + 1), uint8_t(2 * j + 1), 0}))
          << i << "," << j;
}

// An 8x16 image keeps its size in a 16 px cell (f = 1) and is centred: rows 4..11 of the cell.
TEST(ContactSheet, Sheet_8x16Image_In16Cell_IsCentredVertically) {
  const Image8 img = solid(8, 16, 0);
  const Image8 out = render_contact_sheet(grid({{&img}}), 16);
  for (int64_t dy = 0; dy < 16; ++dy)
    for (int64_t x = 4; x < 20; ++x)
      EXPECT_EQ(pixel(out, 26 + dy, x)[0], dy >= 4 && dy < 12 ? 0 : 255) << x << "," << dy;
}

TEST(ContactSheet, NullCell_IsMidGreyWithADarkX) {
  const Image8 out = render_contact_sheet(grid({{nullptr}}), 16);
  for (int64_t dy = 0; dy < 16; ++dy)
    for (int64_t dx = 0; dx < 16; ++dx) {
      const bool on_x = dx == dy || dx + dy == 15;
      const uint8_t v = on_x ? 64 : 128;
      EXPECT_EQ(pixel(out, 26 + dy, 4 + dx), (std::array<uint8_t, 3>{v, v, v})) << dx << "," << dy;
    }
}

TEST(ContactSheet, TextScale_1_UpTo128_2_UpTo512_3_Above) {
  EXPECT_EQ(contact_sheet_text_scale(16), 1);
  EXPECT_EQ(contact_sheet_text_scale(128), 1);
  EXPECT_EQ(contact_sheet_text_scale(129), 2);
  EXPECT_EQ(contact_sheet_text_scale(512), 2);
  EXPECT_EQ(contact_sheet_text_scale(513), 3);
  EXPECT_EQ(contact_sheet_text_scale(1024), 3);
}

// Hand numbers from the header's formula. 2 rows x 3 columns, cell 256, title: scale 2, line 18,
// gap 8: width 8 + 3 * 264 = 800, height 8 + 26 + 26 + 2 * (18 + 256 + 8) = 624.
TEST(ContactSheet, Size_2x3_Cell256_WithTitle_Is624x800) {
  ContactSheet s = grid({{nullptr, nullptr, nullptr}, {nullptr, nullptr, nullptr}});
  s.title = "t";
  EXPECT_EQ(contact_sheet_size(s, 256), std::make_pair(int64_t{624}, int64_t{800}));
  s.title.clear();  // no title line: 26 px less
  EXPECT_EQ(contact_sheet_size(s, 256), std::make_pair(int64_t{598}, int64_t{800}));
}

// min_width widens the sheet (room for long row labels) and nothing else: the cells stay where
// they were, the label strip gets the room, the right side is white.
TEST(ContactSheet, MinWidth_1x1_Cell32_Widened_To200) {
  const Image8 black{32, 32, 3, std::vector<uint8_t>(32 * 32 * 3, 0)};
  ContactSheet s = grid({{&black}});
  s.row_labels = {"a label much longer than one cell of 32 px"};
  const Image8 narrow = render_contact_sheet(s, 32);
  EXPECT_EQ(narrow.width, 4 + 36);
  s.min_width = 200;
  EXPECT_EQ(contact_sheet_size(s, 32), std::make_pair(narrow.height, int64_t{200}));
  const Image8 wide = render_contact_sheet(s, 32);
  ASSERT_EQ(wide.width, 200);
  int64_t inked_right = 0;  // label pixels right of the narrow sheet's edge
  for (int64_t y = 0; y < wide.height; ++y)
    for (int64_t x = narrow.width; x < wide.width; ++x) inked_right += wide.pixels[size_t((y * wide.width + x) * 3)] != 255;
  EXPECT_GT(inked_right, 0) << "the longer label should use the room";
  // The cell is where it was: the 32x32 black block at the same place in both.
  const int64_t cy = narrow.height - 4 - 32, cx = 4;
  for (int64_t y = cy; y < cy + 32; ++y)
    for (int64_t x = cx; x < cx + 32; ++x) {
      EXPECT_EQ(wide.pixels[size_t((y * wide.width + x) * 3)], 0);
      EXPECT_EQ(narrow.pixels[size_t((y * narrow.width + x) * 3)], 0);
    }
  s.min_width = -1;
  EXPECT_THROW(contact_sheet_size(s, 32), Error);
}

struct SizeCase {
  int64_t rows, columns, cell;
  bool title;
};
void PrintTo(const SizeCase& p, std::ostream* os) { *os << p.rows << "x" << p.columns << " cell " << p.cell; }

class ContactSheetSize : public ::testing::TestWithParam<SizeCase> {};

TEST_P(ContactSheetSize, EqualsTheRenderedSize) {
  const SizeCase& p = GetParam();
  const Image8 small = solid(5, 7, 40), big = solid(300, 200, 90);
  ContactSheet s;
  if (p.title) s.title = "a title that is long enough to be cut on narrow sheets, surely";
  for (int64_t c = 0; c < p.columns; ++c) s.column_labels.push_back("seed " + std::to_string(c));
  for (int64_t r = 0; r < p.rows; ++r) {
    s.row_labels.push_back("cfg " + std::to_string(r));
    s.cells.emplace_back();
    for (int64_t c = 0; c < p.columns; ++c) s.cells[r].push_back((r + c) % 3 == 0 ? nullptr : (r + c) % 3 == 1 ? &small : &big);
  }
  const Image8 out = render_contact_sheet(s, p.cell);
  EXPECT_EQ(contact_sheet_size(s, p.cell), std::make_pair(out.height, out.width));
  EXPECT_EQ(static_cast<int64_t>(out.pixels.size()), out.height * out.width * 3);
  const int64_t scale = contact_sheet_text_scale(p.cell), line = 9 * scale, gap = 4 * scale;
  EXPECT_EQ(out.width, gap + p.columns * (p.cell + gap));
  EXPECT_EQ(out.height, gap + (p.title ? line + gap : 0) + line + gap + p.rows * (line + p.cell + gap));
}

INSTANTIATE_TEST_SUITE_P(
    Grids, ContactSheetSize,
    ::testing::Values(SizeCase{1, 1, 16, false}, SizeCase{1, 1, 16, true}, SizeCase{2, 3, 64, true},
                      SizeCase{3, 1, 129, true}, SizeCase{1, 4, 128, false}, SizeCase{4, 2, 100, false},
                      SizeCase{2, 2, 600, true}),
    [](const auto& i) {
      const SizeCase& p = i.param;
      return std::to_string(p.rows) + "x" + std::to_string(p.columns) + "_cell" + std::to_string(p.cell) +
             (p.title ? "_title" : "_no_title");
    });

// Column label cut to its 32 px column: "seed 1234567" -> "se..." (30 px), centred at x = 4 + 1.
TEST(ContactSheet, LongColumnLabel_IsCutAndCentredOverItsColumn) {
  ContactSheet s = grid({{nullptr, nullptr}});
  s.column_labels = {"seed 1234567", ""};
  const Image8 out = render_contact_sheet(s, 32);
  Image8 expected = solid(out.height, out.width, 255);
  draw_text(expected, 5, 4, "se...", 1, {0, 0, 0});
  for (int64_t y = 4; y < 13; ++y)  // the column label line
    for (int64_t x = 0; x < out.width; ++x) EXPECT_EQ(pixel(out, y, x), pixel(expected, y, x)) << x << "," << y;
}

// Title at (gap, gap) and row labels at (gap, strip top), black on white, cut to width - 2 gap.
TEST(ContactSheet, TitleAndRowLabel_AreBlackOnWhite_AtTheLayoutsPlaces) {
  ContactSheet s = grid({{nullptr}});
  s.title = "Title that will not fit";
  s.row_labels = {"row"};
  const Image8 out = render_contact_sheet(s, 16);  // width 24: room for 16 px = 2 glyphs
  ASSERT_EQ(fit_text(s.title, 16, 1), "..");
  Image8 expected = solid(out.height, out.width, 255);
  draw_text(expected, 4, 4, "..", 1, {0, 0, 0});          // title line: y 4..12
  draw_text(expected, 4, 4 + 13 + 13, "..", 1, {0, 0, 0});  // row strip: y 30..38 ("row" is 18 px)
  for (int64_t y = 0; y < 39; ++y)
    for (int64_t x = 0; x < out.width; ++x) EXPECT_EQ(pixel(out, y, x), pixel(expected, y, x)) << x << "," << y;
}

// Each refusal: a one-line zimage::Error naming what is wrong.
struct BadSheet {
  std::string name;
  ContactSheet sheet;
  int64_t cell;
  std::string says;
  bool counts_only;  // contact_sheet_size refuses it too
};
void PrintTo(const BadSheet& p, std::ostream* os) { *os << p.name; }

const Image8 kGood = solid(4, 4, 1);
const Image8 kGray{4, 4, 1, std::vector<uint8_t>(16, 1)};
const Image8 kRgba{4, 4, 4, std::vector<uint8_t>(64, 1)};
const Image8 kEmpty{0, 0, 3, {}};
const Image8 kShort{4, 4, 3, std::vector<uint8_t>(47, 1)};

ContactSheet with_image(const Image8* img) { return grid({{&kGood, img}}); }

std::vector<BadSheet> bad_sheets() {
  ContactSheet more_row_labels = grid({{&kGood}, {&kGood}});
  more_row_labels.row_labels.push_back("extra");
  ContactSheet short_row = grid({{&kGood, &kGood, &kGood}, {&kGood, &kGood, &kGood}});
  short_row.cells[1].pop_back();
  ContactSheet no_columns = grid({{}});
  return {
      {"RowLabels_3_for_2_rows", more_row_labels, 64, "3 row labels for 2 rows", true},
      {"Row1_has_2_cells_for_3_columns", short_row, 64, "row 1 has 2 cells for 3 column labels", true},
      {"NoRows", grid({}), 64, "empty", true},
      {"NoColumns", no_columns, 64, "empty", true},
      {"CellPx_15", with_image(&kGood), 15, "cell_px must be >= 16, not 15", true},
      {"CellPx_0", with_image(&kGood), 0, "cell_px", true},
      {"CellPx_negative", with_image(&kGood), -256, "cell_px", true},
      {"Image_1_channel", with_image(&kGray), 64, "row 0, column 1 has 1 channels (3 needed)", false},
      {"Image_4_channels", with_image(&kRgba), 64, "4 channels", false},
      {"Image_0x0", with_image(&kEmpty), 64, "row 0, column 1 is empty", false},
      {"Image_buffer_short", with_image(&kShort), 64, "does not match", false},
  };
}

class ContactSheetErrors : public ::testing::TestWithParam<BadSheet> {};

TEST_P(ContactSheetErrors, ThrowsAOneLineMessage) {
  const BadSheet& p = GetParam();
  try {
    render_contact_sheet(p.sheet, p.cell);
    FAIL() << "expected zimage::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(p.says), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  if (p.counts_only)
    EXPECT_THROW(contact_sheet_size(p.sheet, p.cell), Error);
  else
    EXPECT_NO_THROW(contact_sheet_size(p.sheet, p.cell));
}

INSTANTIATE_TEST_SUITE_P(Refused, ContactSheetErrors, ::testing::ValuesIn(bad_sheets()),
                         [](const auto& i) { return i.param.name; });

}  // namespace
}  // namespace zimage

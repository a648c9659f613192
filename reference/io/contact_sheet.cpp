// The contact sheet of io/contact_sheet.h: count checks, the layout arithmetic,
// image fitting (box filter down, nearest neighbour up) and drawing.
#include "io/contact_sheet.h"

#include <algorithm>
#include <array>
#include <cstdlib>

#include "core/error.h"
#include "io/bitmap_font.h"

namespace zimage {

namespace {

constexpr std::array<uint8_t, 3> kBlack{0, 0, 0};
constexpr std::array<uint8_t, 3> kMidGrey{128, 128, 128}, kDarkGrey{64, 64, 64};

// The layout's lengths in pixels (contact_sheet.h).
struct Layout {
  int scale;
  int64_t cell, line, gap, rows, columns, header;  // header: everything above row 0's label strip
  int64_t min_width = 0;

  int64_t width() const { return std::max(gap + columns * (cell + gap), min_width); }
  int64_t height() const { return header + rows * (line + cell + gap); }
  int64_t cell_x(int64_t c) const { return gap + c * (cell + gap); }
  int64_t row_label_y(int64_t r) const { return header + r * (line + cell + gap); }
  int64_t cell_y(int64_t r) const { return row_label_y(r) + line; }
};

std::string at(size_t r, size_t c) {
  return "row " + std::to_string(r) + ", column " + std::to_string(c);
}

Layout layout_of(const ContactSheet& sheet, int64_t cell_px) {
  ZIMAGE_CHECK(cell_px >= 16, "contact sheet: cell_px must be >= 16, not " + std::to_string(cell_px));
  ZIMAGE_CHECK(!sheet.cells.empty(), "contact sheet: the grid is empty (no rows of cells)");
  ZIMAGE_CHECK(!sheet.column_labels.empty(), "contact sheet: the grid is empty (no column labels)");
  ZIMAGE_CHECK(sheet.row_labels.size() == sheet.cells.size(),
               "contact sheet: " + std::to_string(sheet.row_labels.size()) + " row labels for " +
                   std::to_string(sheet.cells.size()) + " rows of cells");
  for (size_t r = 0; r < sheet.cells.size(); ++r)
    ZIMAGE_CHECK(sheet.cells[r].size() == sheet.column_labels.size(),
                 "contact sheet: row " + std::to_string(r) + " has " + std::to_string(sheet.cells[r].size()) +
                     " cells for " + std::to_string(sheet.column_labels.size()) + " column labels");
  Layout l{};
  l.scale = contact_sheet_text_scale(cell_px);
  l.cell = cell_px;
  l.line = text_height(l.scale);
  l.gap = 4 * l.scale;
  l.rows = static_cast<int64_t>(sheet.cells.size());
  l.columns = static_cast<int64_t>(sheet.column_labels.size());
  l.header = l.gap + (sheet.title.empty() ? 0 : l.line + l.gap) + l.line + l.gap;
  ZIMAGE_CHECK(sheet.min_width >= 0 && sheet.min_width <= 65536,
               "contact sheet: min_width must be 0 .. 65536, not " + std::to_string(sheet.min_width));
  l.min_width = sheet.min_width;
  return l;
}

void check_image(const Image8& img, size_t r, size_t c) {
  ZIMAGE_CHECK(img.channels == 3, "contact sheet: the image at " + at(r, c) + " has " +
                                      std::to_string(img.channels) + " channels (3 needed)");
  ZIMAGE_CHECK(img.height > 0 && img.width > 0, "contact sheet: the image at " + at(r, c) + " is empty");
  ZIMAGE_CHECK(static_cast<int64_t>(img.pixels.size()) == img.height * img.width * 3,
               "contact sheet: the image at " + at(r, c) + " has a pixel buffer that does not match its shape");
}

void fill(Image8& img, int64_t x0, int64_t y0, int64_t w, int64_t h, const std::array<uint8_t, 3>& rgb) {
  for (int64_t y = y0; y < y0 + h; ++y)
    for (int64_t x = x0; x < x0 + w; ++x) std::copy(rgb.begin(), rgb.end(), &img.pixels[(y * img.width + x) * 3]);
}

// A mid grey box with a dark grey X, `thickness` px wide strokes.
void draw_empty_cell(Image8& sheet, int64_t x0, int64_t y0, int64_t cell, int64_t thickness) {
  fill(sheet, x0, y0, cell, cell, kMidGrey);
  for (int64_t dy = 0; dy < cell; ++dy)
    for (int64_t dx = 0; dx < cell; ++dx)
      if (std::abs(dx - dy) < thickness || std::abs(dx + dy - (cell - 1)) < thickness)
        fill(sheet, x0 + dx, y0 + dy, 1, 1, kDarkGrey);
}

void paste(Image8& sheet, const Image8& img, int64_t x0, int64_t y0) {
  for (int64_t y = 0; y < img.height; ++y)
    std::copy_n(&img.pixels[y * img.width * 3], img.width * 3, &sheet.pixels[((y0 + y) * sheet.width + x0) * 3]);
}

}  // namespace

int contact_sheet_text_scale(int64_t cell_px) { return cell_px <= 128 ? 1 : cell_px <= 512 ? 2 : 3; }

std::pair<int64_t, int64_t> fitted_size(int64_t h, int64_t w, int64_t cell_px) {
  ZIMAGE_CHECK(h >= 1 && w >= 1 && cell_px >= 1, "fitted_size: sizes must be >= 1, not " + std::to_string(h) + "x" +
                                                    std::to_string(w) + " in " + std::to_string(cell_px));
  const int64_t longest = std::max(h, w);
  if (longest > cell_px) {
    const int64_t f = (longest + cell_px - 1) / cell_px;
    return {(h + f - 1) / f, (w + f - 1) / f};
  }
  const int64_t f = cell_px / longest;
  return {h * f, w * f};
}

Image8 fit_image(const Image8& img, int64_t cell_px) {
  ZIMAGE_CHECK(img.channels == 3, "fit_image needs a 3-channel image, not " + std::to_string(img.channels));
  const auto [fh, fw] = fitted_size(img.height, img.width, cell_px);
  ZIMAGE_CHECK(static_cast<int64_t>(img.pixels.size()) == img.height * img.width * 3,
               "fit_image: the pixel buffer does not match the image shape");
  Image8 out{fh, fw, 3, std::vector<uint8_t>(fh * fw * 3)};
  const bool shrink = std::max(img.height, img.width) > cell_px;
  const int64_t f = shrink ? (std::max(img.height, img.width) + cell_px - 1) / cell_px : fh / img.height;
  for (int64_t y = 0; y < fh; ++y)
    for (int64_t x = 0; x < fw; ++x)
      for (int64_t ch = 0; ch < 3; ++ch) {
        uint8_t& dst = out.pixels[(y * fw + x) * 3 + ch];
        if (!shrink) {
          dst = img.pixels[((y / f) * img.width + x / f) * 3 + ch];
          continue;
        }
        int64_t sum = 0, n = 0;
        for (int64_t sy = y * f; sy < std::min((y + 1) * f, img.height); ++sy)
          for (int64_t sx = x * f; sx < std::min((x + 1) * f, img.width); ++sx, ++n)
            sum += img.pixels[(sy * img.width + sx) * 3 + ch];
        dst = static_cast<uint8_t>((sum + n / 2) / n);  // half up: (sum / n + 1/2) floored
      }
  return out;
}

std::pair<int64_t, int64_t> contact_sheet_size(const ContactSheet& sheet, int64_t cell_px) {
  const Layout l = layout_of(sheet, cell_px);
  return {l.height(), l.width()};
}

Image8 render_contact_sheet(const ContactSheet& sheet, int64_t cell_px) {
  const Layout l = layout_of(sheet, cell_px);
  for (size_t r = 0; r < sheet.cells.size(); ++r)
    for (size_t c = 0; c < sheet.cells[r].size(); ++c)
      if (sheet.cells[r][c]) check_image(*sheet.cells[r][c], r, c);

  Image8 out{l.height(), l.width(), 3, std::vector<uint8_t>(l.height() * l.width() * 3, 255)};  // white
  const int64_t text_room = l.width() - 2 * l.gap;
  if (!sheet.title.empty()) draw_text(out, l.gap, l.gap, fit_text(sheet.title, text_room, l.scale), l.scale, kBlack);
  const int64_t labels_y = l.header - l.line - l.gap;
  for (int64_t c = 0; c < l.columns; ++c) {
    const std::string label = fit_text(sheet.column_labels[c], l.cell, l.scale);
    draw_text(out, l.cell_x(c) + (l.cell - text_width(label, l.scale)) / 2, labels_y, label, l.scale, kBlack);
  }
  for (int64_t r = 0; r < l.rows; ++r) {
    draw_text(out, l.gap, l.row_label_y(r), fit_text(sheet.row_labels[r], text_room, l.scale), l.scale, kBlack);
    for (int64_t c = 0; c < l.columns; ++c) {
      const Image8* img = sheet.cells[r][c];
      if (!img) {
        draw_empty_cell(out, l.cell_x(c), l.cell_y(r), l.cell, l.scale);
        continue;
      }
      const Image8 fitted = fit_image(*img, l.cell);
      paste(out, fitted, l.cell_x(c) + (l.cell - fitted.width) / 2, l.cell_y(r) + (l.cell - fitted.height) / 2);
    }
  }
  return out;
}

}  // namespace zimage

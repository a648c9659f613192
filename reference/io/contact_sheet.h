// A labelled contact sheet of 8-bit RGB images: a grid with rows = knob values
// and columns = seeds, as `zimage sweep` writes it. docs/contact_sheet.md.
//
// Layout, top to bottom (s = contact_sheet_text_scale(cell_px): 1 for cell_px <= 128,
// 2 up to 512, 3 above; line = text_height(s) = 9 s; gap = 4 s; all in pixels):
//   gap
//   title line (line + gap)                       only when the title is not empty
//   column labels (line + gap), each centred over its column
//   per row: its label strip (line), full width, then the row's cells (cell_px) + gap
// Columns are cell_px wide with a gap before the first, between them and after the last
// (a wider sheet, for min_width, leaves white on the right of the columns).
// So the sheet is
//   width  = max(gap + columns * (cell_px + gap), min_width)
//   height = gap + (title empty ? 0 : line + gap) + (line + gap) + rows * (line + cell_px + gap)
// (contact_sheet_size). Cell (r, c) has its top-left at
//   x = gap + c * (cell_px + gap),
//   y = gap + (title empty ? 0 : line + gap) + (line + gap) + r * (line + cell_px + gap) + line.
// Each image is fitted into its cell (fit_image) and centred in it, the offsets rounded
// down. Background white, text black; labels cut with "..." to their space (column
// labels: cell_px; title and row labels: width - 2 gap).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "io/png.h"

namespace zimage {

struct ContactSheet {
  std::string title;                          // drawn on the first line; may be empty (then no title line)
  std::vector<std::string> column_labels;     // one per column, e.g. "seed 0", drawn above the columns
  std::vector<std::string> row_labels;        // one per row, drawn as a full-width strip above that row's images
  std::vector<std::vector<const Image8*>> cells;  // [row][column]; nullptr: an empty cell (drawn mid grey with an X)
  int64_t min_width = 0;  // the sheet is at least this wide (room for long labels); 0 .. 65536
};

// Every image is fitted into a cell_px x cell_px box keeping its aspect ratio (fit_image).
// Throws zimage::Error with a one-line message when rows/labels/cells disagree in count,
// when the grid is empty, when an image is not 3-channel (or empty, or its pixel buffer
// does not match its shape), or cell_px < 16.
Image8 render_contact_sheet(const ContactSheet& sheet, int64_t cell_px = 256);

// {height, width} of the sheet render_contact_sheet draws (the formula above); throws
// as render_contact_sheet does on counts and cell_px (images are not looked at).
std::pair<int64_t, int64_t> contact_sheet_size(const ContactSheet& sheet, int64_t cell_px);

// The font scale of the labels: 1 for cell_px <= 128, 2 for cell_px <= 512, 3 above.
int contact_sheet_text_scale(int64_t cell_px);

// The fitted size of an h x w image in a cell_px box (for tests and callers): {height, width}.
// Larger than the box (longest side > cell_px): shrunk by f = ceil(longest / cell_px) to
// ceil(h / f) x ceil(w / f). Otherwise enlarged by f = floor(cell_px / longest) to h f x w f
// (f = 1 keeps it: a 200 px image stays 200 px in a 256 px box; a 32 px one becomes 256 px).
std::pair<int64_t, int64_t> fitted_size(int64_t h, int64_t w, int64_t cell_px);

// img (3 channels) resized to fitted_size: shrunk with a box filter (each output pixel the
// mean of its f x f block, rounded half up; blocks cut by the right or bottom edge average
// the pixels they hold), enlarged by nearest neighbour (each pixel an f x f block).
Image8 fit_image(const Image8& img, int64_t cell_px);

}  // namespace zimage

// Lookups over the generated tables (unicode_tables.cpp).
#include <algorithm>

#include "text_encoder/unicode_tables.h"

namespace zimage::unicode {

namespace {
bool in_ranges(const CodeRange* r, size_t n, char32_t c) {
  const CodeRange* end = r + n;
  const CodeRange* it = std::upper_bound(r, end, c, [](char32_t v, const CodeRange& x) { return v < x.first; });
  return it != r && c <= (it - 1)->last;
}
}  // namespace

bool is_letter(char32_t c) { return in_ranges(kLetters, kLetters_count, c); }
bool is_number(char32_t c) { return in_ranges(kNumbers, kNumbers_count, c); }

bool is_whitespace(char32_t c) {
  return (c >= 0x9 && c <= 0xD) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

uint8_t combining_class(char32_t c) {
  const CombiningClassRun* b = kCombiningClasses;
  const CombiningClassRun* e = b + kCombiningClasses_count;
  const CombiningClassRun* it = std::upper_bound(b, e, c, [](char32_t v, const CombiningClassRun& x) { return v < x.first; });
  return it != b && c <= (it - 1)->last ? (it - 1)->ccc : 0;
}

}  // namespace zimage::unicode

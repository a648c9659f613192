// Unicode data the tokenizer needs, generated from Python's unicodedata by
// tools/text_encoder/gen_unicode_tables.py into unicode_tables.cpp: the
// \p{L} and \p{N} ranges of the Qwen2 pre-tokenizer regex and the NFC
// normalizer's tables. Every table is sorted by code point.
#pragma once
#include <cstddef>
#include <cstdint>

namespace zimage::unicode {

struct CodeRange { char32_t first, last; };
struct CombiningClassRun { char32_t first, last; uint8_t ccc; };
struct Decomposition { char32_t cp; uint32_t offset, length; };  // full NFD in kDecompositionData
struct Composition { char32_t first, second, composite; };      // primary composites, sorted by (first, second)

extern const CodeRange kLetters[];
extern const size_t kLetters_count;
extern const CodeRange kNumbers[];
extern const size_t kNumbers_count;
extern const CombiningClassRun kCombiningClasses[];
extern const size_t kCombiningClasses_count;
extern const char32_t kDecompositionData[];
extern const Decomposition kDecompositions[];
extern const size_t kDecompositions_count;
extern const Composition kCompositions[];
extern const size_t kCompositions_count;
extern const char* kUnicodeVersion;

bool is_letter(char32_t c);      // \p{L}
bool is_number(char32_t c);      // \p{N}
bool is_whitespace(char32_t c);  // \s of the Rust / Oniguruma regex: Unicode White_Space
uint8_t combining_class(char32_t c);

}  // namespace zimage::unicode

#include "text_encoder/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <queue>

#include "core/error.h"
#include "core/json_file.h"
#include "text_encoder/unicode_tables.h"

namespace zimage {

using json = nlohmann::json;

// The Qwen2 / Qwen3 pre-tokenizer pattern, as tokenizer.json stores it.
static const char* kQwen2Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

std::u32string utf8_to_u32(const std::string& s, const std::string& what) {
  std::u32string out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    ZIMAGE_CHECK(n && i + size_t(n) <= s.size(), what + ": invalid UTF-8 at byte " + std::to_string(i));
    char32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < n; ++k) {
      const unsigned char d = static_cast<unsigned char>(s[i + size_t(k)]);
      ZIMAGE_CHECK((d >> 6) == 2, what + ": invalid UTF-8 at byte " + std::to_string(i + size_t(k)));
      cp = (cp << 6) | (d & 0x3F);
    }
    const char32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    ZIMAGE_CHECK(cp >= min[n] && cp < 0x110000 && !(cp >= 0xD800 && cp <= 0xDFFF),
                 what + ": invalid UTF-8 (overlong or out of range) at byte " + std::to_string(i));
    out.push_back(cp);
    i += size_t(n);
  }
  return out;
}

std::string u32_to_utf8(const std::u32string& s) {
  std::string out;
  for (char32_t c : s) {
    if (c < 0x80) {
      out += char(c);
    } else if (c < 0x800) {
      out += char(0xC0 | (c >> 6)), out += char(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out += char(0xE0 | (c >> 12)), out += char(0x80 | ((c >> 6) & 0x3F)), out += char(0x80 | (c & 0x3F));
    } else {
      out += char(0xF0 | (c >> 18)), out += char(0x80 | ((c >> 12) & 0x3F)), out += char(0x80 | ((c >> 6) & 0x3F)),
          out += char(0x80 | (c & 0x3F));
    }
  }
  return out;
}

namespace {

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the
// other 68 to U+0100 + n in byte order. Returned as UTF-8 strings.
const std::vector<std::string>& byte_chars() {
  static const std::vector<std::string> table = [] {
    std::vector<std::string> t(256);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool keep = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[size_t(b)] = u32_to_utf8(std::u32string(1, keep ? char32_t(b) : char32_t(0x100 + n++)));
    }
    return t;
  }();
  return table;
}

// ---------------------------------------------------------------- NFC

constexpr char32_t SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
constexpr int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

void decompose(char32_t c, std::u32string& out) {
  if (c >= SBase && c < SBase + SCount) {
    const int s = int(c - SBase);
    out += char32_t(LBase + s / NCount);
    out += char32_t(VBase + (s % NCount) / TCount);
    if (s % TCount) out += char32_t(TBase + s % TCount);
    return;
  }
  using unicode::kDecompositions;
  const auto* e = kDecompositions + unicode::kDecompositions_count;
  const auto* it = std::lower_bound(kDecompositions, e, c, [](const unicode::Decomposition& d, char32_t v) { return d.cp < v; });
  if (it != e && it->cp == c) out.append(unicode::kDecompositionData + it->offset, it->length);
  else out += c;
}

std::optional<char32_t> compose_pair(char32_t a, char32_t b) {
  if (a >= LBase && a < LBase + LCount && b >= VBase && b < VBase + VCount)
    return char32_t(SBase + ((a - LBase) * VCount + (b - VBase)) * TCount);
  if (a >= SBase && a < SBase + SCount && (a - SBase) % TCount == 0 && b > TBase && b < TBase + TCount)
    return char32_t(a + (b - TBase));
  using unicode::kCompositions;
  const auto* e = kCompositions + unicode::kCompositions_count;
  const auto* it = std::lower_bound(kCompositions, e, std::pair{a, b}, [](const unicode::Composition& x, std::pair<char32_t, char32_t> v) {
    return x.first != v.first ? x.first < v.first : x.second < v.second;
  });
  if (it != e && it->first == a && it->second == b) return it->composite;
  return std::nullopt;
}

}  // namespace

// Ref: Unicode Standard Annex #15 (canonical decomposition, canonical
// ordering, canonical composition), as tokenizers' NFC normalizer applies it.
std::u32string Qwen2Tokenizer::nfc(const std::u32string& s) {
  if (std::all_of(s.begin(), s.end(), [](char32_t c) { return c < 0x300; })) return s;
  std::u32string d;
  for (char32_t c : s) decompose(c, d);
  // Canonical ordering: stable sort of each run of nonzero combining classes.
  for (size_t i = 0; i < d.size();) {
    if (!unicode::combining_class(d[i])) { ++i; continue; }
    size_t j = i;
    while (j < d.size() && unicode::combining_class(d[j])) ++j;
    std::stable_sort(d.begin() + long(i), d.begin() + long(j),
                     [](char32_t a, char32_t b) { return unicode::combining_class(a) < unicode::combining_class(b); });
    i = j;
  }
  // Canonical composition.
  std::u32string out;
  long starter = -1;  // index in out of the last starter
  int last_ccc = -1;
  for (char32_t c : d) {
    const int ccc = unicode::combining_class(c);
    if (starter >= 0) {
      const bool blocked = last_ccc != -1 && (last_ccc == 0 || last_ccc >= ccc);
      if (!blocked) {
        if (auto comp = compose_pair(out[size_t(starter)], c)) {
          out[size_t(starter)] = *comp;
          continue;
        }
      }
    }
    if (ccc == 0) {
      starter = long(out.size());
      last_ccc = -1;
    } else {
      last_ccc = ccc;
    }
    out += c;
  }
  return out;
}

// ---------------------------------------------------------------- pre-tokenizer

std::vector<std::u32string> Qwen2Tokenizer::split_qwen2(const std::u32string& s) {
  using unicode::is_letter, unicode::is_number, unicode::is_whitespace;
  const size_t n = s.size();
  auto lower = [](char32_t c) { return c >= 'A' && c <= 'Z' ? char32_t(c + 32) : c; };
  auto is_nl = [](char32_t c) { return c == '\r' || c == '\n'; };
  auto is_other = [&](char32_t c) { return !is_whitespace(c) && !is_letter(c) && !is_number(c); };
  // Length of the match at i, trying the alternatives in order (leftmost-first).
  auto match = [&](size_t i) -> size_t {
    const char32_t c = s[i];
    // 1. (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if (c == '\'' && i + 1 < n) {
      const char32_t a = lower(s[i + 1]), b = i + 2 < n ? lower(s[i + 2]) : 0;
      if (a == 's' || a == 't') return 2;
      if ((a == 'r' || a == 'v') && b == 'e') return 3;
      if (a == 'm') return 2;
      if (a == 'l' && b == 'l') return 3;
      if (a == 'd') return 2;
    }
    // 2. [^\r\n\p{L}\p{N}]?\p{L}+
    {
      size_t j = i;
      if (!is_nl(c) && !is_letter(c) && !is_number(c) && i + 1 < n && is_letter(s[i + 1])) j = i + 1;
      if (is_letter(s[j])) {
        while (j < n && is_letter(s[j])) ++j;
        return j - i;
      }
    }
    // 3. \p{N}
    if (is_number(c)) return 1;
    // 4. ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    {
      size_t j = i;
      if (c == ' ' && i + 1 < n && is_other(s[i + 1])) j = i + 1;
      if (j < n && is_other(s[j])) {
        while (j < n && is_other(s[j])) ++j;
        while (j < n && is_nl(s[j])) ++j;
        return j - i;
      }
    }
    if (is_whitespace(c)) {
      size_t j = i;
      while (j < n && is_whitespace(s[j])) ++j;
      // 5. \s*[\r\n]+ : the whitespace run up to and including its last \r or \n.
      for (size_t k = j; k > i; --k)
        if (is_nl(s[k - 1])) return k - i;
      // 6. \s+(?!\S) : the run, less its last character when a non-space follows.
      if (j == n) return j - i;
      if (j - i >= 2) return j - 1 - i;
      // 7. \s+
      return j - i;
    }
    return 0;
  };
  std::vector<std::u32string> pieces;
  size_t gap = 0, i = 0;
  while (i < n) {
    const size_t len = match(i);
    if (len == 0) { ++i; continue; }
    if (gap < i) pieces.push_back(s.substr(gap, i - gap));  // Isolated: unmatched text is its own piece
    pieces.push_back(s.substr(i, len));
    i += len;
    gap = i;
  }
  if (gap < n) pieces.push_back(s.substr(gap));
  return pieces;
}

// ---------------------------------------------------------------- loading

namespace {

// A string field, "" when absent or null. Any other value comes back as a
// short non-string text that no expected value equals (a structure shows as
// [...] / {...}: json::dump() recurses, and a deeply nested value overflowed
// the stack elsewhere; docs/reliability.md).
std::string str_or_empty(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  return it->is_array() ? "[...]" : it->is_object() ? "{...}" : it->dump();
}

// A string from the file for a message: quoted, on one line (newlines and NUL
// become spaces), cut to 100 bytes.
std::string quote(std::string s) {
  if (s.size() > 100) s = s.substr(0, 100) + "...";
  for (char& c : s)
    if (c == '\n' || c == '\r' || c == '\0') c = ' ';
  return "\"" + s + "\"";
}

// An optional boolean field: `fallback` when absent; anything but true/false
// is refused (json::value() would throw its own type_error).
bool opt_bool(const json& j, const char* key, bool fallback, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end()) return fallback;
  ZIMAGE_CHECK(it->is_boolean(), source + ": \"" + key + "\" is " + it->type_name() + ", expected true or false");
  return it->get<bool>();
}

bool is_int32_id(const json& id) {
  return id.is_number_integer() && (id.is_number_unsigned() ? id.get<uint64_t>() <= uint64_t(std::numeric_limits<int32_t>::max())
                                                            : id.get<int64_t>() >= 0 && id.get<int64_t>() <= std::numeric_limits<int32_t>::max());
}

}  // namespace

Qwen2Tokenizer Qwen2Tokenizer::from_file(const std::string& path) {
  return from_json(read_json_file(path), path);
}

Qwen2Tokenizer Qwen2Tokenizer::from_json(const json& j, const std::string& source) {
  const std::string kind = source + ": not a byte-level BPE tokenizer.json of the Qwen2/Qwen3 kind: ";
  ZIMAGE_CHECK(j.is_object() && j.contains("model") && j["model"].is_object(), kind + "no \"model\" object");
  const json& m = j["model"];
  const std::string type = str_or_empty(m, "type");
  ZIMAGE_CHECK(type == "BPE", kind + "model type is " + quote(type) + ", expected \"BPE\"");
  ZIMAGE_CHECK(str_or_empty(m, "continuing_subword_prefix").empty() && str_or_empty(m, "end_of_word_suffix").empty(),
               kind + "the BPE model uses a subword prefix or word suffix");
  ZIMAGE_CHECK(!opt_bool(m, "byte_fallback", false, source), kind + "the BPE model uses byte_fallback");
  // Normalizer: none or NFC.
  Qwen2Tokenizer t;
  t.source_ = source;
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    const std::string nt = str_or_empty(j["normalizer"], "type");
    ZIMAGE_CHECK(nt == "NFC", kind + "normalizer " + quote(nt) + " (only NFC or none)");
    t.nfc_ = true;
  }
  // Pre-tokenizer: Sequence[Split(Qwen2 pattern, Isolated), ByteLevel(use_regex false)].
  ZIMAGE_CHECK(j.contains("pre_tokenizer") && j["pre_tokenizer"].is_object(), kind + "no pre_tokenizer");
  const json& pt = j["pre_tokenizer"];
  ZIMAGE_CHECK(str_or_empty(pt, "type") == "Sequence" && pt.contains("pretokenizers") && pt["pretokenizers"].is_array() &&
                   pt["pretokenizers"].size() == 2,
               kind + "pre_tokenizer is not Sequence[Split, ByteLevel]");
  const json& split = pt["pretokenizers"][0];
  const json& bl = pt["pretokenizers"][1];
  ZIMAGE_CHECK(str_or_empty(split, "type") == "Split" && split.contains("pattern") && split["pattern"].is_object() &&
                   str_or_empty(split["pattern"], "Regex") == kQwen2Pattern && str_or_empty(split, "behavior") == "Isolated" &&
                   !opt_bool(split, "invert", false, source),
               kind + "the Split pre-tokenizer is not Qwen2's pattern with behavior Isolated");
  ZIMAGE_CHECK(str_or_empty(bl, "type") == "ByteLevel" && !opt_bool(bl, "use_regex", true, source) && !opt_bool(bl, "add_prefix_space", true, source),
               kind + "the second pre-tokenizer is not ByteLevel(add_prefix_space=false, use_regex=false)");
  if (j.contains("decoder") && !j["decoder"].is_null())
    ZIMAGE_CHECK(str_or_empty(j["decoder"], "type") == "ByteLevel", kind + "decoder is not ByteLevel");
  t.ignore_merges_ = opt_bool(m, "ignore_merges", false, source);
  ZIMAGE_CHECK(m.contains("vocab") && m["vocab"].is_object(), kind + "the BPE model has no vocab object");
  for (const auto& [tok, id] : m["vocab"].items()) {
    ZIMAGE_CHECK(is_int32_id(id), source + ": vocab entry for " + quote(tok) + " is not an integer id in [0, 2^31)");
    t.vocab_[tok] = id.get<int32_t>();
  }
  ZIMAGE_CHECK(m.contains("merges") && m["merges"].is_array(), kind + "the BPE model has no merges list");
  int32_t rank = 0;
  for (const json& mg : m["merges"]) {
    std::string key;
    if (mg.is_string()) {
      key = mg.get<std::string>();
      ZIMAGE_CHECK(std::count(key.begin(), key.end(), ' ') == 1, source + ": merge " + std::to_string(rank) + " is not \"a b\"");
    } else {
      ZIMAGE_CHECK(mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string(),
                   source + ": merge " + std::to_string(rank) + " is neither \"a b\" nor [a, b]");
      key = mg[0].get<std::string>() + " " + mg[1].get<std::string>();
    }
    t.merge_rank_.emplace(key, rank++);
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const json& a : j["added_tokens"]) {
      ZIMAGE_CHECK(a.is_object() && !str_or_empty(a, "content").empty() && a["content"].is_string() && a.contains("id") &&
                       is_int32_id(a["id"]),
                   source + ": malformed added_tokens entry (needs a non-empty string \"content\" and an integer \"id\" in [0, 2^31))");
      const std::string content = a["content"].get<std::string>();
      ZIMAGE_CHECK(!opt_bool(a, "lstrip", false, source) && !opt_bool(a, "rstrip", false, source) &&
                       !opt_bool(a, "single_word", false, source),
                   source + ": added token " + quote(content) + " uses lstrip/rstrip/single_word, which this tokenizer does not implement");
      ZIMAGE_CHECK(!opt_bool(a, "normalized", false, source) || !t.nfc_ ||
                       nfc(utf8_to_u32(content, source)) == utf8_to_u32(content, source),
                   source + ": added token " + quote(content) + " changes under NFC");
      t.added_.emplace_back(content, a["id"].get<int32_t>());
    }
  }
  std::stable_sort(t.added_.begin(), t.added_.end(), [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  return t;
}

std::optional<int32_t> Qwen2Tokenizer::token_to_id(const std::string& token) const {
  for (const auto& [c, id] : added_)
    if (c == token) return id;
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

// ---------------------------------------------------------------- encoding

// Ref: tokenizers/src/models/bpe/word.rs Word::merge_all (lowest rank first,
// leftmost among equal ranks), model.rs BPE::tokenize_with_cache. As there,
// the candidate pairs wait in a heap ordered by (rank, position), so a piece
// of n bytes costs O(n log n): rescanning every pair after each merge was
// O(n^2) lookups, and 64 KB of letters took minutes (found with
// fuzz/fuzz_tokenizer, docs/reliability.md).
void Qwen2Tokenizer::bpe(const std::string& piece, std::vector<int32_t>& out) const {
  const auto& bc = byte_chars();
  if (ignore_merges_) {
    std::string whole;
    for (unsigned char b : piece) whole += bc[b];
    if (auto it = vocab_.find(whole); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  // The symbols as a linked list over the piece's bytes: sym[i] is the symbol
  // that starts at byte i while alive[i]; next[i] == n ends the list.
  const size_t n = piece.size(), none = size_t(-1);
  std::vector<std::string> sym(n);
  std::vector<size_t> next(n), prev(n);
  std::vector<char> alive(n, 1);
  for (size_t i = 0; i < n; ++i) {
    sym[i] = bc[static_cast<unsigned char>(piece[i])];
    next[i] = i + 1;
    prev[i] = i == 0 ? none : i - 1;
  }
  // A candidate: the pair (left, right) with the symbol lengths it was ranked
  // with (a symbol only grows by taking its right neighbour, so a start and a
  // length name one symbol); stale candidates are skipped when popped.
  struct Pair {
    int32_t rank;
    size_t left, right, left_len, right_len;
  };
  auto later = [](const Pair& a, const Pair& b) { return a.rank != b.rank ? a.rank > b.rank : a.left > b.left; };
  std::priority_queue<Pair, std::vector<Pair>, decltype(later)> heap(later);
  auto push = [&](size_t left) {
    if (left == none || next[left] >= n) return;
    const size_t right = next[left];
    auto it = merge_rank_.find(sym[left] + " " + sym[right]);
    if (it != merge_rank_.end()) heap.push({it->second, left, right, sym[left].size(), sym[right].size()});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Pair p = heap.top();
    heap.pop();
    if (!alive[p.left] || !alive[p.right] || next[p.left] != p.right || sym[p.left].size() != p.left_len ||
        sym[p.right].size() != p.right_len)
      continue;
    sym[p.left] += sym[p.right];
    sym[p.right].clear();
    alive[p.right] = 0;
    next[p.left] = next[p.right];
    if (next[p.left] < n) prev[next[p.left]] = p.left;
    push(prev[p.left]);
    push(p.left);
  }
  for (size_t i = 0; i < n; i = next[i]) {
    auto it = vocab_.find(sym[i]);
    ZIMAGE_CHECK(it != vocab_.end(), source_ + ": BPE symbol not in the vocab (a byte-level vocab holds all 256 byte characters)");
    out.push_back(it->second);
  }
}

std::vector<int32_t> Qwen2Tokenizer::encode(const std::string& text) const {
  std::vector<int32_t> ids;
  auto encode_segment = [&](const std::string& seg) {
    if (seg.empty()) return;
    std::u32string u = utf8_to_u32(seg, "prompt text");
    if (nfc_) u = nfc(u);
    for (const std::u32string& piece : split_qwen2(u)) bpe(u32_to_utf8(piece), ids);
  };
  size_t start = 0, i = 0;
  while (i < text.size()) {
    const std::pair<std::string, int32_t>* hit = nullptr;
    for (const auto& a : added_)  // longest first: leftmost-longest
      if (text.compare(i, a.first.size(), a.first) == 0) { hit = &a; break; }
    if (!hit) { ++i; continue; }
    encode_segment(text.substr(start, i - start));
    ids.push_back(hit->second);
    i += hit->first.size();
    start = i;
  }
  encode_segment(text.substr(start));
  return ids;
}

std::string qwen3_chat_prompt(const std::string& prompt, const std::optional<std::string>& think,
                              const std::optional<std::string>& system) {
  std::string s;
  if (system) s += "<|im_start|>system\n" + *system + "<|im_end|>\n";
  s += "<|im_start|>user\n" + prompt + "<|im_end|>\n<|im_start|>assistant\n";
  if (think) {
    // The template writes reasoning_content.strip('\n'): newlines at either end are not kept.
    size_t b = 0, e = think->size();
    while (b < e && (*think)[b] == '\n') ++b;
    while (e > b && (*think)[e - 1] == '\n') --e;
    s += "<think>\n" + think->substr(b, e - b) + "\n</think>\n\n";
  }
  return s;
}

}  // namespace zimage

// libFuzzer target: the Qwen2 byte-level BPE tokenizer (text_encoder/tokenizer.h).
// The first input byte picks what the rest is:
//   even ('0'): a tokenizer.json. It goes through the loader,
//     Qwen2Tokenizer::from_file (read from a memfd; JSON syntax errors must
//     come out as zimage::Error), and through Qwen2Tokenizer::from_json(
//     nlohmann::json::parse(rest)); the two must agree. An accepted tokenizer
//     encodes a few fixed texts (plain, chat prompt, non-ASCII) either to ids
//     or to a one-line zimage::Error (a vocab may lack a byte character), and
//     finds every added token it has.
//   odd ('1'): UTF-8 text for a fixed tokenizer, the small golden one
//     (golden/text_encoder/tokenizer/tokenizer.json: 800 byte-level tokens,
//     544 merges, 5 added tokens), read once in LLVMFuzzerInitialize. Valid
//     UTF-8 must encode without error to ids below the vocab plus added
//     tokens (the vocab holds all 256 byte characters), survive UTF-8 ->
//     code points -> UTF-8 unchanged, split (the Qwen2 pre-tokenizer) into
//     non-empty pieces that concatenate back to the text, and normalize
//     (NFC) to a fixed point: nfc(nfc(s)) == nfc(s). Invalid UTF-8 must be a
//     one-line zimage::Error.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "fuzz_common.h"
#include "text_encoder/tokenizer.h"

using namespace zimage;
using json = nlohmann::json;

namespace {

std::unique_ptr<fuzz::InputFile> g_file;
std::optional<Qwen2Tokenizer> g_fixed;
constexpr int32_t kFixedIds = 805;  // 800 vocab entries + 5 added tokens (ids 800..804)

void fuzz_json(const uint8_t* data, size_t size) {
  const auto both = fuzz::read_both_ways<Qwen2Tokenizer>(
      *g_file, data, size, [](const std::string& path) { return Qwen2Tokenizer::from_file(path); },
      [](const json& j) { return Qwen2Tokenizer::from_json(j, "fuzz/tokenizer.json"); }, "from_file", "tokenizer");
  if (!both) return;
  const json& j = both->document;
  const Qwen2Tokenizer* loaded = &both->from_file;
  const Qwen2Tokenizer* t = &both->from_json;
  ZIMAGE_FUZZ_REQUIRE(loaded->vocab_size() == t->vocab_size(), "from_file and from_json disagree");
  for (const std::string& text : {std::string("Hello world, it's 2024!"), qwen3_chat_prompt("a cat\n\t 123", ""),
                                 std::string("caf\xC3\xA9 \xE7\x8C\xAB e\xCC\x81 \xF0\x9F\x98\x80")}) {
    try {
      const auto a = t->encode(text);
      const auto b = loaded->encode(text);
      ZIMAGE_FUZZ_REQUIRE(a == b, "from_file and from_json encode differently");
    } catch (const Error& e) {
      fuzz::check_message(e);
    }
  }
  if (auto it = j.find("added_tokens"); it != j.end() && it->is_array())  // (j is an object: from_json accepted it)
    for (const json& a : *it)
      if (auto c = a.find("content"); c != a.end() && c->is_string())
        ZIMAGE_FUZZ_REQUIRE(t->token_to_id(c->get<std::string>()).has_value(), "added token not found");
}

void fuzz_text(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::u32string u;
  try {
    u = utf8_to_u32(text, "fuzz text");
  } catch (const Error& e) {
    fuzz::check_message(e);
    try {
      g_fixed->encode(text);
    } catch (const Error& e2) {
      fuzz::check_message(e2);
      return;
    }
    fuzz::fail("encode accepted text utf8_to_u32 refuses");
  }
  ZIMAGE_FUZZ_REQUIRE(u32_to_utf8(u) == text, "UTF-8 round trip");
  // Outside any try: an Error on valid UTF-8 is a finding.
  for (const int32_t id : g_fixed->encode(text))
    ZIMAGE_FUZZ_REQUIRE(id >= 0 && id < kFixedIds, "id " + std::to_string(id));
  std::u32string joined;
  for (const std::u32string& piece : Qwen2Tokenizer::split_qwen2(u)) {
    ZIMAGE_FUZZ_REQUIRE(!piece.empty(), "empty pre-tokenizer piece");
    joined += piece;
  }
  ZIMAGE_FUZZ_REQUIRE(joined == u, "pre-tokenizer pieces do not concatenate to the text");
  const std::u32string n = Qwen2Tokenizer::nfc(u);
  ZIMAGE_FUZZ_REQUIRE(Qwen2Tokenizer::nfc(n) == n, "NFC is not idempotent on " + u32_to_utf8(n));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_file = std::make_unique<fuzz::InputFile>(fuzz::fallback_json_path("tokenizer"));
  try {
    g_fixed = Qwen2Tokenizer::from_file(ZIMAGE_FUZZ_TOKENIZER);
  } catch (const std::exception& e) {
    fuzz::fail(std::string("fixture: ") + e.what());
  }
  ZIMAGE_FUZZ_REQUIRE(g_fixed->vocab_size() == 800, "fixture vocab size " + std::to_string(g_fixed->vocab_size()));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  if (data[0] % 2 == 0)
    fuzz_json(data + 1, size - 1);
  else
    fuzz_text(data + 1, size - 1);
  return 0;
}

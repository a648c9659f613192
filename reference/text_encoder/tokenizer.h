// Byte-level BPE tokenizer of the Qwen2 / Qwen3 kind, read from a Hugging
// Face tokenizer.json (the tokenizers library's format), producing the same
// ids as tokenizers' Tokenizer.encode(text, add_special_tokens=False):
//   1. added tokens (<|im_start|>, <think>, ...) are matched first in the raw
//      text, leftmost-longest, and become their own ids;
//   2. the text between them is NFC-normalized (normalizer "NFC");
//   3. split by the Qwen2 pre-tokenizer regex (Split, behavior Isolated):
//      (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//      implemented by hand with the semantics of the backtracking regex;
//   4. each piece's UTF-8 bytes mapped to characters by GPT-2's
//      bytes_to_unicode table (ByteLevel, use_regex false);
//   5. BPE: the adjacent pair of lowest merge rank is merged, leftmost first,
//      until no pair has a rank; the symbols are looked up in the vocab.
// A tokenizer.json of another kind (WordPiece, Unigram, a BPE without the
// byte-level pre-tokenizer, another split pattern) is refused with one line.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace zimage {

class Qwen2Tokenizer {
 public:
  static Qwen2Tokenizer from_file(const std::string& path);
  static Qwen2Tokenizer from_json(const nlohmann::json& j, const std::string& source);

  std::vector<int32_t> encode(const std::string& utf8) const;
  std::optional<int32_t> token_to_id(const std::string& token) const;
  size_t vocab_size() const { return vocab_.size(); }

  // Pieces of steps 1-3 for tests: NFC and the pre-tokenizer split.
  static std::u32string nfc(const std::u32string& s);
  static std::vector<std::u32string> split_qwen2(const std::u32string& s);

 private:
  void bpe(const std::string& piece, std::vector<int32_t>& out) const;
  std::string source_;
  bool nfc_ = false, ignore_merges_ = false;
  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<std::string, int32_t> merge_rank_;  // "a b" -> rank
  std::vector<std::pair<std::string, int32_t>> added_;   // content -> id, longest first
};

// UTF-8 <-> code points (invalid UTF-8 is an error naming `what`).
std::u32string utf8_to_u32(const std::string& s, const std::string& what);
std::string u32_to_utf8(const std::u32string& s);

// The prompt text ZImagePipeline builds with tokenizer.apply_chat_template(
// [{"role": "user", "content": prompt}], tokenize=False,
// add_generation_prompt=True, enable_thinking=True) and Qwen3's chat template:
//   "<|im_start|>user\n" + prompt + "<|im_end|>\n<|im_start|>assistant\n"
// The knobs (docs/experiments.md, "Text-encoder knobs"), each the template's own rendering:
// - `system` set (even ""): a system message first, "<|im_start|>system\n" + system + "<|im_end|>\n"
//   (messages[0].role == "system").
// - `think` absent: no think block (enable_thinking=True, the pipeline's default).
// - `think` == "": the empty block "<think>\n\n</think>\n\n", what enable_thinking=False emits.
// - `think` text: "<think>\n" + text.strip('\n') + "\n</think>\n\n", what the template writes for
//   an assistant turn with that reasoning_content (before its content and <|im_end|>).
std::string qwen3_chat_prompt(const std::string& prompt, const std::optional<std::string>& think = std::nullopt,
                              const std::optional<std::string>& system = std::nullopt);

}  // namespace zimage

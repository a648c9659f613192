// The text-encoder goldens shipped in golden/text_encoder (tools/golden/dump_text_encoder.py),
// each opened once per test process.
#pragma once
#include <string>

#include "support/goldens.h"
#include "text_encoder/prompt_encoder.h"
#include "text_encoder/te_golden.h"

namespace zimage::testing {

inline std::string te_golden_dir() { return std::string(ZIMAGE_GOLDEN_DIR) + "/text_encoder"; }
inline std::string te_golden_path(const std::string& case_name) {
  return te_golden_dir() + "/" + case_name + ".safetensors";
}

// The opened golden of `case_name` (opened once per process).
inline const TextEncoderGolden& te_golden(const std::string& case_name) {
  return open_once<TextEncoderGolden>(te_golden_path(case_name), open_text_encoder_golden);
}

// The PromptEncoder of the test tokenizer (golden/text_encoder/tokenizer) and the tiny Qwen3 saved
// by transformers (tiny_te), opened once.
inline const PromptEncoder& tiny_prompt_encoder() {
  static const PromptEncoder e = PromptEncoder::open(te_golden_dir() + "/tokenizer", te_golden_dir() + "/tiny_te");
  return e;
}

}  // namespace zimage::testing

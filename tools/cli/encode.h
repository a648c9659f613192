// Prompt encoding shared by `zimage encode` and `zimage generate --prompt`
// (tools/cli/cmd_encode.cpp).
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace zimage::cli {

struct EncodeOptions {
  int hidden_layer = -2;
  int max_sequence_length = 512;
  std::optional<std::string> think;
  std::string dtype = "float32";  // compute dtype; the file is float32 either way
  bool check_finite = false;      // --check-finite: trace the text encoder's module outputs
};

// Encodes `prompts` with PIPELINE_DIR/text_encoder + tokenizer and writes
// {stem}{i} [tokens, hidden] float32 to `out` (stem "prompt_embeds." or
// "negative_prompt_embeds."), the form `zimage generate --prompt-embeds` reads.
// Truncation warnings go to stderr. Returns the token count per prompt; with
// check_finite, an empty vector (and no file) when a module output held
// NaN/Inf (reported on stderr: module, count, first index).
std::vector<int64_t> encode_prompts_to_file(const std::string& pipeline_dir, const std::vector<std::string>& prompts,
                                            const EncodeOptions& opt, const std::string& out,
                                            const std::string& stem = "prompt_embeds.");

}  // namespace zimage::cli

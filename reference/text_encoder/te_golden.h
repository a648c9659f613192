// Text-encoder goldens (kind text_encoder, tools/golden/dump_text_encoder.py):
// opening them with their provenance. Running their recorded modules teacher
// forced: text_encoder/module_table.h.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "text_encoder/qwen3_model.h"

namespace zimage {

struct TextEncoderGolden {
  std::string path;
  std::shared_ptr<SafetensorsFile> file;
  Qwen3Config config;
  std::shared_ptr<Qwen3TextEncoder> encoder;  // synthetic weights from the golden's metadata
  Tensor<int32_t> input_ids, attention_mask;  // [B, L]
  // "input_aliases" metadata: a recorded input left out of the file because it
  // equals another stored tensor bit for bit -> that tensor's name.
  std::map<std::string, std::string> aliases;
  bool has(const std::string& name) const { return file->contains(name) || aliases.count(name); }
  template <class T>
  Tensor<T> get(const std::string& name) const {
    auto it = aliases.find(name);
    return file->get<T>(it == aliases.end() ? name : it->second);
  }
  int64_t seq_len() const { return input_ids.dim(1); }
  // Every recorded output the runner can reproduce: module paths with their
  // inputs recorded, rotary_emb.cos/.sin, embed_tokens and hidden_states.{k}.
  std::vector<std::string> checks() const;
};

// Opens and screens a text-encoder golden: format, kind, provenance keys
// (transformers version and the blob id of modeling_qwen3.py among them),
// every float tensor finite and not constant, the config.
TextEncoderGolden open_text_encoder_golden(const std::string& path);

}  // namespace zimage

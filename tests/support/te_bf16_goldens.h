// transformers bf16 goldens golden/text_encoder/<case>.bf16.safetensors
// (tools/golden/dump_text_encoder_bf16.py): every hidden_states.{k} of Qwen3Model loaded with
// torch_dtype=torch.bfloat16 on the CPU, the peer of the CUDA bf16 encoder (tier T4). Shared by
// tests/golden/test_text_encoder_goldens.cpp (CPU, CI) and tests/cuda/test_cuda_qwen3.cpp (the peer
// rule on the GPU).
#pragma once
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "io/safetensors.h"
#include "support/golden_values.h"
#include "support/te_goldens.h"
#include "text_encoder/te_golden.h"
#include "validation/golden_file.h"

namespace zimage::testing {

inline std::string te_bf16_golden_path(const std::string& case_name) {
  return te_golden_dir() + "/" + case_name + ".bf16.safetensors";
}

// The bf16 golden of the text-encoder golden `g` (case `case_name`), or nullopt when the case has
// none. Checks format, kind text_encoder_bf16, dtype bfloat16, case, the transformers
// modeling_qwen3.py blob and the diffusers commit (equal to the fp32 golden's), that the digests
// of input_ids and attention_mask match the fp32 golden's (the bf16 run saw the same batch), one
// hidden_states.{k} per hidden state with the fp32 golden's shape, every stored value exactly a
// bfloat16 number, and screens every tensor (finite, not constant).
inline std::optional<std::shared_ptr<SafetensorsFile>> open_te_bf16_golden(const std::string& case_name,
                                                                           const TextEncoderGolden& g) {
  const std::string path = te_bf16_golden_path(case_name);
  if (!std::filesystem::exists(path)) return std::nullopt;
  const GoldenHeader h = golden_header(path, "text_encoder_bf16",
                                       {"torch_version", "transformers_version", "command", "threads", "device"});
  const auto& f = h.file;
  auto meta = [&](const std::string& key) -> const std::string& { return h.meta(key); };
  ZIMAGE_CHECK(meta("dtype") == "bfloat16", path + ": dtype '" + meta("dtype") + "', expected bfloat16");
  ZIMAGE_CHECK(meta("case") == case_name, path + ": case '" + meta("case") + "', expected " + case_name);
  ZIMAGE_CHECK(meta("threads") == "1", path + ": made with " + meta("threads") + " threads, not 1");
  for (const char* k : {"transformers_qwen3_blob", "diffusers_commit", "seed", "config"})
    ZIMAGE_CHECK(meta(k) == g.file->metadata().at(k), path + ": " + k + " differs from the fp32 golden's");
  const auto digests = nlohmann::json::parse(meta("inputs_fnv1a64"));
  ZIMAGE_CHECK(digests.size() == 2 && digests.contains("input_ids") && digests.contains("attention_mask"),
               path + ": inputs_fnv1a64 must list input_ids and attention_mask");
  for (const auto& [name, t] : {std::pair<std::string, const Tensor<int32_t>*>{"input_ids", &g.input_ids},
                                {"attention_mask", &g.attention_mask}}) {
    const std::string got = fnv1a64_hex(*t);
    ZIMAGE_CHECK(digests.at(name).get<std::string>() == got, path + ": input " + name + " digest " +
                                                                 digests.at(name).get<std::string>() +
                                                                 " is not the fp32 golden's " + got);
  }
  for (int k = 0; k <= g.config.num_hidden_layers; ++k) {
    const std::string name = "hidden_states." + std::to_string(k);
    ZIMAGE_CHECK(f->contains(name), path + ": lacks " + name);
    const Tensor<float> s = f->get<float>(name);
    ZIMAGE_CHECK(g.has(name) && s.shape == g.get<float>(name).shape,
                 path + ": " + name + " shape differs from the fp32 golden's");
    check_bf16_valued(path, name, s);
  }
  for (const auto& name : f->names()) screen_golden_tensor(path, f->view(name));
  return f;
}

}  // namespace zimage::testing

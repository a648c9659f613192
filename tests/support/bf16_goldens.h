// diffusers bf16 goldens golden/<case>.bf16.safetensors (tools/golden/dump_dit_bf16.py): the
// samples of a kind=model case run by diffusers in bfloat16 on the CPU, the peer of the CUDA bf16
// forward (tier T4). Shared by tests/golden/test_bf16_goldens.cpp (CPU, CI) and
// tests/cuda/test_cuda_model.cpp (the peer rule on the GPU).
#pragma once
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "dit/rope_limits.h"
#include "dit/transformer.h"
#include "io/safetensors.h"
#include "support/golden_values.h"
#include "support/goldens.h"
#include "validation/golden_file.h"
#include "validation/golden_inputs.h"

namespace zimage::testing {

inline std::string bf16_golden_path(const std::string& case_name) {
  return std::string(ZIMAGE_GOLDEN_DIR) + "/" + case_name + ".bf16.safetensors";
}

// Longest [image, caption] sequence of a batch (both padded to 32): the L of the attention budgets.
inline int64_t unified_len(const ZImageConfig& cfg, const DitInputs<float>& in) {
  return unified_seq_len(in.x, in.cap_feats, cfg.patch_size(), cfg.f_patch_size());
}

// The bf16 golden of `fp32` (an opened kind=model golden), or nullopt when the case has none.
// Checks format, kind model_bf16, dtype bfloat16, case, the diffusers commit and blob (equal to
// the fp32 golden's), that every input digest matches the fp32 golden's inputs (the bf16 run saw
// the same x, cap_feats and t), one sample.{i} per item with the item's shape, every stored value
// exactly a bfloat16 number, and screens every tensor (finite, not constant).
inline std::optional<std::shared_ptr<SafetensorsFile>> open_bf16_golden(const GoldenFile& fp32) {
  const std::string path = bf16_golden_path(fp32.case_name);
  if (!std::filesystem::exists(path)) return std::nullopt;
  const GoldenHeader h = golden_header(path, "model_bf16", {"torch_version", "command", "threads", "attention_backend", "device"});
  const auto& f = h.file;
  auto meta = [&](const std::string& key) -> const std::string& { return h.meta(key); };
  ZIMAGE_CHECK(meta("dtype") == "bfloat16", path + ": dtype '" + meta("dtype") + "', expected bfloat16");
  ZIMAGE_CHECK(meta("case") == fp32.case_name, path + ": case '" + meta("case") + "', expected " + fp32.case_name);
  for (const char* k : {"diffusers_commit", "diffusers_z_image_blob"})
    ZIMAGE_CHECK(meta(k) == fp32.file->metadata().at(k),
                 path + ": " + k + " differs from the fp32 golden's (" + fp32.file->metadata().at(k) + ")");
  const auto digests = nlohmann::json::parse(meta("inputs_fnv1a64"));
  ZIMAGE_CHECK(digests.size() == size_t(2 * fp32.batch_size() + 1), path + ": inputs_fnv1a64 lists " +
                                                                        std::to_string(digests.size()) + " inputs");
  for (const auto& [name, want] : digests.items()) {
    const std::string got = fnv1a64_hex(fp32.get<float>(name));
    ZIMAGE_CHECK(want.get<std::string>() == got,
                 path + ": input " + name + " digest " + want.get<std::string>() + " is not the fp32 golden's " + got);
  }
  for (int i = 0; i < fp32.batch_size(); ++i) {
    const std::string name = "sample." + std::to_string(i);
    ZIMAGE_CHECK(f->contains(name), path + ": lacks " + name);
    const Tensor<float> s = f->get<float>(name);
    ZIMAGE_CHECK(s.shape == fp32.file->view(name).shape, path + ": " + name + " shape differs from the fp32 golden's");
    check_bf16_valued(path, name, s);
  }
  for (const auto& name : f->names()) screen_golden_tensor(path, f->view(name));
  return f;
}

}  // namespace zimage::testing

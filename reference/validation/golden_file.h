// A golden file (docs/goldens.md) opened for validation: its tensors, its
// provenance, the config, and where the weights come from.
#pragma once
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "dit/config.h"
#include "io/param_source.h"

namespace zimage {

struct GoldenFile {
  std::string path;
  std::shared_ptr<SafetensorsFile> file;
  ZImageConfig config;
  std::string case_name, kind;  // kind: "model" or "modules"
  std::shared_ptr<ParamSource> params;

  bool has(const std::string& name) const { return file->contains(name); }
  template <class T>
  Tensor<T> get(const std::string& name) const { return file->get<T>(name); }
  // Module paths with a recorded output, in file order of names (sorted).
  std::vector<std::string> module_outputs() const;
  int batch_size() const;  // number of x.{i} tensors (kind=model)
};

// A golden's header: the opened file and its metadata, read with the checks
// every golden reader shares.
struct GoldenHeader {
  std::string path;
  std::shared_ptr<SafetensorsFile> file;
  // The metadata value of `key`; throws "<path>: golden metadata lacks '<key>'".
  const std::string& meta(const std::string& key) const;
};

// Opens `path` and checks the format tag (zimage-golden-v1), the kind when
// `kind` is not empty, and that every key in `keys` is in the metadata.
// Tensors are not screened (see screen_golden_tensor).
GoldenHeader golden_header(const std::string& path, const std::string& kind = "",
                           std::initializer_list<const char*> keys = {});

// Opens and screens a golden: format tag, provenance keys, config; every
// float tensor finite and not constant (a cached black image once
// "validated" a whole port elsewhere). Weights: `model_dir` when given,
// else the golden's `model_dir` metadata (relative to golden_root), else its
// `synthetic_weights` metadata.
GoldenFile open_golden(const std::string& path, const std::string& model_dir = "");

// Opens a golden without a transformer config (kinds scheduler, cfg,
// torch_randn from tools/golden/dump_pipeline_parts.py): format tag, kind ==
// `kind`, the provenance keys (diffusers version, commit and the blob ids of the
// diffusers files used, torch version and CPU capability, dtype, seed,
// command), and every float tensor screened as in open_golden.
std::shared_ptr<SafetensorsFile> open_pipeline_part_golden(const std::string& path, const std::string& kind);

// Screens one float tensor: throws naming file and tensor on NaN/Inf (with
// the first index) or when all values are equal.
void screen_golden_tensor(const std::string& file, const TensorView& v);

}  // namespace zimage

#include "validation/golden_file.h"
#include "dit/model_folder.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

namespace zimage {

namespace fs = std::filesystem;

void screen_golden_tensor(const std::string& file, const TensorView& v) {
  if (!dtype_is_float(v.dtype) || v.nbytes == 0) return;
  const Tensor<double> t = to_tensor<double>(v);
  for (int64_t i = 0; i < t.numel(); ++i)
    ZIMAGE_CHECK(std::isfinite(t[i]), file + ": golden tensor '" + v.name + "' holds a non-finite value at flat index " +
                                          std::to_string(i) + " (refusing NaN/Inf goldens)");
  bool constant = t.numel() > 1;
  for (int64_t i = 1; i < t.numel() && constant; ++i) constant = t[i] == t[0];
  ZIMAGE_CHECK(!constant, file + ": golden tensor '" + v.name + "' is constant (" + std::to_string(t[0]) +
                              " everywhere): refusing it as a golden");
}

std::vector<std::string> GoldenFile::module_outputs() const {
  std::vector<std::string> out;
  for (const auto& n : file->names())
    if (n.find(':') == std::string::npos) out.push_back(n);
  return out;
}

int GoldenFile::batch_size() const {
  int b = 0;
  while (has("x." + std::to_string(b))) ++b;
  return b;
}

const std::string& GoldenHeader::meta(const std::string& key) const {
  const auto& md = file->metadata();
  auto it = md.find(key);
  ZIMAGE_CHECK(it != md.end(), path + ": golden metadata lacks '" + key + "'");
  return it->second;
}

GoldenHeader golden_header(const std::string& path, const std::string& kind, std::initializer_list<const char*> keys) {
  GoldenHeader h{path, SafetensorsFile::open(path)};
  ZIMAGE_CHECK(h.meta("format") == "zimage-golden-v1",
               path + ": golden format '" + h.meta("format") + "' is not zimage-golden-v1");
  if (!kind.empty())
    ZIMAGE_CHECK(h.meta("kind") == kind, path + ": golden kind '" + h.meta("kind") + "', expected '" + kind + "'");
  for (const char* k : keys) h.meta(k);
  return h;
}

GoldenFile open_golden(const std::string& path, const std::string& model_dir) {
  const GoldenHeader h =
      golden_header(path, "", {"diffusers_version", "diffusers_commit", "torch_version", "dtype", "seed", "command"});
  auto meta = [&](const std::string& key) -> const std::string& { return h.meta(key); };
  const auto& md = h.file->metadata();
  GoldenFile g;
  g.path = path;
  g.file = h.file;
  g.case_name = meta("case");
  g.kind = meta("kind");
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(meta("config"));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": golden metadata 'config' is not JSON: " + e.what());
  }
  g.config = ZImageConfig::from_json(cfg, path + " (metadata config)");
  g.config.validate(path + " (metadata config)");
  for (const auto& name : g.file->names()) screen_golden_tensor(path, g.file->view(name));

  if (!model_dir.empty()) {
    ModelFolder m = open_model_folder(model_dir);
    g.params = m.params;
  } else if (md.count("model_dir") && !md.at("model_dir").empty()) {
    const fs::path dir = fs::path(path).parent_path() / md.at("model_dir");
    g.params = open_model_folder(dir.string()).params;
  } else {
    g.params = synthetic_param_source(meta("synthetic_weights"));
  }
  return g;
}

std::shared_ptr<SafetensorsFile> open_pipeline_part_golden(const std::string& path, const std::string& kind) {
  const GoldenHeader h = golden_header(path, kind,
                                       {"diffusers_version", "diffusers_commit", "diffusers_scheduler_blob",
                                        "diffusers_pipeline_blob", "diffusers_torch_utils_blob", "torch_version",
                                        "torch_cpu_capability", "dtype", "seed", "command"});
  ZIMAGE_CHECK(h.meta("dtype") == "float32", path + ": golden dtype '" + h.meta("dtype") + "' is not float32");
  for (const auto& name : h.file->names()) screen_golden_tensor(path, h.file->view(name));
  return h.file;
}

}  // namespace zimage

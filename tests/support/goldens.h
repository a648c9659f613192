// The goldens shipped in golden/, enumerated for value-parameterized tests.
#pragma once
#include <algorithm>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "validation/golden_file.h"

namespace zimage::testing {

inline std::string golden_path(const std::string& case_name) {
  return std::string(ZIMAGE_GOLDEN_DIR) + "/" + case_name + ".safetensors";
}

// The `kind` metadata of a shipped golden ("" when it has none).
inline std::string golden_kind(const std::string& case_name) {
  const auto f = SafetensorsFile::open(golden_path(case_name));
  return f->metadata().count("kind") ? f->metadata().at("kind") : "";
}

// Case names (file stems) of the transformer goldens (kinds model, modules,
// rope_*), sorted. Other kinds (pipeline, vae, scheduler, ...) have suites of
// their own.
inline std::vector<std::string> golden_cases() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(ZIMAGE_GOLDEN_DIR, ec)) {
    if (e.path().extension() != ".safetensors" || e.path().stem() == "synthetic_check") continue;
    const std::string kind = golden_kind(e.path().stem());
    if (kind == "model" || kind == "modules" || kind.rfind("rope_", 0) == 0) out.push_back(e.path().stem());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Case names of the shipped goldens of one kind, sorted.
inline std::vector<std::string> golden_cases_of_kind(const std::string& kind) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(ZIMAGE_GOLDEN_DIR, ec))
    if (e.path().extension() == ".safetensors" && golden_kind(e.path().stem()) == kind) out.push_back(e.path().stem());
  std::sort(out.begin(), out.end());
  return out;
}

// What `open(path)` returns for a golden file, opened once per process and path (opening screens
// every tensor); safe from several threads. One cache per Golden type and `open`.
template <class Golden, class Open>
const Golden& open_once(const std::string& path, Open open) {
  static std::map<std::string, Golden> cache;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(path);
  if (it == cache.end()) it = cache.emplace(path, open(path)).first;
  return it->second;
}

}  // namespace zimage::testing

// The goldens shipped in golden/, enumerated for value-parameterized tests.
#pragma once
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "validation/golden_file.h"

namespace zimage::testing {

inline std::string golden_path(const std::string& case_name) {
  return std::string(ZIMAGE_GOLDEN_DIR) + "/" + case_name + ".safetensors";
}

// Case names (file stems) of the model/module goldens, sorted.
inline std::vector<std::string> golden_cases() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(ZIMAGE_GOLDEN_DIR, ec))
    if (e.path().extension() == ".safetensors" && e.path().stem() != "synthetic_check") out.push_back(e.path().stem());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace zimage::testing

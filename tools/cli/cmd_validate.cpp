// zimage validate: goldens through the reference, one row per module.
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "cli.h"
#include "io/safetensors.h"
#include "validation/validate.h"

#ifndef ZIMAGE_GOLDEN_DIR
#define ZIMAGE_GOLDEN_DIR "golden"
#endif

namespace zimage::cli {

namespace fs = std::filesystem;

// The goldens shipped in golden/: every *.safetensors with a zimage-golden-v1
// format tag (synthetic_check.safetensors is a generator cross-check, not a model golden).
std::vector<std::string> shipped_goldens(const std::string& dir) {
  std::vector<std::string> out;
  ZIMAGE_CHECK(fs::is_directory(dir), "golden directory '" + dir + "' not found (pass --goldens FILE)");
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors" && e.path().stem() != "synthetic_check") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  ZIMAGE_CHECK(!out.empty(), "no goldens in '" + dir + "'");
  return out;
}

int cmd_validate(const Args& args) {
  allow_only(args, {"--goldens", "--model", "--dtype", "--golden-dir", "--check-finite"});
  const std::string dtype = args.get("--dtype", "float64");
  ZIMAGE_CHECK(dtype == "float64" || dtype == "float32", "--dtype must be float64 or float32, not '" + dtype + "'");
  ZIMAGE_CHECK(!args.has("--model") || args.has("--goldens"), "--model needs --goldens FILE (goldens dumped from that model)");
  const std::vector<std::string> files =
      args.has("--goldens") ? args.values.at("--goldens") : shipped_goldens(args.get("--golden-dir", ZIMAGE_GOLDEN_DIR));
  size_t total = 0, failed = 0;
  for (const auto& path : files) {
    const auto peek = SafetensorsFile::open(path);
    const std::string kind = peek->metadata().count("kind") ? peek->metadata().at("kind") : "";
    if (!(kind == "model" || kind == "modules" || kind.rfind("rope_", 0) == 0)) {
      // Pipeline, scheduler and VAE goldens are checked by their ctest suites (docs/goldens.md).
      ZIMAGE_CHECK(!args.has("--goldens"), path + ": golden kind '" + kind + "' is not a transformer golden; its checks are in ctest");
      std::printf("== %s (kind %s): checked by ctest -L golden, not by validate\n", path.c_str(), kind.c_str());
      continue;
    }
    const GoldenFile g = open_golden(path, args.get("--model"));
    const auto rows = dtype == "float64" ? validate_golden<double>(g) : validate_golden<float>(g);
    std::printf("== %s (case %s, reference %s)\n%s", path.c_str(), g.case_name.c_str(), dtype.c_str(),
                format_rows(rows, true).c_str());
    for (const auto& r : rows) failed += !r.pass;
    total += rows.size();
  }
  std::printf("%zu passed, %zu failed\n", total - failed, failed);
  return failed ? 1 : 0;
}

}  // namespace zimage::cli

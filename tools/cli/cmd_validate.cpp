// zimage validate: goldens through the reference, one row per module.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "core/choices.h"
#include "io/safetensors.h"
#include "validation/validate.h"
#include "vae/vae_golden.h"

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

// Layer bisection (docs/bisect.md): of the failing teacher-forced rows, the
// module diffusers finished first in its forward (the golden's "modules"
// metadata lists module paths in the order their forward hooks fired, so a
// sub-module comes before the block holding it). Each teacher-forced module
// ran on diffusers' own inputs, so the first failing one is where the
// reference and the checkpoint's diffusers run part ways.
void print_first_divergence(const SafetensorsFile& golden, const std::vector<ValidationRow>& rows) {
  std::vector<std::string> order;
  if (golden.metadata().count("modules")) {
    try {
      order = nlohmann::json::parse(golden.metadata().at("modules")).get<std::vector<std::string>>();
    } catch (const nlohmann::json::exception&) {
      order.clear();
    }
  }
  const ValidationRow* first = nullptr;
  size_t first_pos = SIZE_MAX;
  for (const auto& r : rows) {
    if (r.pass || r.tier.find("teacher") == std::string::npos) continue;
    const size_t pos = size_t(std::find(order.begin(), order.end(), r.module) - order.begin());
    if (!first || pos < first_pos) first = &r, first_pos = pos;
  }
  if (first)
    std::printf("first diverging module (teacher-forced, in diffusers' forward order): %s (rel_rms %.3g)\n",
                first->module.c_str(), first->cmp.rel_rms);
  else if (std::any_of(rows.begin(), rows.end(), [](const ValidationRow& r) { return !r.pass; }))
    std::printf("every teacher-forced module passes; only whole-model rows fail (accumulated error, see docs/bisect.md)\n");
}

int cmd_validate(const Args& args) {
  allow_only(args, {"--goldens", "--model", "--dtype", "--golden-dir", "--check-finite"});
  const std::string dtype = args.get("--dtype", "float64");
  require_choice(dtype, {"float64", "float32"}, "--dtype");
  ZIMAGE_CHECK(!args.has("--model") || args.has("--goldens"), "--model needs --goldens FILE (goldens dumped from that model)");
  const std::vector<std::string> files =
      args.has("--goldens") ? args.values.at("--goldens") : shipped_goldens(args.get("--golden-dir", ZIMAGE_GOLDEN_DIR));
  size_t total = 0, failed = 0;
  for (const auto& path : files) {
    const auto peek = SafetensorsFile::open(path);
    const std::string kind = peek->metadata().count("kind") ? peek->metadata().at("kind") : "";
    if (kind == "vae" || kind == "vae_modules") {  // AutoencoderKL goldens: every hooked module and the whole model
      const VaeGolden g = open_vae_golden(path, args.get("--model"));
      const auto rows = dtype == "float64" ? validate_vae_golden<double>(g) : validate_vae_golden<float>(g);
      std::printf("== %s (kind %s, reference %s)\n%s", path.c_str(), kind.c_str(), dtype.c_str(),
                  format_rows(rows, true).c_str());
      for (const auto& r : rows) failed += !r.pass;
      total += rows.size();
      print_first_divergence(*peek, rows);
      continue;
    }
    if (!(kind == "model" || kind == "modules" || kind.rfind("rope_", 0) == 0)) {
      // Pipeline, scheduler, CFG, generator and text-encoder goldens are checked by their ctest suites (docs/goldens.md).
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
    print_first_divergence(*peek, rows);
  }
  std::printf("%zu passed, %zu failed\n", total - failed, failed);
  return failed ? 1 : 0;
}

}  // namespace zimage::cli

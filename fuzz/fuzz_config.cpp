// libFuzzer target: the input is a config.json. It goes through the project's
// loader, ZImageConfig::from_file (JSON syntax errors included: they must come
// out as zimage::Error), read from a memfd so nothing is written to disk, and
// through ZImageConfig::from_json(nlohmann::json::parse(bytes)). The two must
// agree. An accepted config must validate again, have positive derived sizes
// (head_dim, ffn_hidden, adaln_dim, patch_dim), and survive
// to_json -> dump -> parse -> from_json unchanged.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "fuzz_common.h"
#include "dit/config.h"

using namespace zimage;
using json = nlohmann::json;

namespace {
std::unique_ptr<fuzz::InputFile> g_file;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_file = std::make_unique<fuzz::InputFile>(fuzz::fallback_json_path("config"));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // 1, 2. The file loader and from_json on the parsed document.
  const auto both = fuzz::read_both_ways<ZImageConfig>(
      *g_file, data, size, [](const std::string& path) { return ZImageConfig::from_file(path); },
      [](const json& j) { return ZImageConfig::from_json(j, "fuzz/config.json"); }, "from_file", "config");
  if (!both) return 0;
  ZImageConfig c = both->from_json;
  ZIMAGE_FUZZ_REQUIRE(both->from_file.to_json() == c.to_json(), "from_file and from_json disagree");

  // 3. Accepted: runnable and round-trips (outside any try: an Error here is a finding).
  c.validate("fuzz/config.json (again)");
  ZIMAGE_FUZZ_REQUIRE(c.head_dim() > 0 && c.ffn_hidden() > 0 && c.adaln_dim() > 0 && c.patch_dim() > 0,
                      c.to_json().dump());
  ZIMAGE_FUZZ_REQUIRE(!c.embedder_key().empty(), c.to_json().dump());
  const json out = c.to_json();
  const ZImageConfig back = ZImageConfig::from_json(json::parse(out.dump()), "round trip");
  ZIMAGE_FUZZ_REQUIRE(back.to_json() == out, out.dump() + " vs " + back.to_json().dump());
  return 0;
}

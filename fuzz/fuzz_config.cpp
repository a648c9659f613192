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
  const char* tmp = std::getenv("TMPDIR");
  g_file = std::make_unique<fuzz::InputFile>(std::string(tmp && *tmp ? tmp : "/tmp") + "/zimage_fuzz_config." +
                                             std::to_string(::getpid()) + ".json");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // 1. The file loader.
  g_file->write(data, size);
  std::optional<ZImageConfig> loaded;
  try {
    loaded = ZImageConfig::from_file(g_file->path());
  } catch (const Error& e) {
    fuzz::check_message(e);
  }

  // 2. from_json on the parsed document (a syntax error here must be one from_file refused too).
  const json j = json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    ZIMAGE_FUZZ_REQUIRE(!loaded, "from_file accepted a document json::parse refuses");
    return 0;
  }
  ZImageConfig c;
  try {
    c = ZImageConfig::from_json(j, "fuzz/config.json");
  } catch (const Error& e) {
    fuzz::check_message(e);
    ZIMAGE_FUZZ_REQUIRE(!loaded, "from_file accepted a config from_json refuses");
    return 0;
  }
  ZIMAGE_FUZZ_REQUIRE(loaded && loaded->to_json() == c.to_json(), "from_file and from_json disagree");

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

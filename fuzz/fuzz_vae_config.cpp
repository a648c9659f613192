// libFuzzer target: the input is a VAE config.json (diffusers AutoencoderKL,
// vae/config.h). It goes through the project's loader, load_vae_config (JSON
// syntax errors included: they must come out as zimage::Error), read from a
// memfd so nothing is written to disk, and through
// VaeConfig::from_json(nlohmann::json::parse(bytes)). The two must agree. An
// accepted config must validate again, have a positive spatial factor and
// tile sizes that compute, and survive to_json -> dump -> parse -> from_json
// unchanged.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "fuzz_common.h"
#include "vae/config.h"

using namespace zimage;
using json = nlohmann::json;

namespace {
std::unique_ptr<fuzz::InputFile> g_file;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_file = std::make_unique<fuzz::InputFile>(fuzz::fallback_json_path("vae_config"));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // 1, 2. The file loader and from_json on the parsed document.
  const auto both = fuzz::read_both_ways<VaeConfig>(
      *g_file, data, size, [](const std::string& path) { return load_vae_config(path); },
      [](const json& j) { return VaeConfig::from_json(j, "fuzz/vae/config.json"); }, "load_vae_config", "config");
  if (!both) return 0;
  VaeConfig c = both->from_json;
  ZIMAGE_FUZZ_REQUIRE(both->from_file.to_json() == c.to_json(), "load_vae_config and from_json disagree");

  // 3. Accepted: usable and round-trips (outside any try: an Error here is a finding).
  c.validate("fuzz/vae/config.json (again)");
  ZIMAGE_FUZZ_REQUIRE(c.num_blocks() >= 1 && c.spatial_factor() >= 1, c.to_json().dump());
  ZIMAGE_FUZZ_REQUIRE(c.tile_sample_min_size() > 0 && c.tile_latent_min_size() >= 0, c.to_json().dump());
  const json out = c.to_json();
  const VaeConfig back = VaeConfig::from_json(json::parse(out.dump()), "round trip");
  ZIMAGE_FUZZ_REQUIRE(back.to_json() == out, out.dump() + " vs " + back.to_json().dump());
  return 0;
}

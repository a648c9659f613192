// libFuzzer target: the input is diffusion_pytorch_model.safetensors.index.json
// of a model folder, opened as open_model_folder opens the weights:
// open_weight_folder, then check_complete against the parameters the config
// implies. The config is fixed, so it is built (and its expected parameter
// list computed) once in LLVMFuzzerInitialize, not read from config.json on
// every input (fuzz_config fuzzes that reader).
//
// open_weight_folder takes a directory, so LLVMFuzzerInitialize makes one per
// process (under $TMPDIR, removed at exit) holding a fixed valid config.json
// (a tiny Z-Image: dim 16, 1 layer, 1 refiner layer) and three small valid
// shards, diffusion_pytorch_model-0000{1,2,3}-of-00003.safetensors (F32, BF16,
// F16), with the expected parameters assigned round-robin in name order. The
// index file in that folder is a symlink to a memfd that each run rewrites, so
// the runs themselves write nothing to disk.
//
// ZIMAGE_FUZZ_WRITE_VALID_INDEX=<path> makes LLVMFuzzerInitialize also write
// the index that matches the shards (the seed corpus has it as valid_index.json).
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "fuzz_common.h"
#include "io/safetensors.h"
#include "dit/model_folder.h"

using namespace zimage;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

fs::path g_dir;
std::unique_ptr<fuzz::InputFile> g_index;
std::string g_smallest;  // a small tensor loaded when a folder opens
std::map<std::string, Shape> g_expected;  // expected_parameter_shapes(fixture config)

ZImageConfig fixture_config() {
  ZImageConfig c;
  c.all_patch_size = {2};
  c.all_f_patch_size = {1};
  c.in_channels = 4;
  c.dim = 16;
  c.n_heads = c.n_kv_heads = 2;
  c.n_layers = 1;
  c.n_refiner_layers = 1;
  c.cap_feat_dim = 8;
  c.qk_norm = true;
  c.axes_dims = {2, 2, 4};
  c.axes_lens = {16, 8, 8};
  c.validate("fuzz fixture");
  return c;
}

void remove_dir() {
  std::error_code ec;
  if (!g_dir.empty()) fs::remove_all(g_dir, ec);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  try {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/zimage_fuzz_index_XXXXXX";
    if (!::mkdtemp(tmpl.data())) fuzz::fail("mkdtemp " + tmpl);
    g_dir = tmpl;
    std::atexit(remove_dir);

    const ZImageConfig cfg = fixture_config();
    std::ofstream(g_dir / "config.json") << cfg.to_json().dump(2);  // a complete model folder, though unread here
    g_expected = expected_parameter_shapes(cfg);

    const DType dtypes[3] = {DType::F32, DType::BF16, DType::F16};
    std::vector<SafetensorsWriter> writers(3);
    json weight_map = json::object();
    int i = 0;
    int64_t smallest = -1;
    for (const auto& [name, shape] : g_expected) {
      const int s = i++ % 3;
      Tensor<float> t(shape);
      for (int64_t k = 0; k < t.numel(); ++k) t[k] = float((k % 13) - 6) / 8.0f;
      writers[size_t(s)].add(name, t, dtypes[s]);
      weight_map[name] = "diffusion_pytorch_model-0000" + std::to_string(s + 1) + "-of-00003.safetensors";
      if (smallest < 0 || t.numel() < smallest) smallest = t.numel(), g_smallest = name;
    }
    for (int s = 0; s < 3; ++s)
      writers[size_t(s)].write((g_dir / ("diffusion_pytorch_model-0000" + std::to_string(s + 1) + "-of-00003.safetensors")).string());

    const fs::path index = g_dir / "diffusion_pytorch_model.safetensors.index.json";
    g_index = std::make_unique<fuzz::InputFile>(index.string());
    if (g_index->in_memory()) fs::create_symlink(g_index->path(), index);

    if (const char* out = std::getenv("ZIMAGE_FUZZ_WRITE_VALID_INDEX"))
      std::ofstream(out) << json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump(2) << "\n";
  } catch (const std::exception& e) {
    fuzz::fail(std::string("fixture: ") + e.what());
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  g_index->write(data, size);
  std::shared_ptr<ParamSource> params;
  try {
    // open_model_folder's steps after reading config.json.
    params = open_weight_folder(g_dir.string());
    check_complete(*params, g_expected);
  } catch (const Error& e) {
    fuzz::check_message(e);
    return 0;
  }
  // Opened: the folder is complete, so every expected tensor is there with its shape.
  ZIMAGE_FUZZ_REQUIRE(params->shapes() == g_expected, "shapes differ from the config");
  const Tensor<double> t = params->load(g_smallest);
  ZIMAGE_FUZZ_REQUIRE(int64_t(t.data.size()) == shape_numel(t.shape), g_smallest);
  return 0;
}

#include "vae/vae_golden.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "validation/golden_file.h"
#include "vae/module_table.h"

namespace zimage {

namespace fs = std::filesystem;
using json = nlohmann::json;

bool is_vae_golden_kind(const std::string& kind) {
  return kind == "vae" || kind == "vae_modules" || kind == "vae_sampled";
}

VaeSampledDecode vae_sampled_decode(const VaeGolden& g) {
  ZIMAGE_CHECK(g.kind == "vae_sampled", g.path + ": kind '" + g.kind + "', expected vae_sampled");
  VaeSampledDecode d;
  d.z = g.get<float>("decode:in.z");
  check_vae_latents(g.config, d.z.shape, g.path + ": decode:in.z");
  const int64_t f = g.config.spatial_factor();
  d.image = {d.z.dim(0), g.config.out_channels, f * d.z.dim(2), f * d.z.dim(3)};
  const Tensor<int64_t> rows = g.get<int64_t>("decode.rows");
  d.rows = rows.data;
  d.sampled = g.get<double>("decode.sampled");
  const int64_t n_rows = d.image[0] * d.image[1] * d.image[2];
  bool ok = !d.rows.empty() && d.sampled.shape == Shape{int64_t(d.rows.size()), d.image[3]};
  for (size_t i = 0; ok && i < d.rows.size(); ++i)
    ok = d.rows[i] >= 0 && d.rows[i] < n_rows && (i == 0 || d.rows[i] > d.rows[i - 1]);
  ZIMAGE_CHECK(ok, g.path + ": decode.rows " + shape_str(rows.shape) + " / decode.sampled " + shape_str(d.sampled.shape) +
                       " do not fit the image " + shape_str(d.image) + " (increasing rows of [B*C*H, W])");
  return d;
}

const std::string& VaeGolden::stored(const std::string& name) const {
  auto it = aliases.find(name);
  return it == aliases.end() ? name : it->second;
}

bool VaeGolden::has(const std::string& name) const { return file->contains(stored(name)); }

Shape VaeGolden::shape(const std::string& name) const { return file->view(stored(name)).shape; }

std::vector<std::string> VaeGolden::outputs() const {
  std::vector<std::string> out;
  for (const auto& n : file->names())
    if (n.find(':') == std::string::npos) out.push_back(n);
  for (const auto& [n, target] : aliases)
    if (n.find(':') == std::string::npos) out.push_back(n);
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

json parse_meta_json(const std::string& path, const std::string& key, const std::string& text) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    std::string what = e.what();
    for (char& c : what)
      if (c == '\n' || c == '\r') c = ' ';
    throw Error(path + ": golden metadata '" + key + "' is not JSON: " + what);
  }
}

}  // namespace

VaeGolden open_vae_golden(const std::string& path, const std::string& model_dir) {
  VaeGolden g;
  g.path = path;
  const GoldenHeader h = golden_header(path, "", {"diffusers_version", "diffusers_commit", "torch_version", "dtype",
                                                  "seed", "command", "diffusers_vae_blobs"});
  g.file = h.file;
  const auto& md = g.file->metadata();
  auto meta = [&](const std::string& key) -> const std::string& { return h.meta(key); };
  g.case_name = meta("case");
  g.kind = meta("kind");
  ZIMAGE_CHECK(is_vae_golden_kind(g.kind),
               path + ": golden kind '" + g.kind + "' is not a VAE golden (vae, vae_modules, vae_sampled)");
  g.config = VaeConfig::from_json(parse_meta_json(path, "config", meta("config")), path + " (metadata config)");
  if (md.count("aliases")) {
    const json a = parse_meta_json(path, "aliases", md.at("aliases"));
    ZIMAGE_CHECK(a.is_object(), path + ": golden metadata 'aliases' is not an object");
    for (const auto& [name, target] : a.items()) {
      ZIMAGE_CHECK(target.is_string() && g.file->contains(target.get<std::string>()),
                   path + ": alias '" + name + "' names " + target.dump() + ", which is not a stored tensor");
      ZIMAGE_CHECK(!g.file->contains(name), path + ": '" + name + "' is both stored and an alias");
      g.aliases[name] = target.get<std::string>();
    }
  }
  if (md.count("tile")) {
    const json t = parse_meta_json(path, "tile", md.at("tile"));
    g.tiles.tile_latent = t.at("tile_latent_min_size").get<int>();
    g.tiles.tile_sample = t.at("tile_sample_min_size").get<int>();
    g.tiles.overlap = t.at("tile_overlap_factor").get<double>();
  }
  for (const auto& name : g.file->names()) screen_golden_tensor(path, g.file->view(name));

  std::string dir = model_dir;
  if (dir.empty() && md.count("model_dir") && !md.at("model_dir").empty())
    dir = (fs::path(path).parent_path() / md.at("model_dir")).string();
  if (!dir.empty()) {
    VaeModel m = open_vae_folder(dir);
    ZIMAGE_CHECK(m.config.to_json() == g.config.to_json(),
                 dir + "/config.json differs from the config of golden " + path + " (a folder dumped for another case?)");
    g.params = m.params;
  } else {
    g.params = synthetic_param_source(meta("synthetic_weights"));
  }
  return g;
}

std::optional<std::string> vae_input_name(const VaeGolden& g, const std::string& row) {
  // encode.mean and encode.logvar are the two halves of one call: encode:in.x.
  const std::string path = row.rfind("encode.", 0) == 0 ? "encode" : row;
  for (const char* arg : {"input", "input_tensor", "hidden_states", "sample", "z", "x", "latents"}) {
    const std::string n = path + ":in." + arg;
    if (g.has(n)) return n;
  }
  return std::nullopt;
}

template <class T>
std::vector<ValidationRow> validate_vae_golden(const VaeGolden& g) {
  std::vector<ValidationRow> rows;
  for (const auto& name : g.outputs()) {
    const auto got = run_vae_module<T>(g, name);
    if (!got) continue;  // an output without recorded inputs (none today)
    ValidationRow r;
    r.module = name;
    r.tier = name == "decode" || name == "tiled_decode" || name.rfind("encode.", 0) == 0 ? "T2 whole-model"
                                                                                        : "T2 teacher-forced";
    const Tensor<double> ref = g.get<double>(name);
    r.shape = ref.shape;
    r.cmp = numerics::compare(*got, ref);
    r.budget = vae_row_budget(g, name);
    r.pass = numerics::passes(r.cmp, r.budget);
    rows.push_back(std::move(r));
  }
  return rows;
}

#define ZIMAGE_VAE_GOLDEN(T)                                                                  \
  template std::vector<ValidationRow> validate_vae_golden<T>(const VaeGolden&);
ZIMAGE_VAE_GOLDEN(float)
ZIMAGE_VAE_GOLDEN(double)
#undef ZIMAGE_VAE_GOLDEN

}  // namespace zimage

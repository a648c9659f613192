// zimage inspect DIR|FILE: what a checkpoint holds, without running it.
// A diffusers pipeline folder (model_index.json), one model folder
// (config.json + diffusion_pytorch_model[.safetensors | shards + index]), or
// a ComfyUI single-file transformer. For each component: class, config,
// parameter count implied by the config, tensors found (count, values,
// bytes, dtypes), bf16-exactness of the stored values (an fp32 value is
// bf16-exact when its low 16 bits are 0), and everything missing, unexpected
// or of the wrong shape. Exit status 0 when nothing is wrong, 1 otherwise.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "cli.h"
#include "io/safetensors.h"
#include "dit/comfy_layout.h"
#include "io/held_bf16.h"
#include "dit/model_folder.h"
#include "vae/autoencoder_kl.h"

namespace zimage::cli {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string commas(int64_t v) {
  std::string s = std::to_string(v), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

json read_json(const fs::path& p) {
  std::ifstream in(p);
  ZIMAGE_CHECK(in, p.string() + ": cannot open");
  try {
    return json::parse(in);
  } catch (const json::exception&) {
    throw Error(p.string() + ": not valid JSON");
  }
}

struct Report {
  int problems = 0;
  void problem(const std::string& what) {
    ++problems;
    std::printf("  PROBLEM: %s\n", what.c_str());
  }
};

// --check-finite: every weight is also scanned for NaN/Inf (a problem naming
// the tensor, the count and the first flat index).
bool g_check_finite = false;

// Counts, dtypes and bf16-exactness of every tensor a source holds in files.
void describe_tensors(const ParamSource& src, bool scan_values, Report& r) {
  const auto shapes = src.shapes();
  int64_t values = 0, bytes = 0;
  std::map<std::string, int> dtypes;
  int exact = 0, scanned = 0;
  std::string first_inexact;
  for (const auto& [name, shape] : shapes) {
    values += shape_numel(shape);
    const TensorView* v = src.view(name);
    if (!v) continue;
    bytes += int64_t(v->nbytes);
    ++dtypes[dtype_name(v->dtype)];
    if (scan_values) {
      int64_t bad = -1;
      ++scanned;
      if (view_is_bf16_exact(*v, &bad))
        ++exact;
      else if (first_inexact.empty())
        first_inexact = "'" + name + "' (first at flat index " + std::to_string(bad) + ")";
      release_mapped_pages(*v);
    }
    if (g_check_finite && dtype_is_float(v->dtype)) {
      const Tensor<float> t = to_tensor<float>(*v);
      int64_t n = 0, first = -1;
      for (int64_t i = 0; i < t.numel(); ++i)
        if (!std::isfinite(t[i]) && n++ == 0) first = i;
      if (n)
        r.problem("'" + name + "' holds " + std::to_string(n) + " NaN/Inf values, the first at flat index " +
                  std::to_string(first));
      release_mapped_pages(*v);
    }
  }
  std::printf("  tensors: %zu, values: %s, bytes: %s\n", shapes.size(), commas(values).c_str(), commas(bytes).c_str());
  std::string d;
  for (const auto& [k, n] : dtypes) d += (d.empty() ? "" : ", ") + k + " x " + std::to_string(n);
  std::printf("  dtypes: %s\n", d.empty() ? "-" : d.c_str());
  if (!scan_values) {
    std::printf("  bf16-exact: not scanned (--no-values)\n");
  } else if (exact == scanned) {
    std::printf("  bf16-exact: all %d tensors (every value's low 16 fp32 bits are 0: can be held as bf16)\n", scanned);
  } else {
    std::printf("  bf16-exact: %d of %d tensors; not: %s and %d more (hold as fp32)\n", exact, scanned,
                first_inexact.c_str(), scanned - exact - 1);
  }
}

// Expected vs found, by name and shape: every difference listed (up to 8 of each).
void compare_params(const ParamSource& src, const std::map<std::string, Shape>& expected, Report& r) {
  const auto have = src.shapes();
  std::vector<std::string> missing, unexpected, wrong;
  for (const auto& [n, s] : expected) {
    auto it = have.find(n);
    if (it == have.end()) missing.push_back(n + " " + shape_str(s));
    else if (it->second != s) wrong.push_back(n + " " + shape_str(it->second) + " (config: " + shape_str(s) + ")");
  }
  for (const auto& [n, s] : have)
    if (!expected.count(n)) unexpected.push_back(n + " " + shape_str(s));
  auto list = [&](const char* what, const std::vector<std::string>& v) {
    if (v.empty()) return;
    r.problem(std::to_string(v.size()) + " " + what + " tensor(s)");
    for (size_t i = 0; i < v.size() && i < 8; ++i) std::printf("    %s\n", v[i].c_str());
    if (v.size() > 8) std::printf("    ... and %zu more\n", v.size() - 8);
  };
  list("missing", missing);
  list("unexpected", unexpected);
  list("wrongly shaped", wrong);
  if (missing.empty() && unexpected.empty() && wrong.empty())
    std::printf("  complete: every parameter the config implies, no others, shapes match\n");
}

int64_t count(const std::map<std::string, Shape>& m) {
  int64_t n = 0;
  for (const auto& [k, s] : m) n += shape_numel(s);
  return n;
}

void print_config(const json& j) {
  json c = j;
  for (auto it = c.begin(); it != c.end();)
    it = it.key().rfind("_", 0) == 0 ? c.erase(it) : std::next(it);
  std::printf("  config: %s\n", c.dump().c_str());
}

// Any folder of *.safetensors files (text encoder, or a model we do not check by config).
class FilesSource : public ParamSource {
 public:
  explicit FilesSource(const fs::path& dir) : describe_(dir.string()) {
    std::vector<fs::path> paths;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".safetensors") paths.push_back(e.path());
    std::sort(paths.begin(), paths.end());
    for (const auto& p : paths) {
      files_.push_back(SafetensorsFile::open(p.string()));
      for (const auto& n : files_.back()->names()) where_[n] = files_.back().get();
    }
  }
  std::map<std::string, Shape> shapes() const override {
    std::map<std::string, Shape> o;
    for (const auto& [n, f] : where_) o[n] = f->view(n).shape;
    return o;
  }
  Tensor<double> load(const std::string& n) const override { return where_.at(n)->get<double>(n); }
  const TensorView* view(const std::string& n) const override { return &where_.at(n)->view(n); }
  std::string describe() const override { return describe_; }
  size_t n_files() const { return files_.size(); }

 private:
  std::string describe_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> where_;
};

// A diffusers model folder checked against its config: the config, the parameters it implies, the
// weights found and how they compare. `parse(config.json's JSON, its path)` reads the config (its
// zimage::Error is the problem reported); `expected_of(config)` lists the parameters it implies.
template <class Parse, class ExpectedOf>
void inspect_model_folder(const fs::path& dir, bool scan, Report& r, Parse parse, ExpectedOf expected_of) {
  const fs::path cfgp = dir / "config.json";
  if (!fs::exists(cfgp)) return r.problem(dir.string() + ": no config.json");
  const json j = read_json(cfgp);
  print_config(j);
  decltype(parse(j, cfgp.string())) cfg;
  try {
    cfg = parse(j, cfgp.string());
  } catch (const Error& e) {
    return r.problem(e.what());
  }
  const auto expected = expected_of(cfg);
  std::printf("  parameters implied by the config: %s in %zu tensors\n", commas(count(expected)).c_str(), expected.size());
  std::shared_ptr<ParamSource> src;
  try {
    src = open_weight_folder(dir.string());
  } catch (const Error& e) {
    return r.problem(std::string("weights: ") + e.what());
  }
  std::printf("  weights: %s\n", src->describe().c_str());
  describe_tensors(*src, scan, r);
  compare_params(*src, expected, r);
}

void inspect_transformer(const fs::path& dir, bool scan, Report& r) {
  inspect_model_folder(
      dir, scan, r, [](const json& j, const std::string& path) { return ZImageConfig::from_json(j, path); },
      [](const ZImageConfig& cfg) { return expected_parameter_shapes(cfg); });
}

void inspect_vae(const fs::path& dir, bool scan, Report& r) {
  inspect_model_folder(
      dir, scan, r, [](const json& j, const std::string& path) { return VaeConfig::from_json(j, path); },
      [](const VaeConfig& cfg) { return expected_vae_parameter_shapes(cfg); });
}

void inspect_files_only(const fs::path& dir, bool scan, Report& r) {
  if (fs::exists(dir / "config.json")) print_config(read_json(dir / "config.json"));
  FilesSource src(dir);
  if (src.n_files() == 0) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    std::string s;
    for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
    std::printf("  files: %s\n", s.empty() ? "(none)" : s.c_str());
    return;
  }
  std::printf("  weights: %zu safetensors file(s) (not checked against a config: this reference does not run it)\n",
              src.n_files());
  describe_tensors(src, scan, r);
}

// ComfyUI single file: no config inside; the config is read off the shapes.
void inspect_comfy(const std::string& path, bool scan, Report& r) {
  const auto src = open_comfy_single_file(path);
  const auto shapes = src->shapes();
  std::printf("%s: ComfyUI single-file Z-Image transformer (keys mapped to diffusers' names as\n"
              "  diffusers' convert_z_image_transformer_checkpoint_to_diffusers does; see reference/dit/comfy_layout.h)\n",
              path.c_str());
  ZImageConfig cfg;
  auto dim0 = [&](const std::string& n, int i) -> int64_t {
    auto it = shapes.find(n);
    return it == shapes.end() || int(it->second.size()) <= i ? -1 : it->second[size_t(i)];
  };
  auto count_prefix = [&](const std::string& p) {
    int n = 0;
    while (shapes.count(p + std::to_string(n) + ".attention_norm1.weight")) ++n;
    return n;
  };
  cfg.dim = int(dim0("cap_embedder.1.weight", 0));
  cfg.cap_feat_dim = int(dim0("cap_embedder.1.weight", 1));
  cfg.in_channels = int(dim0("all_x_embedder.2-1.weight", 1) / 4);
  const int64_t hd = dim0("layers.0.attention.norm_q.weight", 0);
  cfg.n_heads = cfg.n_kv_heads = hd > 0 ? int(cfg.dim / hd) : 0;
  cfg.n_layers = count_prefix("layers.");
  cfg.n_refiner_layers = count_prefix("noise_refiner.");
  std::printf("  config read from the shapes: dim %d, n_heads %d, n_layers %d, n_refiner_layers %d, cap_feat_dim %d, "
              "in_channels %d\n  (the file has no config: axes_dims, axes_lens, rope_theta, t_scale, norm_eps are "
              "Turbo's values, not checked)\n",
              cfg.dim, cfg.n_heads, cfg.n_layers, cfg.n_refiner_layers, cfg.cap_feat_dim, cfg.in_channels);
  if (cfg.dim <= 0 || cfg.n_heads <= 0 || cfg.in_channels <= 0) return r.problem("cannot read the config off the shapes");
  if (hd != 128) {  // Turbo's axes_dims sum to 128; pick a split for other head dims
    const int a = int(hd) / 4 / 2 * 2, b = (int(hd) - a) / 2 / 2 * 2;
    cfg.axes_dims = {int(hd) - 2 * b, b, b};
  }
  const auto expected = expected_parameter_shapes(cfg);
  std::printf("  parameters implied: %s in %zu tensors\n", commas(count(expected)).c_str(), expected.size());
  describe_tensors(*src, scan, r);
  compare_params(*src, expected, r);
}

}  // namespace

int cmd_inspect(int argc, char** argv) {
  const std::vector<std::string> flags = {"--no-values", "--check-finite"};
  const Args a = parse_args(argc, argv, {flags, 1, "inspect: ", flags});
  ZIMAGE_CHECK(!a.positional.empty(), "inspect: missing DIR|FILE (usage: zimage inspect DIR|FILE [--no-values])");
  const std::string target = a.positional[0];
  const bool scan = !a.has("--no-values");
  if (a.has("--check-finite")) g_check_finite = true;
  const fs::path p(target);
  std::error_code ec;
  ZIMAGE_CHECK(fs::exists(p, ec), target + ": does not exist");
  Report r;
  if (fs::is_regular_file(p)) {
    const auto f = SafetensorsFile::open(target);
    if (is_comfy_zimage_file(*f)) {
      inspect_comfy(target, scan, r);
    } else {
      throw Error(target + ": a single safetensors file that is not a ComfyUI Z-Image transformer (no "
                  "'model.diffusion_model.layers.0.adaLN_modulation.0.weight' key nor fused attention.qkv); "
                  "for a diffusers model give its folder");
    }
  } else if (fs::exists(p / "model_index.json")) {
    const json index = read_json(p / "model_index.json");
    std::printf("%s: diffusers pipeline %s (diffusers %s)\n", target.c_str(),
                index.value("_class_name", std::string("?")).c_str(), index.value("_diffusers_version", std::string("?")).c_str());
    std::set<std::string> listed;
    for (const auto& [name, v] : index.items()) {
      if (name.rfind("_", 0) == 0) continue;
      listed.insert(name);
      const std::string cls = v.is_array() && v.size() == 2 && v[1].is_string() ? v[1].get<std::string>() : "null";
      std::printf("component %s: %s\n", name.c_str(), cls.c_str());
      const fs::path d = p / name;
      if (cls == "null") {
        std::printf("  (not part of this pipeline)\n");
        continue;
      }
      if (!fs::is_directory(d)) {
        r.problem("model_index.json lists " + name + " but " + d.string() + " is missing");
        continue;
      }
      if (cls == "ZImageTransformer2DModel") inspect_transformer(d, scan, r);
      else if (cls == "AutoencoderKL") inspect_vae(d, scan, r);
      else if (name == "scheduler" && fs::exists(d / "scheduler_config.json")) print_config(read_json(d / "scheduler_config.json"));
      else inspect_files_only(d, scan, r);
    }
    for (const char* need : {"transformer", "vae", "scheduler", "text_encoder", "tokenizer"})
      if (!listed.count(need)) r.problem(std::string("model_index.json does not list ") + need);
    for (const auto& e : fs::directory_iterator(p))
      if (e.is_directory() && !listed.count(e.path().filename().string()))
        std::printf("note: folder %s is not listed in model_index.json\n", e.path().filename().c_str());
  } else if (fs::exists(p / "config.json")) {
    const json j = read_json(p / "config.json");
    const std::string cls = j.value("_class_name", std::string(""));
    std::printf("%s: model folder %s\n", target.c_str(), cls.empty() ? "(no _class_name)" : cls.c_str());
    if (cls == "AutoencoderKL") inspect_vae(p, scan, r);
    else if (cls == "ZImageTransformer2DModel" || (cls.empty() && j.contains("cap_feat_dim"))) inspect_transformer(p, scan, r);
    else inspect_files_only(p, scan, r);
  } else {
    throw Error(target + ": neither a pipeline folder (model_index.json), a model folder (config.json) nor a "
                "ComfyUI single-file checkpoint");
  }
  std::printf("%s\n", r.problems ? ("inspect: " + std::to_string(r.problems) + " problem(s) found").c_str()
                                   : "inspect: no problems found");
  return r.problems ? 1 : 0;
}

}  // namespace zimage::cli

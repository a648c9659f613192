#include "dit/synthetic_checkpoint.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "dit/model_folder.h"
#include "io/synthetic.h"

namespace zimage {

namespace fs = std::filesystem;
using json = nlohmann::json;

SyntheticRange dit_synthetic_rule(const std::string& name, const Shape& shape) {
  const std::string leaf = name.substr(name.rfind('.') + 1);
  if (name == "x_pad_token" || name == "cap_pad_token") return {0.0, 1.0};
  // RMSNorm weights: every *norm*.weight of the transformer, and cap_embedder.0.
  if (leaf == "weight" && (name.find("norm") != std::string::npos || name == "cap_embedder.0.weight")) return {1.0, 0.2};
  if (leaf == "bias") return {0.0, 0.05};
  ZIMAGE_CHECK(leaf == "weight" && shape.size() == 2, "dit_synthetic_rule: no rule for parameter '" + name + "' " + shape_str(shape));
  return {0.0, 1.0 / std::sqrt(double(shape[1]))};
}

void synthetic_bf16_values(uint64_t seed, const std::string& name, const Shape& shape, float* out) {
  const auto [offset, scale] = dit_synthetic_rule(name, shape);
  const int64_t n = shape_numel(shape);
  synthetic_fill(seed, name, offset, scale, out, n);
#pragma omp parallel for schedule(static) if (n >= (int64_t(1) << 20))
  for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_float(float_to_bf16(out[i]));
}

namespace {

class SyntheticDitSource : public ParamSource {
 public:
  SyntheticDitSource(const ZImageConfig& cfg, uint64_t seed) : seed_(seed), shapes_(expected_parameter_shapes(cfg)) {}
  std::map<std::string, Shape> shapes() const override { return shapes_; }
  Tensor<double> load(const std::string& name) const override { return load_float(name).cast<double>(); }
  Tensor<float> load_float(const std::string& name) const override {
    const auto it = shapes_.find(name);
    ZIMAGE_CHECK(it != shapes_.end(), describe() + ": no tensor '" + name + "'");
    Tensor<float> t(it->second);
    synthetic_bf16_values(seed_, name, it->second, t.ptr());
    return t;
  }
  std::string describe() const override { return "synthetic bf16-exact transformer (seed " + std::to_string(seed_) + ")"; }

 private:
  uint64_t seed_;
  std::map<std::string, Shape> shapes_;
};

}  // namespace

std::shared_ptr<ParamSource> synthetic_dit_source(const ZImageConfig& cfg, uint64_t seed) {
  cfg.validate("synthetic transformer config");
  return std::make_shared<SyntheticDitSource>(cfg, seed);
}

namespace {

void write_all(std::FILE* f, const void* p, size_t n, const std::string& path) {
  ZIMAGE_CHECK(std::fwrite(p, 1, n, f) == n, path + ": write failed (disk full?)");
}

}  // namespace

int64_t write_synthetic_checkpoint(const ZImageConfig& cfg, const std::string& dir, const SyntheticCheckpointOptions& opt,
                                   const std::function<void(int64_t, int64_t)>& progress) {
  ZIMAGE_CHECK(opt.dtype == DType::F32 || opt.dtype == DType::BF16, "write-synthetic: dtype must be F32 or BF16");
  cfg.validate("write-synthetic config");
  const size_t es = dtype_size(opt.dtype);
  const auto params = expected_parameter_shapes(cfg);

  // Shards: parameters in name order, a new shard when the next would pass the limit.
  std::vector<std::vector<std::string>> shards(1);
  int64_t in_shard = 0, total = 0;
  for (const auto& [name, shape] : params) {
    const int64_t b = shape_numel(shape) * int64_t(es);
    if (in_shard > 0 && in_shard + b > opt.max_shard_bytes) shards.emplace_back(), in_shard = 0;
    shards.back().push_back(name);
    in_shard += b;
    total += b;
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  ZIMAGE_CHECK(fs::is_directory(dir), dir + ": cannot create the checkpoint folder" + (ec ? ": " + ec.message() : ""));

  json weight_map = json::object();
  int64_t written = 0;
  std::vector<float> values;
  std::vector<uint8_t> bytes;
  for (size_t s = 0; s < shards.size(); ++s) {
    char fname[96];
    std::snprintf(fname, sizeof fname, "diffusion_pytorch_model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    json header = json::object();
    int64_t off = 0;
    for (const std::string& name : shards[s]) {
      const Shape& shape = params.at(name);
      const int64_t b = shape_numel(shape) * int64_t(es);
      header[name] = {{"dtype", dtype_name(opt.dtype)}, {"shape", shape}, {"data_offsets", {off, off + b}}};
      off += b;
      weight_map[name] = fname;
    }
    header["__metadata__"] = {{"format", "pt"}, {"producer", "zimage write-synthetic"}, {"seed", std::to_string(opt.seed)},
                              {"values", "counter-based synthetic weights (io/synthetic.h), rounded to bf16"}};
    std::string h = header.dump();
    while (h.size() % 8) h += ' ';  // data section 8-byte aligned
    const std::string path = (fs::path(dir) / fname).string(), tmp = path + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    ZIMAGE_CHECK(f != nullptr, tmp + ": cannot open for writing");
    const uint64_t hl = h.size();
    uint8_t le[8];
    for (int i = 0; i < 8; ++i) le[i] = uint8_t(hl >> (8 * i));
    write_all(f, le, 8, tmp);
    write_all(f, h.data(), h.size(), tmp);
    for (const std::string& name : shards[s]) {
      const Shape& shape = params.at(name);
      const int64_t n = shape_numel(shape);
      values.resize(size_t(n));
      synthetic_bf16_values(opt.seed, name, shape, values.data());
      if (opt.dtype == DType::F32) {
        write_all(f, values.data(), size_t(n) * 4, tmp);  // little-endian host
      } else {
        bytes.resize(size_t(n) * 2);
        for (int64_t i = 0; i < n; ++i) {
          uint32_t b;
          std::memcpy(&b, &values[size_t(i)], 4);
          const uint16_t hi = uint16_t(b >> 16);  // exact: the value is bf16-rounded
          std::memcpy(&bytes[size_t(i) * 2], &hi, 2);
        }
        write_all(f, bytes.data(), bytes.size(), tmp);
      }
      written += n * int64_t(es);
      if (progress) progress(written, total);
    }
    ZIMAGE_CHECK(std::fclose(f) == 0, tmp + ": write failed on close (disk full?)");
    fs::rename(tmp, path);
  }
  const json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  auto write_text = [&](const std::string& name, const std::string& text) {
    const std::string path = (fs::path(dir) / name).string();
    std::ofstream o(path + ".tmp");
    o << text << "\n";
    o.close();
    ZIMAGE_CHECK(o.good(), path + ".tmp: write failed");
    fs::rename(path + ".tmp", path);
  };
  write_text("diffusion_pytorch_model.safetensors.index.json", index.dump(2));
  json c = cfg.to_json();
  c["_class_name"] = "ZImageTransformer2DModel";
  write_text("config.json", c.dump(2));
  return total;
}

}  // namespace zimage

// Synthetic weight generator and its ParamSource (see synthetic.h).
// The double arithmetic below must not be fused into FMAs: the project builds
// with -ffp-contract=off, and each operation is a separate statement.
#include "io/synthetic.h"

#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "io/param_source.h"

namespace zimage {

namespace {
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;
}

uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t mix64(uint64_t z) {
  z ^= z >> 30;
  z *= 0xBF58476D1CE4E5B9ull;
  z ^= z >> 27;
  z *= 0x94D049BB133111EBull;
  z ^= z >> 31;
  return z;
}

void synthetic_fill(uint64_t seed, const std::string& name, double offset, double scale, float* out, int64_t n) {
  const uint64_t key = mix64((seed * kGolden) ^ fnv1a64(name));
  // Every value depends on its index only, so the threads' split cannot change a bit; large
  // tensors only (a real-size model is 10^10 values: 16 threads make minutes seconds).
#pragma omp parallel for schedule(static) if (n >= (int64_t(1) << 20))
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t bits = mix64(key + (uint64_t(i) + 1) * kGolden);
    const double u = double(bits >> 11) * 0x1p-53;  // exact
    const double centered = 2.0 * u - 1.0;          // exact
    const double scaled = scale * centered;         // one rounding
    const double value = offset + scaled;           // one rounding
    out[i] = static_cast<float>(value);             // one rounding
  }
}

// ---------------------------------------------------------------- ParamSource

namespace {

using json = nlohmann::json;

struct SyntheticSpec {
  Shape shape;
  double offset = 0;
  double scale = 0;
};

class SyntheticParamSource : public ParamSource {
 public:
  SyntheticParamSource(uint64_t seed, std::map<std::string, SyntheticSpec> specs) : seed_(seed), specs_(std::move(specs)) {}

  std::map<std::string, Shape> shapes() const override {
    std::map<std::string, Shape> out;
    for (const auto& [name, s] : specs_) out[name] = s.shape;
    return out;
  }

  Tensor<double> load(const std::string& name) const override { return load_float(name).cast<double>(); }

  // The generated float32 values themselves (load() widens them): no double copy.
  Tensor<float> load_float(const std::string& name) const override {
    auto it = specs_.find(name);
    ZIMAGE_CHECK(it != specs_.end(), describe() + ": no tensor '" + name + "'");
    const SyntheticSpec& s = it->second;
    Tensor<float> t(s.shape);
    synthetic_fill(seed_, name, s.offset, s.scale, t.ptr(), t.numel());
    return t;
  }

  std::string describe() const override { return "synthetic(seed=" + std::to_string(seed_) + ")"; }

 private:
  uint64_t seed_;
  std::map<std::string, SyntheticSpec> specs_;
};

uint64_t parse_seed(const json& v) {
  const std::string ctx = "synthetic_weights: seed " + v.dump();
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  ZIMAGE_CHECK(!v.is_number_integer(), ctx + " must not be negative");
  if (v.is_string()) {  // a decimal string, as metadata values are
    const std::string s = v.get<std::string>();
    ZIMAGE_CHECK(!s.empty() && s.size() <= 20 && s.find_first_not_of("0123456789") == std::string::npos,
                 ctx + " is not a non-negative integer");
    try {
      return std::stoull(s);
    } catch (const std::exception&) {
      throw Error(ctx + " does not fit 64 bits");
    }
  }
  throw Error(ctx + " must be a non-negative integer");
}

}  // namespace

std::shared_ptr<ParamSource> synthetic_param_source(const std::string& spec_json) {
  json j;
  try {
    j = json::parse(spec_json);
  } catch (const json::exception& e) {
    std::string what = e.what();
    for (char& c : what)
      if (c == '\n' || c == '\r') c = ' ';
    throw Error("synthetic_weights: not valid JSON: " + what);
  }
  ZIMAGE_CHECK(j.is_object() && j.contains("seed") && j.contains("tensors") && j["tensors"].is_object(),
               "synthetic_weights: expected {\"seed\": S, \"tensors\": {name: {shape, offset, scale}}}");
  const uint64_t seed = parse_seed(j["seed"]);
  std::map<std::string, SyntheticSpec> specs;
  for (const auto& [name, t] : j["tensors"].items()) {
    const std::string ctx = "synthetic_weights: tensor '" + name + "'";
    ZIMAGE_CHECK(t.is_object(), ctx + ": not an object");
    for (const char* k : {"shape", "offset", "scale"}) ZIMAGE_CHECK(t.contains(k), ctx + ": missing '" + k + "'");
    ZIMAGE_CHECK(t["offset"].is_number() && t["scale"].is_number(), ctx + ": offset and scale must be numbers");
    ZIMAGE_CHECK(t["shape"].is_array(), ctx + ": shape must be a list");
    SyntheticSpec s;
    for (const json& d : t["shape"]) {
      ZIMAGE_CHECK(d.is_number_integer() && (d.is_number_unsigned() || d.get<int64_t>() >= 0) &&
                       d.get<uint64_t>() <= uint64_t(std::numeric_limits<int32_t>::max()),
                   ctx + ": shape " + t["shape"].dump() + " is not a list of non-negative integers");
      s.shape.push_back(d.get<int64_t>());
    }
    s.offset = t["offset"].get<double>();
    s.scale = t["scale"].get<double>();
    specs.emplace(name, std::move(s));
  }
  return std::make_shared<SyntheticParamSource>(seed, std::move(specs));
}

std::string synthetic_spec_json(uint64_t seed, const std::map<std::string, Shape>& shapes, SyntheticRule rule) {
  json tensors = json::object();
  for (const auto& [name, shape] : shapes) {
    const SyntheticRange r = rule(name, shape);
    tensors[name] = {{"shape", shape}, {"offset", r.offset}, {"scale", r.scale}};
  }
  return json{{"seed", seed}, {"tensors", tensors}}.dump();
}

}  // namespace zimage

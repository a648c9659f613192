// Helpers shared by the tests: synthetic models (same rules as
// tools/golden/synthetic.py), seeded random inputs, and the gtest glue that
// prints every comparison with its headroom.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "dit/model_folder.h"
#include "numerics/tolerance.h"

namespace zimage::testing {

// Seed for random inputs: ZIMAGE_TEST_SEED replays a failing run.
inline uint64_t test_seed() {
  const char* s = std::getenv("ZIMAGE_TEST_SEED");
  return s ? std::strtoull(s, nullptr, 10) : 20261122ull;
}

// Synthetic-weight spec for every parameter of `cfg`, with the rules the
// golden dumper uses: Linear weights U(+-1/sqrt(fan_in)), biases U(+-0.05),
// norm weights 1 + U(+-0.2), pad tokens U(+-1).
inline std::string synthetic_spec(const ZImageConfig& cfg, uint64_t seed) {
  nlohmann::json tensors = nlohmann::json::object();
  for (const auto& [name, shape] : expected_parameter_shapes(cfg)) {
    double offset = 0, scale;
    const bool is_norm = name.find("norm") != std::string::npos || name == "cap_embedder.0.weight";
    if (name == "x_pad_token" || name == "cap_pad_token") scale = 1.0;
    else if (is_norm) offset = 1.0, scale = 0.2;
    else if (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0) scale = 0.05;
    else scale = 1.0 / std::sqrt(double(shape.back()));
    tensors[name] = {{"shape", shape}, {"offset", offset}, {"scale", scale}};
  }
  return nlohmann::json{{"seed", seed}, {"tensors", tensors}}.dump();
}

// Synthetic weights (seed 42) for layers.0 of the Turbo config only: a
// real-size block without the other 33.
inline std::shared_ptr<ParamSource> real_block_params() {
  const ZImageConfig cfg;  // defaults are Z-Image-Turbo's
  auto spec = nlohmann::json::parse(synthetic_spec(cfg, 42));
  nlohmann::json kept = nlohmann::json::object();
  for (auto& [name, t] : spec["tensors"].items())
    if (name.rfind("layers.0.", 0) == 0) kept[name] = t;
  spec["tensors"] = kept;
  return synthetic_param_source(spec.dump());
}

// A tiny Z-Image config (real structure, narrow width).
inline ZImageConfig tiny_config(int n_layers = 2) {
  ZImageConfig c;
  c.dim = 64;
  c.n_heads = 2;
  c.n_kv_heads = 2;
  c.n_layers = n_layers;
  c.n_refiner_layers = 2;
  c.cap_feat_dim = 32;
  c.axes_dims = {8, 12, 12};
  c.axes_lens = {1536, 512, 512};
  return c;
}

template <class T>
Tensor<T> randn(Shape shape, uint64_t seed, double stddev = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd(0.0, stddev);
  Tensor<T> t(std::move(shape));
  for (auto& v : t.data) v = T(nd(rng));
  return t;
}

// EXPECT that `cmp` passes `budget`, printing the measurements either way.
inline void expect_within(const std::string& what, const numerics::Comparison& cmp, const numerics::Budget& budget) {
  const std::string line = what + ": " + numerics::describe(cmp, budget);
  std::printf("  %s\n", line.c_str());
  EXPECT_TRUE(numerics::passes(cmp, budget)) << line << "\n  chain: " << budget.chain << "\n  seed " << test_seed();
}

inline void expect_exact(const std::string& what, const numerics::Comparison& cmp) {
  const std::string line = what + ": " + numerics::describe_exact(cmp);
  std::printf("  %s\n", line.c_str());
  EXPECT_TRUE(numerics::passes_exact(cmp)) << line;
}

// gtest-safe name: every character outside [A-Za-z0-9_] becomes '_'.
inline std::string test_name(std::string s) {
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

}  // namespace zimage::testing

// T1: every module in float against the same module in double (the truth),
// at a tiny width with synthetic weights, within the fp32 chain budget of
// reference/numerics/tolerance.h. Shapes pair a multiple of 32 with ragged
// lengths (97, 1025).
#include "dit/transformer.h"
#include "support/test_support.h"
#include "dit/module_table.h"

namespace zimage {
namespace {

using numerics::Tier;
using testing::test_seed;

struct T1Case {
  std::string module;  // what to run
  int64_t B, L;
  bool masked;
};

std::string case_name(const ::testing::TestParamInfo<T1Case>& info) {
  const T1Case& c = info.param;
  return testing::test_name(c.module + "_B" + std::to_string(c.B) + "_L" + std::to_string(c.L) + (c.masked ? "_masked" : ""));
}

class ModuleT1 : public ::testing::TestWithParam<T1Case> {
 protected:
  ZImageConfig cfg = testing::tiny_config();
  std::shared_ptr<ParamSource> src = synthetic_param_source(testing::synthetic_spec(cfg, 7));

  template <class T>
  Tensor<T> freqs(int64_t B, int64_t L) const {
    const auto tables = precompute_freqs_cis<T>(cfg.axes_dims, cfg.axes_lens, cfg.rope_theta);
    Tensor<int32_t> ids({B * L, 3});
    for (int64_t r = 0; r < B * L; ++r) {
      ids[r * 3 + 0] = int32_t(r % 40 + 1);
      ids[r * 3 + 1] = int32_t(r % 7);
      ids[r * 3 + 2] = int32_t(r % 5);
    }
    return rope_embedder(tables, ids).reshaped({B, L, cfg.head_dim() / 2, 2});
  }

  // Runs the case in T; inputs are drawn in double and rounded to T.
  template <class T>
  Tensor<T> run(const T1Case& c) const {
    const uint64_t seed = test_seed();
    const Tensor<T> x = testing::randn<double>({c.B, c.L, cfg.dim}, seed).template cast<T>();
    const Tensor<T> adaln = testing::randn<double>({c.B, cfg.adaln_dim()}, seed + 1).template cast<T>();
    std::optional<KeyMask> mask;
    if (c.masked) {
      std::vector<int64_t> lens(size_t(c.B), c.L);
      lens.back() = c.L - 29;
      mask = key_mask(lens);
    }
    const KeyMask* m = mask ? &*mask : nullptr;
    if (c.module == "layers.0") {
      return transformer_block(x, m, freqs<T>(c.B, c.L), &adaln, load_block<T>(*src, "layers.0", true, true), cfg.n_heads,
                               cfg.norm_eps);
    }
    if (c.module == "context_refiner.0") {
      return transformer_block(x, m, freqs<T>(c.B, c.L), static_cast<const Tensor<T>*>(nullptr),
                               load_block<T>(*src, "context_refiner.0", false, true), cfg.n_heads, cfg.norm_eps);
    }
    if (c.module == "layers.0.attention")
      return attention(x, load_block<T>(*src, "layers.0", true, true).attention, m, freqs<T>(c.B, c.L), cfg.n_heads);
    if (c.module == "layers.0.feed_forward") return feed_forward(x, load_block<T>(*src, "layers.0", true, true).feed_forward);
    if (c.module == "layers.0.attention_norm1")
      return rms_norm(x, src->load("layers.0.attention_norm1.weight").cast<T>(), cfg.norm_eps);
    if (c.module == "layers.0.attention.to_q") return linear(x, load_linear<T>(*src, "layers.0.attention.to_q", false));
    if (c.module == "all_final_layer.2-1") return final_layer(x, adaln, load_final_layer<T>(*src, "all_final_layer.2-1"));
    if (c.module == "t_embedder") {
      Tensor<T> t({c.B});
      for (int64_t b = 0; b < c.B; ++b) t[b] = T(1000.0 * double(b + 1) / double(c.B + 1));
      return timestep_embedder(t, load_timestep_embedder<T>(*src, "t_embedder"));
    }
    throw Error("unknown T1 case " + c.module);
  }
};

TEST_P(ModuleT1, FloatWithinBudgetOfDouble) {
  const T1Case& c = GetParam();
  const Tensor<float> f = run<float>(c);
  const Tensor<double> d = run<double>(c);
  testing::expect_within(c.module + " T1", numerics::compare(f, d), dit_module_budget(Tier::T1, c.module, cfg, c.L));
}

INSTANTIATE_TEST_SUITE_P(
    Modules, ModuleT1,
    ::testing::Values(T1Case{"layers.0.attention.to_q", 1, 97, false}, T1Case{"layers.0.attention_norm1", 1, 1025, false},
                      T1Case{"layers.0.attention", 1, 97, false}, T1Case{"layers.0.attention", 2, 64, true},
                      T1Case{"layers.0.attention", 1, 1025, false}, T1Case{"layers.0.feed_forward", 1, 97, false},
                      T1Case{"layers.0", 1, 97, false}, T1Case{"layers.0", 2, 64, true},
                      T1Case{"context_refiner.0", 1, 97, false}, T1Case{"all_final_layer.2-1", 1, 97, false},
                      T1Case{"t_embedder", 4, 1, false}),
    case_name);

// The whole forward, float vs double, one item and a ragged batch of two.
class WholeModelT1 : public ::testing::TestWithParam<int> {};

TEST_P(WholeModelT1, FloatWithinBudgetOfDouble) {
  const int B = GetParam();
  const ZImageConfig cfg = testing::tiny_config();
  const auto src = synthetic_param_source(testing::synthetic_spec(cfg, 11));
  const auto wf = load_weights<float>(cfg, *src);
  const auto wd = load_weights<double>(cfg, *src);
  DitInputs<double> in;
  const int64_t hw[2][2] = {{10, 10}, {6, 14}}, caps[2] = {7, 40};
  for (int b = 0; b < B; ++b) {
    in.x.push_back(testing::randn<double>({16, 1, hw[b][0], hw[b][1]}, test_seed() + b));
    in.cap_feats.push_back(testing::randn<double>({caps[b], 32}, test_seed() + 10 + b));
  }
  in.t = Tensor<double>({B}, B == 1 ? std::vector<double>{0.3} : std::vector<double>{0.3, 0.8});
  DitInputs<float> inf{{}, {}, in.t.cast<float>()};
  for (auto& x : in.x) inf.x.push_back(x.cast<float>()), x = inf.x.back().cast<double>();
  for (auto& c : in.cap_feats) inf.cap_feats.push_back(c.cast<float>()), c = inf.cap_feats.back().cast<double>();
  const auto sf = zimage_forward(wf, inf);
  const auto sd = zimage_forward(wd, in);
  for (int b = 0; b < B; ++b)
    testing::expect_within("sample." + std::to_string(b) + " T1", numerics::compare(sf[size_t(b)], sd[size_t(b)]),
                           dit_module_budget(Tier::T1, "sample." + std::to_string(b), cfg, 96));
}

INSTANTIATE_TEST_SUITE_P(Batch, WholeModelT1, ::testing::Values(1, 2),
                         [](const auto& info) { return std::string("B").append(std::to_string(info.param)); });

}  // namespace
}  // namespace zimage

namespace zimage {
namespace {

// RoPE tables of the real config: float cos/sin vs double cos/sin of the same
// fp32 angles (docs/rope.md), rows 0..1535 of axis 0 and 0..511 of axes 1, 2.
TEST(RopeTableT1, RealAxes_32_48_48_Lens_1536_512_512) {
  const auto f = precompute_freqs_cis<float>({32, 48, 48}, {1536, 512, 512}, 256.0);
  const auto d = precompute_freqs_cis<double>({32, 48, 48}, {1536, 512, 512}, 256.0);
  ZImageConfig cfg;
  for (size_t a = 0; a < 3; ++a)
    testing::expect_within("rope_embedder.freqs_cis." + std::to_string(a) + " T1", numerics::compare(f[a], d[a]),
                           dit_module_budget(numerics::Tier::T1, "rope_embedder.freqs_cis." + std::to_string(a), cfg, 1));
}

}  // namespace
}  // namespace zimage

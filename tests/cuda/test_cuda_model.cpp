// The whole CUDA forward (cuda/forward.h) and its block:
// - every kind=model golden in golden/ (tiny_single, tiny_batch2 with its key masks, tiny_wide,
//   narrow_full_depth): fp32 against the diffusers fp32 golden (T2 budget) and against the fp64
//   reference forward (T3); bf16 against the fp64 reference (T4 absolute bound) and, where the case
//   has a diffusers bf16 golden (golden/<case>.bf16.safetensors: tiny_single, tiny_batch2,
//   narrow_full_depth), the T4 peer rule: max_n and rel_rms at most 2 x diffusers bf16's against
//   the same fp64 reference + the whole model's T3 rel_rms budget (testing::expect_peer);
// - the same inputs twice give bitwise equal samples (fp32 and bf16);
// - a real-size modulated block (C 3840, 30 x 128 heads, F 10240) at 97 tokens against the fp64
//   reference block (T3; bf16 T4), and at 4096 + 512 tokens finite and deterministic;
// - RoPE limits on the GPU: a 1504-token caption (image at axis-0 position 1505, caption rows up
//   to 1504, pad rows 1504..1535 within the table) runs and agrees with the fp64 reference;
//   1505 tokens is refused before any compute with check_rope_positions' one-line error;
// - float16 is refused with a one-line error naming --dtype float16.

#include "cuda_support.h"
#include "forward.h"
#include "dit/rope_limits.h"
#include "support/bf16_goldens.h"
#include "support/goldens.h"
#include "support/unified_freqs.h"
#include "validation/golden_file.h"
#include "dit/module_table.h"

namespace zimage {
namespace {

using testing::DType;

std::vector<std::string> model_cases() {
  std::vector<std::string> out;
  for (const auto& c : testing::golden_cases())
    if (testing::golden_kind(c) == "model") out.push_back(c);
  return out;
}

using testing::unified_len;  // longest [image, caption] sequence: the L of the attention budgets

DitInputs<float> golden_inputs(const GoldenFile& g) { return golden_dit_inputs<float>(g); }

class CudaGoldenModel : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaGoldenModel, Fp32T2T3Bf16T4Deterministic) {
  ZIMAGE_REQUIRE_CUDA();
  const std::string c = GetParam();
  const GoldenFile g = open_golden(testing::golden_path(c));
  const ZImageConfig& cfg = g.config;
  const ZImageWeights<float> wf = load_weights<float>(cfg, *g.params);
  const ZImageWeights<double> wd = load_weights<double>(cfg, *g.params);
  const DitInputs<float> in = golden_inputs(g);
  DitInputs<double> ind;
  for (const auto& x : in.x) ind.x.push_back(x.cast<double>());
  for (const auto& x : in.cap_feats) ind.cap_feats.push_back(x.cast<double>());
  ind.t = in.t.cast<double>();
  const std::vector<Tensor<double>> ref = zimage_forward(wd, ind);
  const int64_t L = unified_len(cfg, in);
  // The diffusers bf16 golden (the T4 peer), checked against this fp32 golden's inputs.
  const auto bf16_peer = testing::open_bf16_golden(g);
  if (!bf16_peer)
    std::printf("  %s: no diffusers bf16 golden (%s): bf16 gated by the absolute T4 bound only\n", c.c_str(),
                testing::bf16_golden_path(c).c_str());

  for (DType dt : {DType::F32, DType::BF16}) {
    gpu::CudaOptions o;
    o.dtype = dt;
    gpu::CudaModel m(wf, o);
    const auto s1 = m.forward(in), s2 = m.forward(in);
    ASSERT_EQ(s1.size(), size_t(g.batch_size()));
    for (size_t i = 0; i < s1.size(); ++i) {
      const std::string name = "sample." + std::to_string(i), what = c + " " + name + " " + testing::dtype_tag(dt);
      testing::expect_exact(what + " run twice", numerics::compare(s2[i], s1[i]));
      if (dt == DType::F32) {
        testing::expect_within(what + " vs diffusers fp32 golden T2", numerics::compare(s1[i], g.get<double>(name)),
                               dit_module_budget(numerics::Tier::T2, name, cfg, L));
        testing::expect_within(what + " vs fp64 reference T3", numerics::compare(s1[i], ref[i]),
                               dit_module_budget(numerics::Tier::T3, name, cfg, L));
      } else {
        testing::expect_within(what + " vs fp64 reference T4", numerics::compare(s1[i], ref[i]),
                               dit_module_budget(numerics::Tier::T4, name, cfg, L));
        // Peer rule against diffusers bf16 (floor: the whole model's T3 rel_rms budget).
        if (bf16_peer)
          testing::expect_peer(what + " vs fp64 reference, diffusers bf16 peer", s1[i], (*bf16_peer)->get<float>(name),
                               ref[i], dit_module_ops(name, cfg, L));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Goldens, CudaGoldenModel, ::testing::ValuesIn(model_cases()),
                         [](const auto& info) { return testing::test_name(info.param); });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(CudaGoldenModel);

// ---------------------------------------------------------------- real-size block

// Image (33, h, w) on a 64-wide grid, then a 32-row caption (1 + i, 0, 0), as a unified sequence.
template <class T>
Tensor<T> real_freqs(const ZImageConfig& cfg, int64_t L) {
  return testing::unified_freqs<T>(cfg, L, 64);
}

TEST(CudaRealBlock, ModulatedBlock_C3840_L97_T3_T4) {
  ZIMAGE_REQUIRE_CUDA();
  const ZImageConfig cfg;
  const auto src = testing::real_block_params();
  const TransformerBlockW<float> wf = load_block<float>(*src, "layers.0", true, true);
  const TransformerBlockW<double> wd = load_block<double>(*src, "layers.0", true, true);
  const int64_t L = 97;
  for (DType dt : {DType::F32, DType::BF16}) {
    // bf16: the block sees bf16 weights and inputs on both sides.
    TransformerBlockW<float> wr = wf;
    TransformerBlockW<double> wrd = wd;
    if (dt == DType::BF16) {
      auto r = [&](Tensor<float>& t, Tensor<double>& d) {
        if (!t.numel()) return;
        t = testing::round_to(dt, t);
        d = t.cast<double>();
      };
      r(wr.attention.to_q.weight, wrd.attention.to_q.weight), r(wr.attention.to_k.weight, wrd.attention.to_k.weight);
      r(wr.attention.to_v.weight, wrd.attention.to_v.weight), r(wr.attention.to_out.weight, wrd.attention.to_out.weight);
      r(wr.attention.norm_q, wrd.attention.norm_q), r(wr.attention.norm_k, wrd.attention.norm_k);
      r(wr.feed_forward.w1.weight, wrd.feed_forward.w1.weight), r(wr.feed_forward.w2.weight, wrd.feed_forward.w2.weight);
      r(wr.feed_forward.w3.weight, wrd.feed_forward.w3.weight);
      r(wr.attention_norm1, wrd.attention_norm1), r(wr.attention_norm2, wrd.attention_norm2);
      r(wr.ffn_norm1, wrd.ffn_norm1), r(wr.ffn_norm2, wrd.ffn_norm2);
      r(wr.adaLN_modulation.weight, wrd.adaLN_modulation.weight), r(wr.adaLN_modulation.bias, wrd.adaLN_modulation.bias);
    }
    const Tensor<float> x = testing::round_to(dt, testing::randn<float>({1, L, cfg.dim}, testing::test_seed()));
    const Tensor<float> a = testing::round_to(dt, testing::randn<float>({1, cfg.adaln_dim()}, testing::test_seed() + 1));
    gpu::CudaOptions o;
    o.dtype = dt;
    const Tensor<float> got =
        gpu::transformer_block_cuda(wr, x, nullptr, real_freqs<float>(cfg, L), &a, cfg.n_heads, cfg.norm_eps, o, testing::rt());
    const Tensor<double> ad = a.cast<double>();
    const Tensor<double> ref =
        transformer_block(x.cast<double>(), nullptr, real_freqs<double>(cfg, L), &ad, wrd, cfg.n_heads, cfg.norm_eps);
    testing::expect_tier("layers.0 real L97 " + testing::dtype_tag(dt), dt, got, ref,
                         dit_module_ops("layers.0", cfg, L));
  }
}

TEST(CudaRealBlock, ModulatedBlock_C3840_L4608_FiniteAndDeterministic) {
  ZIMAGE_REQUIRE_CUDA();
  const ZImageConfig cfg;
  const auto src = testing::real_block_params();
  const TransformerBlockW<float> wf = load_block<float>(*src, "layers.0", true, true);
  const int64_t L = 4096 + 512;
  // Activations at realistic magnitude: the residual stream of a late layer has rms ~ 10s.
  const Tensor<float> x = testing::randn<float>({1, L, cfg.dim}, testing::test_seed(), 30.0);
  const Tensor<float> a = testing::randn<float>({1, cfg.adaln_dim()}, testing::test_seed() + 1);
  for (DType dt : {DType::F32, DType::BF16}) {
    gpu::CudaOptions o;
    o.dtype = dt;
    const Tensor<float> f = real_freqs<float>(cfg, L);
    const Tensor<float> y1 = gpu::transformer_block_cuda(wf, x, nullptr, f, &a, cfg.n_heads, cfg.norm_eps, o, testing::rt());
    const Tensor<float> y2 = gpu::transformer_block_cuda(wf, x, nullptr, f, &a, cfg.n_heads, cfg.norm_eps, o, testing::rt());
    int64_t nonfinite = 0;
    for (float v : y1.data) nonfinite += !std::isfinite(v);
    EXPECT_EQ(nonfinite, 0) << testing::dtype_tag(dt);
    testing::expect_exact("layers.0 real L4608 run twice " + testing::dtype_tag(dt), numerics::compare(y2, y1));
  }
}

// ---------------------------------------------------------------- RoPE limits, fp16

ZImageWeights<float> tiny_weights(const ZImageConfig& cfg) {
  const auto src = synthetic_param_source(testing::synthetic_spec(cfg, 7));
  return load_weights<float>(cfg, *src);
}

DitInputs<float> tiny_inputs(const ZImageConfig& cfg, int64_t caption) {
  DitInputs<float> in;
  in.x.push_back(testing::randn<float>({16, 1, 8, 6}, testing::test_seed()));
  in.cap_feats.push_back(testing::randn<float>({caption, cfg.cap_feat_dim}, testing::test_seed() + 1));
  in.t = Tensor<float>({1}, std::vector<float>{0.7f});
  return in;
}

TEST(CudaRopeLimits, Caption1504RunsAnd1505IsRefused) {
  ZIMAGE_REQUIRE_CUDA();
  const ZImageConfig cfg = testing::tiny_config();  // axes_lens [1536, 512, 512]
  const ZImageWeights<float> w = tiny_weights(cfg);
  gpu::CudaModel m(w, gpu::CudaOptions{});
  {
    const DitInputs<float> in = tiny_inputs(cfg, 1504);
    const auto got = m.forward(in);
    DitInputs<double> ind{{in.x[0].cast<double>()}, {in.cap_feats[0].cast<double>()}, in.t.cast<double>()};
    const auto src = synthetic_param_source(testing::synthetic_spec(cfg, 7));
    const auto ref = zimage_forward(load_weights<double>(cfg, *src), ind);
    testing::expect_within("caption 1504 (positions up to 1536-row table's end) T3", numerics::compare(got[0], ref[0]),
                           dit_module_budget(numerics::Tier::T3, "sample.0", cfg, unified_len(cfg, in)));
  }
  const DitInputs<float> bad = tiny_inputs(cfg, 1505);
  std::string cpu_msg;
  try {
    check_rope_positions(cfg, 1505, bad.x[0].shape, 0);
  } catch (const Error& e) {
    cpu_msg = e.what();
  }
  ASSERT_FALSE(cpu_msg.empty());
  try {
    m.forward(bad);
    ADD_FAILURE() << "a 1505-token caption ran on the GPU";
  } catch (const Error& e) {
    std::printf("  refused: %s\n", e.what());
    EXPECT_EQ(std::string(e.what()), cpu_msg);
  }
}

// ---------------------------------------------------------------- head_dim

ZImageConfig head_dim_config(int64_t hd, std::vector<int> axes) {
  ZImageConfig cfg = testing::tiny_config();
  cfg.dim = int(2 * hd);
  cfg.n_heads = cfg.n_kv_heads = 2;
  cfg.axes_dims = std::move(axes);
  return cfg;
}

// Configs whose head_dim is not 32 or 128 run on the GPU (every version the dispatcher picks),
// fp32 against the fp64 reference at T3 and bf16 at T4.
TEST(CudaModelHeadDim, HeadDim64And96_fp32T3_bf16T4) {
  ZIMAGE_REQUIRE_CUDA();
  for (const auto& [hd, axes] : {std::pair<int64_t, std::vector<int>>{64, {16, 24, 24}}, {96, {32, 32, 32}}}) {
    const ZImageConfig cfg = head_dim_config(hd, axes);
    const DitInputs<float> in = tiny_inputs(cfg, 40);
    DitInputs<double> ind{{in.x[0].cast<double>()}, {in.cap_feats[0].cast<double>()}, in.t.cast<double>()};
    const auto src = synthetic_param_source(testing::synthetic_spec(cfg, 7));
    const auto ref = zimage_forward(load_weights<double>(cfg, *src), ind);
    for (DType dt : {DType::F32, DType::BF16}) {
      gpu::CudaOptions o;
      o.dtype = dt;
      gpu::CudaModel m(tiny_weights(cfg), o);
      const auto got = m.forward(in);
      const numerics::Tier tier = dt == DType::F32 ? numerics::Tier::T3 : numerics::Tier::T4;
      testing::expect_within("head_dim " + std::to_string(hd) + " " + testing::dtype_tag(dt) + " sample.0 " +
                                 numerics::tier_name(tier),
                             numerics::compare(got[0], ref[0]),
                             dit_module_budget(tier, "sample.0", cfg, unified_len(cfg, in)));
    }
  }
}

// head_dim 12: no attention version runs it; the model refuses it with one line when it is built,
// before anything is uploaded (so this runs without a GPU too).
TEST(CudaModelHeadDim, HeadDim12RefusedWhenBuilt) {
  const ZImageConfig cfg = head_dim_config(12, {4, 4, 4});
  const auto src = synthetic_param_source(testing::synthetic_spec(cfg, 7));
  try {
    gpu::CudaModel m(cfg, *src, gpu::CudaOptions{});
    ADD_FAILURE() << "head_dim 12 accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    std::printf("  refused: %s\n", msg.c_str());
    EXPECT_NE(msg.find("head_dim 12"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST(CudaFp16, RefusedWithOneLineError) {  // refused before any device work: runs without a GPU too
  const ZImageConfig cfg = testing::tiny_config();
  gpu::CudaOptions o;
  o.dtype = DType::F16;
  try {
    gpu::CudaModel m(tiny_weights(cfg), o);
    ADD_FAILURE() << "float16 accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("--dtype float16"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace zimage

// Qwen3 (the text encoder) on CUDA, module by module against the reference and whole against
// transformers' goldens (cuda/qwen3_cuda.h; docs/cuda.md, "The text encoder on the GPU").
//   EmbeddingGather (exact), Qwen3QkNormRope: qwen3_qk_norm_rope (half-split RoPE), grouped-query
//     causal attention through flash_attention (left and right padding; a left-pad query's row is
//     exactly 0, as torch's _safe_softmax gives it), run_qwen3_layer; fp32 T3 against the fp64
//     reference, bf16 T4 (plus the peer rule where the torch bf16 op sequence is emulated:
//     the row kernels). Real width (2560, 32 heads, 8 KV heads, head_dim 128, 9728) with the
//     te_real_layer golden's weights, and the tiny config.
//     The gates' negative controls (interleaved-pair RoPE, no causal mask: each must fail T3) are in
//     test_cuda_qwen3_mutations.cpp, against the mutants build of the reference.
//   Qwen3CudaGolden: CudaQwen3::hidden_state against every hidden_states.{k} of the transformers
//     goldens in golden/text_encoder (left and right padding), fp32 T3, bf16 T4 plus the peer rule
//     against transformers' own bf16 run (<case>.bf16.safetensors, dump_text_encoder_bf16.py).
//   Qwen3CudaConfig: the refusals made before any device work (run without a GPU too).
#include <array>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "cuda_support.h"
#include "kernels/embedding.h"
#include "kernels/flash_attention.h"
#include "kernels/qwen3_qk_norm_rope.h"
#include "pipeline/generate.h"
#include "qwen3_cuda.h"
#include "qwen3_kernel_cases.h"
#include "support/cli_runner.h"
#include "support/expect_errors.h"
#include "support/te_bf16_goldens.h"
#include "support/te_goldens.h"
#include "text_encoder/module_table.h"
#include "text_encoder/te_golden.h"

namespace zimage {
namespace {

using testing::AttnCase;
using testing::attn_cases;
using testing::attn_name;
using testing::columns;
using testing::DType;
using testing::fuse_qkv;
using testing::pad_mask;
using testing::qk_cases;
using testing::qk_name;
using testing::QkCase;
using testing::small_config;
using testing::te_golden;

// ---- The kernels -------------------------------------------------------------------------------

TEST(EmbeddingGather, IsExact_f32_bf16) {
  ZIMAGE_REQUIRE_CUDA();
  const int64_t V = 300, C = 2560;
  const Tensor<float> table = testing::randn<float>({V, C}, testing::test_seed());
  Tensor<int32_t> ids({2, 5});
  const int32_t pick[10] = {0, 299, 7, 7, 151, 1, 298, 0, 42, 3};
  std::copy(pick, pick + 10, ids.ptr());
  for (DType dt : {DType::F32, DType::BF16}) {
    const Tensor<float> stored = testing::round_to(dt, table);
    const auto td = testing::to_device(stored, dt);
    gpu::DeviceBuffer ids_d(sizeof(pick));
    testing::copy_to_device(ids_d.get(), ids.ptr(), sizeof(pick));
    testing::Guarded out(dt, {2, 5, C});
    gpu::embedding_gather(dt, ids_d.as<const int32_t>(), 10, td.data(), C, out.data(), testing::rt().stream());
    const Tensor<float> got = out.host();
    const Tensor<float> ref = qwen3_embedding(ids, stored);
    testing::expect_exact("embedding_gather " + testing::dtype_tag(dt), numerics::compare(got, ref.cast<double>()));
    out.expect_guards_intact("embedding_gather " + testing::dtype_tag(dt));
  }
}

class Qwen3QkNormRope : public ::testing::TestWithParam<QkCase> {};

TEST_P(Qwen3QkNormRope, HalfSplitMatchesReference) {
  ZIMAGE_REQUIRE_CUDA();
  const QkCase c = GetParam();
  const testing::QkRun run = testing::run_qk_norm_rope(c);
  const Qwen3Config& cfg = run.cfg;
  const Tensor<float>& q = run.q;
  const Tensor<float>& k = run.k;
  const Tensor<float>& v = run.v;
  const Tensor<float>& wq = run.wq;
  const Tensor<float>& wk = run.wk;
  const Tensor<float>& got = run.got;

  const auto [cos_d, sin_d] = qwen3_rotary_embedding<double>(cfg, c.L);
  const auto [cos_f, sin_f] = qwen3_rotary_embedding<float>(cfg, c.L);
  const std::vector<numerics::Op> ops{testing::op_rms(double(c.D)), testing::op_elem("rope", true)};
  for (int part = 0; part < 2; ++part) {
    const Tensor<float>& x = part ? k : q;
    const Tensor<float>& w = part ? wk : wq;
    const int64_t heads = part ? c.G : c.H;
    Tensor<double> ref = qwen3_rms_norm(x.cast<double>(), w.cast<double>(), cfg.rms_norm_eps);
    qwen3_apply_rotary_pos_emb(ref, cos_d, sin_d);
    // torch in bf16: x * rsqrt(var + eps) rounded, times the weight rounded (Qwen3RMSNorm:
    // weight * x.to(input_dtype)), cos/sin in bf16, each product and the sum rounded.
    Tensor<float> peer;
    {
      Tensor<float> ones({c.D});
      for (auto& o : ones.data) o = 1.f;
      peer = testing::round_to(c.dt, qwen3_rms_norm(x, ones, cfg.rms_norm_eps));
      for (int64_t i = 0; i < peer.numel(); ++i) peer[i] *= w[i % c.D];
      peer = testing::round_to(c.dt, peer);
    }
    {
      const Tensor<float> cb = testing::round_to(c.dt, cos_f), sb = testing::round_to(c.dt, sin_f);
      Tensor<float> xc = peer, xs = peer;
      const int64_t half = c.D / 2;
      for (int64_t n = 0; n < c.B * c.L; ++n)
        for (int64_t h = 0; h < heads; ++h) {
          const int64_t l = n % c.L, base = (n * heads + h) * c.D;
          for (int64_t d = 0; d < c.D; ++d) {
            const float rot = d < half ? -peer[base + d + half] : peer[base + d - half];
            xc[base + d] = peer[base + d] * cb[l * c.D + d];
            xs[base + d] = rot * sb[l * c.D + d];
          }
        }
      xc = testing::round_to(c.dt, xc), xs = testing::round_to(c.dt, xs);
      for (int64_t i = 0; i < peer.numel(); ++i) peer[i] = xc[i] + xs[i];
      peer = testing::round_to(c.dt, peer);
    }
    const Tensor<float> got_part = columns(got, part ? c.H * c.D : 0, heads * c.D, {c.B, c.L, heads, c.D});
    testing::expect_t3_or_t4(std::string(part ? "k" : "q") + " " + qk_name(::testing::TestParamInfo<QkCase>(GetParam(), 0)), c.dt, got_part, &peer, ref, ops);
  }
  // v is not touched.
  testing::expect_exact("v untouched", numerics::compare(columns(got, (c.H + c.G) * c.D, c.G * c.D, v.shape), v.cast<double>()));
}

INSTANTIATE_TEST_SUITE_P(Shapes, Qwen3QkNormRope, ::testing::ValuesIn(qk_cases()), qk_name);

class Qwen3Attention : public ::testing::TestWithParam<AttnCase> {};

// Three items: full, about half, and 1 real token; the output of a query with no allowed key (a
// left-pad row) must be exactly 0, every other row within T3 / T4 of qwen3_sdpa in fp64.
TEST_P(Qwen3Attention, GroupedCausalPaddedMatchesReference) {
  ZIMAGE_REQUIRE_CUDA();
  const AttnCase c = GetParam();
  const testing::AttnRun run = testing::run_grouped_attention(c);
  const int64_t B = run.B;
  const Tensor<float>& q = run.q;
  const Tensor<float>& k = run.k;
  const Tensor<float>& v = run.v;
  const Tensor<int32_t>& mask = run.mask;
  const Tensor<float>& got = run.got;
  const Tensor<double> ref = qwen3_sdpa(q.cast<double>(), k.cast<double>(), v.cast<double>(), mask);
  int64_t empty_rows = 0, nonzero = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < c.L; ++i) {
      bool any = false;
      for (int64_t j = 0; j <= i; ++j) any = any || mask[b * c.L + j] != 0;
      if (any) continue;
      ++empty_rows;
      for (int64_t e = 0; e < c.H * c.D; ++e) nonzero += got[(b * c.L + i) * c.H * c.D + e] != 0.f;
    }
  std::printf("  %lld keyless query rows, %lld nonzero values in them\n", (long long)empty_rows, (long long)nonzero);
  EXPECT_EQ(nonzero, 0) << "a query with no allowed key must give exactly 0 (torch _safe_softmax)";
  if (c.left) {
    EXPECT_GT(empty_rows, 0) << "left padding must exercise the keyless rows";
  }
  const Tensor<float> peer = testing::round_to(c.dt, qwen3_sdpa(q, k, v, mask));
  const std::vector<numerics::Op> ops{testing::op_linear(double(c.D)), testing::op_elem("softmax", true),
                                      testing::op_linear(double(c.L))};
  testing::expect_t3_or_t4("qwen3 attention " + attn_name(::testing::TestParamInfo<AttnCase>(GetParam(), 0)), c.dt, got, &peer, ref, ops);
}

INSTANTIATE_TEST_SUITE_P(Shapes, Qwen3Attention, ::testing::ValuesIn(attn_cases()), attn_name);

// run_qwen3_layer at the real width with the te_real_layer golden's weights, on random inputs with
// left and right padding (the golden's own run is checked whole in Qwen3CudaGolden).
TEST(Qwen3CudaDecoderLayer, RealWidthLeftAndRightPadding) {
  ZIMAGE_REQUIRE_CUDA();
  const TextEncoderGolden& g = te_golden("te_real_layer");
  const Qwen3Config& cfg = g.config;
  const int64_t B = 2, L = 40, C = cfg.hidden_size;
  const Tensor<float> x = testing::randn<float>({B, L, C}, testing::test_seed());
  for (DType dt : {DType::F32, DType::BF16})
    for (bool left : {true, false}) {
      // bf16: the layer sees bf16 weights and inputs on both sides.
      Qwen3LayerW<float> wf = g.encoder->layer<float>(0);
      for (Tensor<float>* t : {&wf.input_layernorm, &wf.post_attention_layernorm, &wf.self_attn.q_proj.weight,
                               &wf.self_attn.k_proj.weight, &wf.self_attn.v_proj.weight, &wf.self_attn.o_proj.weight,
                               &wf.self_attn.q_norm, &wf.self_attn.k_norm, &wf.mlp.gate_proj.weight, &wf.mlp.up_proj.weight,
                               &wf.mlp.down_proj.weight})
        *t = testing::round_to(dt, *t);
      Qwen3LayerW<double> wd;
      wd.input_layernorm = wf.input_layernorm.cast<double>();
      wd.post_attention_layernorm = wf.post_attention_layernorm.cast<double>();
      wd.self_attn.q_proj.weight = wf.self_attn.q_proj.weight.cast<double>();
      wd.self_attn.k_proj.weight = wf.self_attn.k_proj.weight.cast<double>();
      wd.self_attn.v_proj.weight = wf.self_attn.v_proj.weight.cast<double>();
      wd.self_attn.o_proj.weight = wf.self_attn.o_proj.weight.cast<double>();
      wd.self_attn.q_norm = wf.self_attn.q_norm.cast<double>();
      wd.self_attn.k_norm = wf.self_attn.k_norm.cast<double>();
      wd.mlp.gate_proj.weight = wf.mlp.gate_proj.weight.cast<double>();
      wd.mlp.up_proj.weight = wf.mlp.up_proj.weight.cast<double>();
      wd.mlp.down_proj.weight = wf.mlp.down_proj.weight.cast<double>();
      const Tensor<int32_t> mask = pad_mask(L, {L, 17}, left);
      gpu::Qwen3CudaOptions opts;
      opts.dtype = dt;
      const Tensor<float> xs = testing::round_to(dt, x);
      const Tensor<float> got = gpu::qwen3_decoder_layer_cuda(wf, cfg, xs, mask, opts, testing::rt());
      const auto [cos, sin] = qwen3_rotary_embedding<double>(cfg, L);
      const Tensor<double> ref = qwen3_decoder_layer(xs.cast<double>(), wd, mask, cos, sin, cfg);
      const auto ops = text_encoder_module_ops("layers.0", cfg, L);
      testing::expect_tier(std::string("decoder layer ") + testing::dtype_tag(dt) + (left ? " left" : " right"), dt, got, ref, ops);
    }
}

// ---- The whole encoder against transformers ---------------------------------------------------

class Qwen3CudaGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(Qwen3CudaGolden, EveryHiddenStateMatchesTransformers) {
  ZIMAGE_REQUIRE_CUDA();
  const TextEncoderGolden& g = te_golden(GetParam());
  const int n = g.config.num_hidden_layers;
  // transformers' bf16 run of the same model and batch (the T4 peer), checked against this golden.
  const auto bf16_peer = testing::open_te_bf16_golden(GetParam(), g);
  if (!bf16_peer)
    std::printf("  %s: no transformers bf16 golden (%s): bf16 gated by the absolute T4 bound only\n",
                GetParam().c_str(), testing::te_bf16_golden_path(GetParam()).c_str());
  for (DType dt : {DType::F32, DType::BF16}) {
    gpu::Qwen3CudaOptions opts;
    opts.dtype = dt;
    gpu::CudaQwen3 model(*g.encoder, -1, opts);  // every layer and the norm
    int compared = 0;
    for (int k = 0; k <= n; ++k) {
      const std::string name = "hidden_states." + std::to_string(k);
      if (!g.has(name)) continue;
      const Tensor<float> got = model.hidden_state(g.input_ids, g.attention_mask, k);
      auto ops = text_encoder_module_ops(name, g.config, g.seq_len());
      // bf16 rounds the weights to storage too; the fp64 truth uses them as they are.
      if (dt == DType::BF16) ops.insert(ops.begin(), {"weights to bf16", 1, 1, false});
      const std::string what = GetParam() + " " + name + " " + testing::dtype_tag(dt);
      // Against our fp64 reference: T3 (fp32) or T4 (bf16); against transformers' fp32 golden,
      // which carries its own fp32 error: T2, as the CPU reference is held (test_text_encoder_goldens).
      const Tensor<double> truth = g.encoder->hidden_state<double>(g.input_ids, g.attention_mask, k);
      testing::expect_tier(what + " vs fp64", dt, got, truth, ops);
      if (dt == DType::F32)
        testing::expect_within(what + " vs transformers T2", numerics::compare(got, g.get<double>(name)),
                               numerics::budget_for(numerics::Tier::T2, ops));
      else if (bf16_peer)  // floor: the chain's T3 rel_rms budget
        testing::expect_peer(what + " vs fp64, transformers bf16 peer", got, (*bf16_peer)->get<float>(name), truth,
                             ops);
      ++compared;
    }
    EXPECT_EQ(compared, n + 1) << GetParam() << " must record every hidden state";
  }
}

INSTANTIATE_TEST_SUITE_P(Goldens, Qwen3CudaGolden, ::testing::Values("te_tiny_left", "te_tiny_right", "te_real_layer"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// hidden_states[-2] (Z-Image's) uploads layers 0..n-2 only and refuses [-1] with one line.
TEST(Qwen3CudaGoldenLayers, HiddenMinus2UploadsNoLaterLayer) {
  ZIMAGE_REQUIRE_CUDA();
  const TextEncoderGolden& g = te_golden("te_tiny_left");
  const int n = g.config.num_hidden_layers;
  gpu::CudaQwen3 model(*g.encoder, -2, {});
  EXPECT_EQ(model.layers_uploaded(), n - 1);
  const Tensor<float> got = model.hidden_state(g.input_ids, g.attention_mask, -2);
  const std::string name = "hidden_states." + std::to_string(n - 1);
  testing::expect_tier("te_tiny_left hidden_states[-2]", DType::F32, got,
                       g.encoder->hidden_state<double>(g.input_ids, g.attention_mask, -2),
                       text_encoder_module_ops(name, g.config, g.seq_len()));
  try {
    model.hidden_state(g.input_ids, g.attention_mask, -1);
    ADD_FAILURE() << "hidden_states[-1] must be refused by a model built for [-2]";
  } catch (const Error& e) {
    std::printf("  refused: %s\n", e.what());
    EXPECT_NE(std::string(e.what()).find("hidden_states[-1]"), std::string::npos) << e.what();
  }
  // No index at all is refused as the CPU refuses it (the CPU returned one line, CUDA nothing).
  EXPECT_THROW_MSG_HAS(model.hidden_states(g.input_ids, g.attention_mask, {}), "no hidden state requested");
}

// The CUDA encoder as encode_prompts' backend (what `zimage encode|generate --device cuda` use):
// the prompt embeddings against the CPU's fp64 encode (T3 in fp32, T4 in bf16), with the hidden
// layer mix, on diffusers' tiny text encoder and the real tokenizer files of golden/text_encoder.
TEST(CudaTextEncoderBackend, EncodeMatchesTheCpuEncode) {
  ZIMAGE_REQUIRE_CUDA();
  const std::string te = std::string(ZIMAGE_GOLDEN_DIR) + "/text_encoder";
  const auto dir = testing::scratch_dir("cuda_te_backend");
  for (const char* sub : {"text_encoder", "tokenizer"})
    if (!std::filesystem::exists(dir / sub))
      std::filesystem::create_directory_symlink(te + (std::string(sub) == "text_encoder" ? "/tiny_te" : "/tokenizer"), dir / sub);
  const std::vector<std::string> prompts = {"a red fox in the snow", "cat"};
  PromptOptions mix;
  mix.hidden_layers = {-2, -1};
  for (const PromptOptions& opt : {PromptOptions{}, mix}) {
    const EncodedPrompts truth = encode_prompts<double>(dir.string(), prompts, opt, false);
    for (DType dt : {DType::F32, DType::BF16}) {
      gpu::Qwen3CudaOptions o;
      o.dtype = dt;
      const EncodedPrompts got = encode_prompts<float>(dir.string(), prompts, opt, false, {}, gpu::cuda_text_encoder(o));
      ASSERT_EQ(got.embeds.size(), truth.embeds.size());
      const PromptEncoder enc = PromptEncoder::open_pipeline(dir.string());
      for (size_t i = 0; i < got.embeds.size(); ++i) {
        ASSERT_EQ(got.embeds[i].shape, truth.embeds[i].shape);
        const int deepest = enc.text_encoder().config().num_hidden_layers;
        auto ops = text_encoder_module_ops("hidden_states." + std::to_string(deepest),
                                                     enc.text_encoder().config(), opt.max_sequence_length);
        if (dt == DType::BF16) ops.insert(ops.begin(), {"weights to bf16", 1, 1, false});
        testing::expect_tier("encode prompt " + std::to_string(i) + (opt.hidden_layers.empty() ? "" : " mix") + " " +
                                 testing::dtype_tag(dt),
                             dt, got.embeds[i], truth.embeds[i].cast<double>(), ops);
      }
    }
  }
  std::filesystem::remove_all(dir);
}

// ---- Refusals before any device work (these run without a GPU) --------------------------------

TEST(Qwen3CudaConfig, VariantRunsOnV1SimtAndTheOtherVersionsSayWhy) {
  const Qwen3Config cfg = qwen3_4b_config();
  gpu::Qwen3CudaOptions opts;
  opts.dtype = DType::BF16;
  EXPECT_EQ(gpu::check_qwen3_attention(cfg, opts), gpu::AttentionVersion::v1_simt);
  for (auto v : {gpu::AttentionVersion::mma, gpu::AttentionVersion::cudnn}) {
    opts.attention = v;
    try {
      gpu::check_qwen3_attention(cfg, opts);
      ADD_FAILURE() << gpu::attention_version_name(v) << " must refuse grouped-query causal attention";
    } catch (const Error& e) {
      const std::string m = e.what();
      std::printf("  %s: %s\n", gpu::attention_version_name(v), m.c_str());
      EXPECT_EQ(m.find('\n'), std::string::npos);
      EXPECT_NE(m.find("text encoder on CUDA"), std::string::npos) << m;
      EXPECT_NE(m.find(gpu::attention_version_name(v)), std::string::npos) << m;
    }
  }
  // ZIMAGE_ATTENTION forces the DiT's version only: the text encoder keeps v1_simt.
  opts.attention = gpu::AttentionVersion::automatic;
  const char* old_env = std::getenv("ZIMAGE_ATTENTION");
  const std::string saved = old_env ? old_env : "";
  setenv("ZIMAGE_ATTENTION", "mma", 1);
  EXPECT_EQ(gpu::check_qwen3_attention(cfg, opts), gpu::AttentionVersion::v1_simt);
  if (old_env) setenv("ZIMAGE_ATTENTION", saved.c_str(), 1);
  else unsetenv("ZIMAGE_ATTENTION");
  // The plain DiT attention keeps every version it had.
  std::string why;
  EXPECT_TRUE(gpu::attention_supports(gpu::AttentionVersion::mma, DType::BF16, 128, 3 * 3840, 3840, &why)) << why;
  gpu::AttentionVariant plain;
  plain.kv_heads = 30;
  EXPECT_TRUE(plain.plain(30));
  EXPECT_FALSE(plain.plain(32));
}

TEST(Qwen3CudaConfig, HeadDimNoVersionRunsIsRefused) {
  Qwen3Config cfg = small_config();
  cfg.head_dim = 12;
  try {
    gpu::check_qwen3_attention(cfg, {});
    ADD_FAILURE() << "head_dim 12 must be refused";
  } catch (const Error& e) {
    std::printf("  %s\n", e.what());
    EXPECT_NE(std::string(e.what()).find("head_dim 12"), std::string::npos) << e.what();
  }
}

TEST(Qwen3CudaConfig, Fp16AndBadHiddenIndexRefusedBeforeTheDevice) {
  const TextEncoderGolden& g = te_golden("te_tiny_left");
  gpu::Qwen3CudaOptions fp16;
  fp16.dtype = DType::F16;
  EXPECT_THROW(gpu::CudaQwen3(*g.encoder, -2, fp16), Error);
  try {
    gpu::CudaQwen3(*g.encoder, 7, {});
    ADD_FAILURE() << "hidden_states[7] of 3 layers must be refused";
  } catch (const Error& e) {
    std::printf("  %s\n", e.what());
    EXPECT_NE(std::string(e.what()).find("hidden_states"), std::string::npos) << e.what();
  }
}

// The device's rotary table against transformers' (the golden's rotary_emb.cos / .sin, [L, D]
// with the halves repeated): the same fp32 angles, cos/sin rounded once from double.
TEST(Qwen3CudaConfig, CosSinTableMatchesTransformersRotaryEmbedding) {
  const TextEncoderGolden& g = te_golden("te_tiny_right");
  const int64_t L = g.seq_len(), D = g.config.head_dim, half = D / 2;
  const Tensor<float> cs = gpu::qwen3_cos_sin_table(g.config, L);
  const Tensor<float> cos = g.get<float>("rotary_emb.cos"), sin = g.get<float>("rotary_emb.sin");
  ASSERT_EQ(cos.shape, Shape({L, D}));
  Tensor<float> tc({L, D}), ts({L, D});
  for (int64_t p = 0; p < L; ++p)
    for (int64_t i = 0; i < D; ++i) {
      tc[p * D + i] = cs[(p * half + i % half) * 2];
      ts[p * D + i] = cs[(p * half + i % half) * 2 + 1];
    }
  // transformers' cos/sin are fp32 cos/sin of the fp32 angle: one rounding each, as ours.
  const auto ops = text_encoder_module_ops("rotary_emb.cos", g.config, L);
  testing::expect_within("cos table", numerics::compare(tc, cos.cast<double>()),
                         numerics::budget_for(numerics::Tier::T3, ops));
  testing::expect_within("sin table", numerics::compare(ts, sin.cast<double>()),
                         numerics::budget_for(numerics::Tier::T3, ops));
}

}  // namespace
}  // namespace zimage

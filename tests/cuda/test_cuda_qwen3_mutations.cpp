// Negative controls of the Qwen3 CUDA gates (test_cuda_qwen3.cpp): the T3 gate that the fp32
// kernels pass against the fp64 reference must fail against the reference with a porting bug
// injected (docs/tolerances.md, "Mutation tests"):
//   qwen3_qk_norm_rope against interleaved-pair RoPE (the DiT's layout; Mutation::TextRopeInterleaved),
//   grouped causal attention against attention without the causal mask (Mutation::TextNoCausalMask).
// Same inputs and launches as Qwen3QkNormRope and Qwen3Attention there, fp32 cases only. Linked
// against the mutants build of the reference (zimage_ref_mutants; reference/numerics/mutation.h)
// and the mutation-free part of the CUDA library (zimage_cuda_kernels; tests/CMakeLists.txt).
#include <cstdio>
#include <string>
#include <vector>

#include "cuda_support.h"
#include "kernels/flash_attention.h"
#include "kernels/qwen3_qk_norm_rope.h"
#include "numerics/mutation.h"
#include "qwen3_kernel_cases.h"
#include "qwen3_rope_table.h"
#include "text_encoder/qwen3_modules.h"

namespace zimage {
namespace {

using testing::AttnCase;
using testing::attn_name;
using testing::columns;
using testing::DType;
using testing::qk_name;
using testing::QkCase;
using testing::small_config;

template <class C>
std::vector<C> f32_only(const std::vector<C>& all) {
  std::vector<C> out;
  for (const C& c : all)
    if (c.dt == DType::F32) out.push_back(c);
  return out;
}

class Qwen3QkNormRopeMutation : public ::testing::TestWithParam<QkCase> {};

// The gate tells the layouts apart: the DiT's interleaved pairs fail it.
TEST_P(Qwen3QkNormRopeMutation, InterleavedPairsFailT3) {
  ZIMAGE_REQUIRE_CUDA();
  const QkCase c = GetParam();
  const testing::QkRun run = testing::run_qk_norm_rope(c);
  const auto [cos_d, sin_d] = qwen3_rotary_embedding<double>(run.cfg, c.L);
  const std::vector<numerics::Op> ops{testing::op_rms(double(c.D)), testing::op_elem("rope", true)};
  for (int part = 0; part < 2; ++part) {
    const Tensor<float>& x = part ? run.k : run.q;
    const Tensor<float>& w = part ? run.wk : run.wq;
    const int64_t heads = part ? c.G : c.H;
    const Tensor<float> got_part = columns(run.got, part ? c.H * c.D : 0, heads * c.D, {c.B, c.L, heads, c.D});
    Tensor<double> wrong = qwen3_rms_norm(x.cast<double>(), w.cast<double>(), run.cfg.rms_norm_eps);
    {
      ScopedMutation interleaved(Mutation::TextRopeInterleaved);
      qwen3_apply_rotary_pos_emb(wrong, cos_d, sin_d);
    }
    const auto cmp = numerics::compare(got_part, wrong);
    std::printf("  %s against interleaved pairs: %s\n", part ? "k" : "q",
                numerics::describe(cmp, numerics::budget_for(numerics::Tier::T3, ops)).c_str());
    EXPECT_FALSE(numerics::passes(cmp, numerics::budget_for(numerics::Tier::T3, ops)));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, Qwen3QkNormRopeMutation, ::testing::ValuesIn(f32_only(testing::qk_cases())), qk_name);

class Qwen3AttentionMutation : public ::testing::TestWithParam<AttnCase> {};

// The gate sees a missing causal mask.
TEST_P(Qwen3AttentionMutation, NoCausalMaskFailsT3) {
  ZIMAGE_REQUIRE_CUDA();
  const AttnCase c = GetParam();
  const testing::AttnRun run = testing::run_grouped_attention(c);
  const std::vector<numerics::Op> ops{testing::op_linear(double(c.D)), testing::op_elem("softmax", true),
                                      testing::op_linear(double(c.L))};
  Tensor<double> wrong;
  {
    ScopedMutation no_causal(Mutation::TextNoCausalMask);
    wrong = qwen3_sdpa(run.q.cast<double>(), run.k.cast<double>(), run.v.cast<double>(), run.mask);
  }
  const auto b = numerics::budget_for(numerics::Tier::T3, ops);
  const auto cmp = numerics::compare(run.got, wrong);
  std::printf("  against attention without the causal mask: %s\n", numerics::describe(cmp, b).c_str());
  EXPECT_FALSE(numerics::passes(cmp, b));
}

INSTANTIATE_TEST_SUITE_P(Shapes, Qwen3AttentionMutation, ::testing::ValuesIn(f32_only(testing::attn_cases())), attn_name);

}  // namespace
}  // namespace zimage

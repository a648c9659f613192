// T1 at real Z-Image width (C 3840, 30 x 128 heads, F 10240, adaLN 256 ->
// 15360): a modulated block, its attention and its FFN in float vs double,
// with synthetic weights, at a short length and at a ragged one (97, 1025).
#include "dit/transformer.h"
#include "support/test_support.h"
#include "support/unified_freqs.h"
#include "dit/module_table.h"

namespace zimage {
namespace {

class RealSizeT1 : public ::testing::TestWithParam<int64_t> {
 protected:
  static void SetUpTestSuite() {
    src_ = testing::real_block_params();
    wf_ = new TransformerBlockW<float>(load_block<float>(*src_, "layers.0", true, true));
    wd_ = new TransformerBlockW<double>(load_block<double>(*src_, "layers.0", true, true));
  }
  static void TearDownTestSuite() { delete wf_, delete wd_, src_.reset(); }
  static inline std::shared_ptr<ParamSource> src_;
  static inline TransformerBlockW<float>* wf_ = nullptr;
  static inline TransformerBlockW<double>* wd_ = nullptr;
  const ZImageConfig cfg;

  // Positions of a unified sequence: image (33, h, w) on a 32-wide grid, then caption (1 + i, 0, 0).
  template <class T>
  Tensor<T> freqs(int64_t L) const {
    return testing::unified_freqs<T>(cfg, L, 32);
  }
};

TEST_P(RealSizeT1, ModulatedBlock_C3840) {
  const int64_t L = GetParam();
  const Tensor<double> x = testing::randn<double>({1, L, cfg.dim}, testing::test_seed());
  const Tensor<double> a = testing::randn<double>({1, cfg.adaln_dim()}, testing::test_seed() + 1);
  const Tensor<float> xf = x.cast<float>(), af = a.cast<float>();
  const Tensor<double> ad = af.cast<double>();  // both paths see the same fp32-rounded inputs
  const Tensor<float> of = transformer_block(xf, nullptr, freqs<float>(L), &af, *wf_, cfg.n_heads, cfg.norm_eps);
  const Tensor<double> od = transformer_block(xf.cast<double>(), nullptr, freqs<double>(L), &ad, *wd_, cfg.n_heads, cfg.norm_eps);
  testing::expect_within("layers.0 real T1 L" + std::to_string(L), numerics::compare(of, od),
                         dit_module_budget(numerics::Tier::T1, "layers.0", cfg, L));
}

TEST_P(RealSizeT1, Attention_H30_D128) {
  const int64_t L = GetParam();
  const Tensor<float> xf = testing::randn<double>({1, L, cfg.dim}, testing::test_seed() + 2).cast<float>();
  const Tensor<float> of = attention(xf, wf_->attention, nullptr, freqs<float>(L), cfg.n_heads);
  const Tensor<double> od = attention(xf.cast<double>(), wd_->attention, nullptr, freqs<double>(L), cfg.n_heads);
  testing::expect_within("layers.0.attention real T1 L" + std::to_string(L), numerics::compare(of, od),
                         dit_module_budget(numerics::Tier::T1, "layers.0.attention", cfg, L));
}

TEST_P(RealSizeT1, FeedForward_F10240) {
  const int64_t L = GetParam();
  const Tensor<float> xf = testing::randn<double>({1, L, cfg.dim}, testing::test_seed() + 3).cast<float>();
  const Tensor<float> of = feed_forward(xf, wf_->feed_forward);
  const Tensor<double> od = feed_forward(xf.cast<double>(), wd_->feed_forward);
  testing::expect_within("layers.0.feed_forward real T1 L" + std::to_string(L), numerics::compare(of, od),
                         dit_module_budget(numerics::Tier::T1, "layers.0.feed_forward", cfg, L));
}

INSTANTIATE_TEST_SUITE_P(Lengths, RealSizeT1, ::testing::Values(97, 1025),
                         [](const auto& info) { return "L" + std::to_string(info.param); });

}  // namespace
}  // namespace zimage

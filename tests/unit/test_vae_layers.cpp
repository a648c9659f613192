// VAE layers without data files:
//   T0: conv2d on small integers (every fp32 sum exact) equals a naive loop,
//       for 3x3/pad 1, 1x1, the Downsample2D geometry (stride 2, pad (0,1,0,1),
//       odd sizes), the fused nearest-x2 upsampling, batch 2 and several
//       im2col bands (ragged last band); the fused upsampling equals an
//       explicit nearest upsample + conv bitwise.
//   Semantics: GroupNorm and the mid-block attention (L > one query block)
//       against naive double loops written here from the PyTorch formulas.
//   T1: float vs double of every layer within its fp32 chain budget
//       (reference/numerics/tolerance.h, vae_module_ops).
//   Determinism: bitwise equal outputs for 1, 2 and 4 OpenMP threads.
#include <omp.h>

#include "io/synthetic.h"
#include "support/test_support.h"
#include "vae/autoencoder_kl.h"
#include "vae/synthetic_vae.h"
#include "vae/module_table.h"

namespace zimage {
namespace {

using numerics::Tier;

// Small integers in [-r, r] from the counter-based generator.
template <class T>
Tensor<T> small_ints(Shape s, const std::string& name, int r) {
  Tensor<float> u(s);
  synthetic_fill(11, name, 0.0, 1.0, u.ptr(), u.numel());
  Tensor<T> out(s);
  for (int64_t i = 0; i < u.numel(); ++i) out[i] = T(std::lround(u[i] * (r + 0.49)));
  return out;
}

// Naive Conv2d in int64 (exact), with the same geometry as ConvGeom.
Tensor<int64_t> naive_conv(const Tensor<double>& x, const Conv2dW<double>& w, const ConvGeom& g) {
  const int64_t B = x.dim(0), Cin = x.dim(1), H = x.dim(2) * g.upsample, W = x.dim(3) * g.upsample;
  const int64_t Cout = w.weight.dim(0), kh = w.weight.dim(2), kw = w.weight.dim(3);
  const int64_t Ho = (H + g.pad_top + g.pad_bottom - kh) / g.stride + 1, Wo = (W + g.pad_left + g.pad_right - kw) / g.stride + 1;
  Tensor<int64_t> out({B, Cout, Ho, Wo});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t co = 0; co < Cout; ++co)
      for (int64_t oy = 0; oy < Ho; ++oy)
        for (int64_t ox = 0; ox < Wo; ++ox) {
          int64_t s = w.bias.numel() ? int64_t(w.bias[co]) : 0;
          for (int64_t ci = 0; ci < Cin; ++ci)
            for (int64_t ky = 0; ky < kh; ++ky)
              for (int64_t kx = 0; kx < kw; ++kx) {
                const int64_t iy = oy * g.stride + ky - g.pad_top, ix = ox * g.stride + kx - g.pad_left;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                const double xv = x[((b * Cin + ci) * x.dim(2) + iy / g.upsample) * x.dim(3) + ix / g.upsample];
                s += int64_t(xv) * int64_t(w.weight[((co * Cin + ci) * kh + ky) * kw + kx]);
              }
          out[((b * Cout + co) * Ho + oy) * Wo + ox] = s;
        }
  return out;
}

struct ConvCase {
  std::string name;
  Shape x;     // [B, C_in, H, W]
  int64_t cout, k;
  ConvGeom g;
};
void PrintTo(const ConvCase& c, std::ostream* os) { *os << c.name; }

class VaeConvT0 : public ::testing::TestWithParam<ConvCase> {};

TEST_P(VaeConvT0, SmallIntegersExact) {
  const ConvCase& c = GetParam();
  const Tensor<double> x = small_ints<double>(c.x, "x", 3);
  const Conv2dW<double> wd{small_ints<double>({c.cout, c.x[1], c.k, c.k}, "w", 3), small_ints<double>({c.cout}, "b", 5)};
  const Tensor<int64_t> ref = naive_conv(x, wd, c.g);
  const Conv2dW<float> wf{wd.weight.cast<float>(), wd.bias.cast<float>()};
  const Tensor<float> got = conv2d(x.cast<float>(), wf, c.g);
  ASSERT_EQ(got.shape, ref.shape);
  const int64_t bands = (got.dim(2) + std::max<int64_t>(1, kConvBandPixels / got.dim(3)) - 1) /
                        std::max<int64_t>(1, kConvBandPixels / got.dim(3));
  testing::expect_exact(c.name + " (" + std::to_string(bands) + " bands)", numerics::compare(got, ref.cast<double>()));
  bool nonzero = false;
  for (int64_t i = 0; i < ref.numel(); ++i) nonzero |= ref[i] != 0;
  EXPECT_TRUE(nonzero);
}

INSTANTIATE_TEST_SUITE_P(
    Vae, VaeConvT0,
    ::testing::Values(ConvCase{"same3x3_B1_C8_13x11", {1, 8, 13, 11}, 5, 3, ConvGeom::same3x3()},
                      ConvCase{"same3x3_B2_C4_97x100_3bands", {2, 4, 97, 100}, 3, 3, ConvGeom::same3x3()},
                      ConvCase{"pointwise_B2_C6_9x7", {2, 6, 9, 7}, 4, 1, ConvGeom::pointwise()},
                      ConvCase{"pointwise_B1_C3_70x64_2bands", {1, 3, 70, 64}, 2, 1, ConvGeom::pointwise()},
                      ConvCase{"down_stride2_pad0101_B1_C5_13x11", {1, 5, 13, 11}, 5, 3, ConvGeom{2, 0, 0, 1, 1, 1}},
                      ConvCase{"down_stride2_pad0101_B2_C3_8x6", {2, 3, 8, 6}, 3, 3, ConvGeom{2, 0, 0, 1, 1, 1}},
                      ConvCase{"up2_same3x3_B1_C4_7x5", {1, 4, 7, 5}, 3, 3, ConvGeom{1, 1, 1, 1, 1, 2}},
                      ConvCase{"up2_same3x3_B2_C2_40x33_2bands", {2, 2, 40, 33}, 2, 3, ConvGeom{1, 1, 1, 1, 1, 2}}),
    [](const auto& info) { return info.param.name; });

// Upsample2D: the nearest-x2 gather fused into the conv is the explicit
// F.interpolate(scale_factor=2, mode="nearest") followed by the conv, bit for bit.
TEST(VaeUpsample, FusedEqualsExplicitNearest) {
  const Tensor<float> x = testing::randn<float>({2, 6, 9, 7}, testing::test_seed());
  const Conv2dW<float> w{testing::randn<float>({6, 6, 3, 3}, 2, 0.1), testing::randn<float>({6}, 3, 0.05)};
  Tensor<float> up({2, 6, 18, 14});
  for (int64_t bc = 0; bc < 12; ++bc)
    for (int64_t y = 0; y < 18; ++y)
      for (int64_t xx = 0; xx < 14; ++xx) up[(bc * 18 + y) * 14 + xx] = x[(bc * 9 + y / 2) * 7 + xx / 2];
  testing::expect_exact("upsample_2d vs nearest + conv", numerics::compare(upsample_2d(x, w), conv2d(up, w, ConvGeom::same3x3())));
}

// ---------------------------------------------------------------- semantics

// torch.nn.GroupNorm in long double: biased variance over each (batch, group).
Tensor<double> naive_group_norm(const Tensor<double>& x, const GroupNormW<double>& w, int G, double eps) {
  const int64_t B = x.dim(0), C = x.dim(1), S = x.numel() / (B * C), Cg = C / G;
  Tensor<double> y(x.shape);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t g = 0; g < G; ++g) {
      long double m = 0, v = 0;
      const double* p = x.ptr() + (b * C + g * Cg) * S;
      for (int64_t i = 0; i < Cg * S; ++i) m += p[i];
      m /= Cg * S;
      for (int64_t i = 0; i < Cg * S; ++i) v += (p[i] - m) * (p[i] - m);
      v /= Cg * S;
      for (int64_t c = 0; c < Cg; ++c)
        for (int64_t i = 0; i < S; ++i) {
          const int64_t at = (b * C + g * Cg + c) * S + i;
          y[at] = double((x[at] - m) / std::sqrt(v + eps) * w.weight[g * Cg + c] + w.bias[g * Cg + c]);
        }
    }
  return y;
}

TEST(VaeGroupNorm, MatchesNaiveBiasedVariance) {
  for (const Shape& s : {Shape{2, 32, 9, 7}, Shape{1, 64, 33, 31}}) {
    const Tensor<double> x = testing::randn<double>(s, testing::test_seed(), 2.0);
    GroupNormW<double> w{testing::randn<double>({s[1]}, 5, 0.2), testing::randn<double>({s[1]}, 6, 0.05)};
    for (auto& v : w.weight.data) v += 1.0;
    const Tensor<double> got = group_norm(x, w, 8, 1e-6), ref = naive_group_norm(x, w, 8, 1e-6);
    const numerics::Comparison c = numerics::compare(got, ref);
    std::printf("  group_norm %s double vs naive: rel_rms %.3e max_n %.3e\n", shape_str(s).c_str(), c.rel_rms, c.max_n);
    EXPECT_LT(c.rel_rms, 1e-14);
    EXPECT_LT(c.max_n, 1e-13);
  }
}

// The mid-block attention from its PyTorch formula, with the whole L x L
// matrix at once: checks the blocked softmax over several query blocks.
Tensor<double> naive_attention(const Tensor<double>& x, const VaeAttentionW<double>& w, int G) {
  const int64_t B = x.dim(0), C = x.dim(1), L = x.dim(2) * x.dim(3);
  const Tensor<double> h = naive_group_norm(x.reshaped({B, C, L}), w.group_norm, G, 1e-6);
  Tensor<double> out = x;
  for (int64_t b = 0; b < B; ++b) {
    Eigen::MatrixXd t(L, C);
    for (int64_t c = 0; c < C; ++c)
      for (int64_t l = 0; l < L; ++l) t(l, c) = h[(b * C + c) * L + l];
    auto lin = [&](const LinearW<double>& l) {
      Eigen::MatrixXd W(C, C);
      for (int64_t i = 0; i < C * C; ++i) W(i / C, i % C) = l.weight[i];
      Eigen::MatrixXd r = t * W.transpose();
      for (int64_t c = 0; c < C; ++c) r.col(c).array() += l.bias[c];
      return r;
    };
    const Eigen::MatrixXd q = lin(w.to_q), k = lin(w.to_k), v = lin(w.to_v);
    Eigen::MatrixXd s = q * k.transpose() / std::sqrt(double(C));
    for (int64_t i = 0; i < L; ++i) {
      s.row(i).array() -= s.row(i).maxCoeff();
      s.row(i) = s.row(i).array().exp().matrix();
      s.row(i) /= s.row(i).sum();
    }
    t = s * v;
    const Eigen::MatrixXd o = lin(w.to_out);
    for (int64_t c = 0; c < C; ++c)
      for (int64_t l = 0; l < L; ++l) out[(b * C + c) * L + l] += o(l, c);
  }
  return out;
}

// ---------------------------------------------------------------- T1 and determinism

// A tiny config whose paths name the layers below (block_out_channels [32, 64], 8 groups).
VaeConfig tiny_vae() {
  VaeConfig c = flux_vae_config();
  c.down_block_types.assign(2, "DownEncoderBlock2D");
  c.up_block_types.assign(2, "UpDecoderBlock2D");
  c.block_out_channels = {32, 64};
  c.layers_per_block = 1;
  c.norm_num_groups = 8;
  c.sample_size = {32};
  c.use_quant_conv = c.use_post_quant_conv = true;
  return c;
}

const VaeConfig& cfg() {
  static const VaeConfig c = tiny_vae();
  return c;
}
const ParamSource& params() {
  static const auto src = synthetic_param_source(vae_synthetic_spec(cfg(), 9));
  return *src;
}

TEST(VaeAttention, BlockedEqualsNaiveOverSeveralQueryBlocks) {
  const Shape s{2, 64, 20, 15};  // L = 300: two query blocks of kAttnQueryBlock = 256
  ASSERT_GT(s[2] * s[3], kAttnQueryBlock);
  const Tensor<double> x = testing::randn<double>(s, testing::test_seed());
  VaeAttentionW<double> w = load_vae_attention<double>(params(), "decoder.mid_block.attentions.0");
  for (auto& v : w.to_q.weight.data) v *= 6;  // a peaked softmax, so a wrong row or block shows
  const Tensor<double> got = vae_attention(x, w, 8), ref = naive_attention(x, w, 8);
  const numerics::Comparison c = numerics::compare(got, ref);
  std::printf("  attention L=300 blocked vs naive (double): rel_rms %.3e max_n %.3e\n", c.rel_rms, c.max_n);
  EXPECT_LT(c.rel_rms, 1e-13);
  EXPECT_LT(c.max_n, 1e-12);
}

struct LayerCase {
  std::string path;  // module path in tiny_vae(), which also names the budget
  Shape x;
};
void PrintTo(const LayerCase& c, std::ostream* os) { *os << c.path << " " << shape_str(c.x); }

template <class T>
Tensor<T> run_layer(const LayerCase& c, const Tensor<T>& x) {
  const int G = cfg().norm_num_groups;
  const std::string& p = c.path;
  if (p.find(".resnets.") != std::string::npos) return resnet_block_2d(x, load_resnet_block_2d<T>(params(), p), G);
  if (p.find(".attentions.") != std::string::npos) return vae_attention(x, load_vae_attention<T>(params(), p), G);
  if (p.find(".upsamplers.") != std::string::npos) return upsample_2d(x, load_conv2d<T>(params(), p + ".conv"));
  if (p.find(".downsamplers.") != std::string::npos) return downsample_2d(x, load_conv2d<T>(params(), p + ".conv"));
  if (p.find("norm") != std::string::npos) return group_norm(x, load_group_norm<T>(params(), p), G, kVaeNormEps);
  if (p.find("conv_in") != std::string::npos) return conv2d(x, load_conv2d<T>(params(), p), ConvGeom::same3x3());
  throw Error("no layer " + p);
}

class VaeLayerT1 : public ::testing::TestWithParam<LayerCase> {};

TEST_P(VaeLayerT1, FloatVsDoubleWithinBudget) {
  const LayerCase& c = GetParam();
  const Tensor<double> x = testing::randn<double>(c.x, testing::test_seed());
  const Tensor<double> d = run_layer<double>(c, x);
  const Tensor<float> f = run_layer<float>(c, x.cast<float>());
  testing::expect_within(c.path + " " + shape_str(c.x) + " T1", numerics::compare(f, d),
                         vae_module_budget(Tier::T1, c.path, cfg(), c.x));
}

TEST_P(VaeLayerT1, BitwiseAcrossThreadCounts) {
  const LayerCase& c = GetParam();
  const Tensor<float> x = testing::randn<float>(c.x, testing::test_seed());
  const int saved = omp_get_max_threads();
  std::vector<Tensor<float>> outs;
  for (int n : {1, 2, 4}) {
    omp_set_num_threads(n);
    outs.push_back(run_layer<float>(c, x));
  }
  omp_set_num_threads(saved);
  for (size_t i = 1; i < outs.size(); ++i)
    testing::expect_exact(c.path + " threads 1 vs " + std::to_string(1 << i), numerics::compare(outs[i], outs[0]));
}

INSTANTIATE_TEST_SUITE_P(
    Vae, VaeLayerT1,
    ::testing::Values(LayerCase{"decoder.conv_in", {2, 16, 11, 13}},
                      LayerCase{"decoder.conv_norm_out", {1, 32, 37, 29}},
                      LayerCase{"decoder.mid_block.resnets.0", {2, 64, 12, 10}},
                      LayerCase{"decoder.up_blocks.1.resnets.0", {1, 64, 70, 64}},  // 64 -> 32, shortcut, 2 bands
                      LayerCase{"decoder.mid_block.attentions.0", {1, 64, 20, 15}},  // 2 query blocks
                      LayerCase{"decoder.mid_block.attentions.0", {2, 64, 7, 5}},
                      LayerCase{"decoder.up_blocks.0.upsamplers.0", {1, 64, 9, 7}},
                      LayerCase{"encoder.down_blocks.0.downsamplers.0", {1, 32, 13, 11}}),
    [](const auto& info) {
      std::string s = info.param.path;
      for (int64_t d : info.param.x) s += "_" + std::to_string(d);
      return testing::test_name(s);
    });

}  // namespace
}  // namespace zimage

// The whole AutoencoderKL without data files (synthetic weights):
//   T1: decode / encode / tiled decode in float against double within the
//       chained fp32 budget of the op chain (vae_module_ops "decode", ...).
//   Tiled decode: the difference to the untiled decode, measured and bounded.
//   unscale_latents: the pipeline's formula, shift 0 when null.
//   Bad input: one-line errors naming the tensor / argument.
#include <omp.h>

#include "support/test_support.h"
#include "vae/autoencoder_kl.h"
#include "vae/synthetic_vae.h"
#include "vae/module_table.h"

namespace zimage {
namespace {

using numerics::Tier;

// The Flux structure, narrow: [16, 32, 32], layers_per_block 2, 8 groups,
// no quant convs; sample_size 32 -> tiles of 8 latents / 32 pixels.
VaeConfig flux_like(bool quant = false) {
  VaeConfig c = flux_vae_config();
  c.block_out_channels = {16, 32, 32};
  c.down_block_types.assign(3, "DownEncoderBlock2D");
  c.up_block_types.assign(3, "UpDecoderBlock2D");
  c.norm_num_groups = 8;
  c.sample_size = {32};
  c.use_quant_conv = c.use_post_quant_conv = quant;
  return c;
}

template <class T>
VaeWeights<T> weights(const VaeConfig& c, uint64_t seed = 4) {
  return load_vae_weights<T>(c, *synthetic_param_source(vae_synthetic_spec(c, seed)));
}

TEST(VaeModelT1, DecodeFloatVsDouble) {
  for (bool quant : {false, true}) {
    const VaeConfig c = flux_like(quant);
    const Tensor<double> z = testing::randn<double>({2, 16, 9, 7}, testing::test_seed());
    const Tensor<double> d = vae_decode(c, weights<double>(c), z);
    const Tensor<float> f = vae_decode(c, weights<float>(c), z.cast<float>());
    EXPECT_EQ(d.shape, (Shape{2, 3, 36, 28}));
    testing::expect_within(std::string("decode [2,16,9,7] T1") + (quant ? " (post_quant_conv)" : ""),
                           numerics::compare(f, d), vae_module_budget(Tier::T1, "decode", c, z.shape));
  }
}

TEST(VaeModelT1, EncodeFloatVsDouble) {
  for (bool quant : {false, true}) {
    const VaeConfig c = flux_like(quant);
    const Tensor<double> x = testing::randn<double>({1, 3, 36, 20}, testing::test_seed(), 0.5);
    const auto [md, lvd] = vae_encode(c, weights<double>(c), x);
    const auto [mf, lvf] = vae_encode(c, weights<float>(c), x.cast<float>());
    EXPECT_EQ(md.shape, (Shape{1, 16, 9, 5}));
    const auto b = vae_module_budget(Tier::T1, "encode.mean", c, x.shape);
    const std::string q = quant ? " (quant_conv)" : "";
    testing::expect_within("encode.mean [1,3,36,20] T1" + q, numerics::compare(mf, md), b);
    testing::expect_within("encode.logvar [1,3,36,20] T1" + q, numerics::compare(lvf, lvd), b);
  }
}

// The moments are split on dim 1 as torch.chunk does, and logvar is clamped to [-30, 20].
TEST(VaeModel, EncodeSplitsAndClampsLikeDiagonalGaussian) {
  VaeConfig c = flux_like(true);
  VaeWeights<double> w = weights<double>(c);
  const Tensor<double> x = testing::randn<double>({2, 3, 16, 12}, testing::test_seed(), 0.5);
  Tensor<double> moments = conv2d(vae_encoder_forward(c, *w.encoder, x), *w.quant_conv, ConvGeom::pointwise());
  auto [mean, logvar] = vae_encode(c, w, x);
  const int64_t S = 4 * 3;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t i = 0; i < 16 * S; ++i) {
      ASSERT_EQ(mean[b * 16 * S + i], moments[b * 32 * S + i]);
      ASSERT_EQ(logvar[b * 16 * S + i], std::clamp(moments[b * 32 * S + 16 * S + i], -30.0, 20.0));
    }
  // A quant_conv bias far out of range shows the clamp.
  for (int64_t o = 16; o < 32; ++o) w.quant_conv->bias[o] = o % 2 ? 100.0 : -100.0;
  std::tie(mean, logvar) = vae_encode(c, w, x);
  for (int64_t i = 0; i < logvar.numel(); ++i) ASSERT_TRUE(logvar[i] == 20.0 || logvar[i] == -30.0) << i;
}

TEST(VaeModel, UnscaleLatentsIsThePipelineFormula) {
  VaeConfig c = flux_like();
  const Tensor<float> z = testing::randn<float>({1, 16, 3, 5}, testing::test_seed());
  const Tensor<float> u = unscale_latents(c, z);
  for (int64_t i = 0; i < z.numel(); ++i) ASSERT_EQ(u[i], z[i] / 0.3611f + 0.1159f);
  c.shift_factor.reset();  // shift_factor null: shift 0
  const Tensor<float> v = unscale_latents(c, z);
  for (int64_t i = 0; i < z.numel(); ++i) ASSERT_EQ(v[i], z[i] / 0.3611f);
}

// ---------------------------------------------------------------- tiled decode

// Tiled decode differs from the untiled decode by design (each tile sees its
// own GroupNorm statistics and a cropped receptive field). What can be proved:
// with aligned tiles (overlap_size * f == tile_sample - blend_extent and no
// tile shorter than the blend extent) every output pixel is a convex
// combination (weights 1 - y/E and y/E, applied in place in raster order) of
// the decodes of the tiles that cover that pixel. Hence, pointwise,
//   min_t D_t(p) <= tiled(p) <= max_t D_t(p)   and
//   |tiled(p) - untiled(p)| <= max_t |D_t(p) - untiled(p)|,
// which the test checks (in double, up to 1e-12 of rounding) and prints,
// with the measured tiled-vs-untiled difference.
TEST(VaeTiledDecode, DifferenceToUntiledIsBoundedByTheTiles) {
  const VaeConfig c = flux_like();
  const auto w = weights<double>(c);
  const int64_t f = c.spatial_factor();
  const TileOptions t = resolved_tiles(c, {});
  ASSERT_EQ(t.tile_latent, 8);
  ASSERT_EQ(t.tile_sample, 32);
  const int64_t ov = int64_t(t.tile_latent * (1 - t.overlap)), E = int64_t(t.tile_sample * t.overlap);
  ASSERT_EQ(ov * f, t.tile_sample - E) << "aligned tiles";
  const Tensor<double> z = testing::randn<double>({1, 16, 20, 14}, testing::test_seed());  // 4 x 3 tiles
  const Tensor<double> untiled = vae_decode(c, w, z), tiled = vae_tiled_decode(c, w, z);
  ASSERT_EQ(tiled.shape, untiled.shape);
  const int64_t C = 3, H = tiled.dim(2), W = tiled.dim(3);
  std::vector<double> lo(size_t(C * H * W), INFINITY), hi(size_t(C * H * W), -INFINITY), dev(size_t(C * H * W), 0);
  int tiles = 0;
  for (int64_t i = 0; i < z.dim(2); i += ov)
    for (int64_t j = 0; j < z.dim(3); j += ov) {
      const int64_t th = std::min<int64_t>(t.tile_latent, z.dim(2) - i), tw = std::min<int64_t>(t.tile_latent, z.dim(3) - j);
      ASSERT_GE(th * f, E);
      ASSERT_GE(tw * f, E);
      Tensor<double> zt({1, 16, th, tw});
      for (int64_t ch = 0; ch < 16; ++ch)
        for (int64_t y = 0; y < th; ++y)
          for (int64_t x = 0; x < tw; ++x) zt[(ch * th + y) * tw + x] = z[(ch * z.dim(2) + i + y) * z.dim(3) + j + x];
      const Tensor<double> d = vae_decode(c, w, zt);
      ++tiles;
      for (int64_t ch = 0; ch < C; ++ch)
        for (int64_t y = 0; y < th * f; ++y)
          for (int64_t x = 0; x < tw * f; ++x) {
            const int64_t p = (ch * H + i * f + y) * W + j * f + x;
            const double v = d[(ch * th * f + y) * tw * f + x];
            lo[size_t(p)] = std::min(lo[size_t(p)], v);
            hi[size_t(p)] = std::max(hi[size_t(p)], v);
            dev[size_t(p)] = std::max(dev[size_t(p)], std::fabs(v - untiled[p]));
          }
    }
  const numerics::Comparison cmp = numerics::compare(tiled, untiled);
  double worst_excess = 0, bound = 0, outside = 0;
  for (int64_t p = 0; p < C * H * W; ++p) {
    const double slack = 1e-12 * cmp.ref_rms;
    outside = std::max({outside, lo[size_t(p)] - tiled[p] - slack, tiled[p] - hi[size_t(p)] - slack});
    worst_excess = std::max(worst_excess, std::fabs(tiled[p] - untiled[p]) - dev[size_t(p)] - slack);
    bound = std::max(bound, dev[size_t(p)]);
  }
  std::printf("  tiled vs untiled decode, z [1,16,20,14], %d tiles of 8 latents, blend %lld px: rel_rms %.3e max|d| %.3e "
              "(rms(untiled) %.3e); bound max_t |D_t - untiled| = %.3e; max excess over the pointwise bound %.1e, "
              "outside the tiles' range by %.1e\n",
              tiles, (long long)E, cmp.rel_rms, cmp.max_n * cmp.ref_rms, cmp.ref_rms, bound, worst_excess, outside);
  EXPECT_EQ(tiles, 12);
  EXPECT_LE(worst_excess, 0.0) << "a tiled pixel is farther from the untiled decode than every tile covering it";
  EXPECT_LE(outside, 0.0) << "a tiled pixel is not a convex combination of the tiles covering it";
  EXPECT_LE(cmp.max_n * cmp.ref_rms, bound);
  EXPECT_GT(cmp.rel_rms, 0.0) << "tiles that see different GroupNorm statistics must differ from the untiled decode";
}

// diffusers' _decode tiles only a latent larger than one tile: then the tiled
// path is the plain decode, bit for bit.
TEST(VaeTiledDecode, OneTileIsThePlainDecode) {
  const VaeConfig c = flux_like(true);
  const auto w = weights<float>(c);
  const Tensor<float> z = testing::randn<float>({1, 16, 8, 6}, testing::test_seed());
  testing::expect_exact("decode_maybe_tiled, z within one tile", numerics::compare(vae_decode_maybe_tiled(c, w, z), vae_decode(c, w, z)));
}

// The choice itself (tiles_for_decode, asked by the reference's and the CUDA VAE's
// decode_maybe_tiled): tiles exactly when h or w exceeds tile_latent, with the
// defaults resolved from the config.
TEST(VaeTiledDecode, TilesOnlyWhenLatentsExceedOneTileInHOrW) {
  const VaeConfig c = flux_like(true);
  const int t = resolved_tiles(c, {}).tile_latent;
  ASSERT_GT(t, 1);
  EXPECT_FALSE(tiles_for_decode(c, {1, 16, t, t}, {}).has_value()) << "h = w = tile_latent is one tile";
  for (const Shape& z : {Shape{1, 16, t + 1, t}, Shape{1, 16, t, t + 1}, Shape{2, 16, t + 1, 1}}) {
    const std::optional<TileOptions> tiles = tiles_for_decode(c, z, {});
    ASSERT_TRUE(tiles.has_value()) << shape_str(z);
    EXPECT_EQ(tiles->tile_latent, t);
    EXPECT_EQ(tiles->tile_sample, c.tile_sample_min_size());
  }
  EXPECT_EQ(tiles_for_decode(c, {1, 16, 5, 5}, {4, 32, 0.25})->tile_latent, 4) << "given tiles are kept";
  EXPECT_THROW(tiles_for_decode(c, {1, 15, t, t}, {}), Error) << "the latents are checked first";
}

TEST(VaeTiledDecode, FloatVsDoubleWithinBudget) {
  const VaeConfig c = flux_like(true);
  const Tensor<double> z = testing::randn<double>({1, 16, 12, 7}, testing::test_seed());
  const Tensor<double> d = vae_tiled_decode(c, weights<double>(c), z);
  const Tensor<float> f = vae_tiled_decode(c, weights<float>(c), z.cast<float>());
  EXPECT_EQ(d.shape, (Shape{1, 3, 48, 28}));
  testing::expect_within("tiled_decode [1,16,12,7] T1", numerics::compare(f, d),
                         vae_module_budget(Tier::T1, "tiled_decode", c, z.shape));
}

TEST(VaeModel, DecodeBitwiseAcrossThreadCounts) {
  const VaeConfig c = flux_like(true);
  const auto w = weights<float>(c);
  // Large enough that the last stage's convs (2 x 16 x 144 x 7680 multiply-adds, 2 bands per item) run threaded.
  const Tensor<float> z = testing::randn<float>({2, 16, 24, 20}, testing::test_seed());
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const Tensor<float> one = vae_decode(c, w, z);
  omp_set_num_threads(2);
  const Tensor<float> two = vae_decode(c, w, z);
  omp_set_num_threads(saved);
  testing::expect_exact("decode 1 vs 2 threads", numerics::compare(two, one));
}

// ---------------------------------------------------------------- bad input

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(VaeBadInput, OneLineErrorsNamingTheProblem) {
  const VaeConfig c = flux_like();
  const auto w = weights<float>(c);
  auto expect = [](const std::string& err, const std::string& needle) {
    EXPECT_NE(err.find(needle), std::string::npos) << "'" << err << "' lacks '" << needle << "'";
    EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  };
  expect(error_of([&] { vae_decode(c, w, Tensor<float>({1, 4, 8, 8})); }), "have 4 channels, the VAE config has latent_channels 16");
  expect(error_of([&] { vae_decode(c, w, Tensor<float>({16, 8, 8})); }), "must be [B, 16, h, w]");
  const auto wd = load_vae_weights<float>(c, *synthetic_param_source(vae_synthetic_spec(c, 1)), VaePart::Decoder);
  expect(error_of([&] { vae_encode(c, wd, Tensor<float>({1, 3, 8, 8})); }), "encoder weights were not loaded");
  const auto we = load_vae_weights<float>(c, *synthetic_param_source(vae_synthetic_spec(c, 1)), VaePart::Encoder);
  expect(error_of([&] { vae_encode(c, we, Tensor<float>({1, 4, 8, 8})); }), "has 4 channels, the VAE config has in_channels 3");
  expect(error_of([&] { vae_encode(c, we, Tensor<float>({1, 3, 3, 8})); }), "is too small");
  // A weight source that lacks a tensor, or has one of the wrong shape.
  VaeConfig q = c;
  q.use_post_quant_conv = true;
  expect(error_of([&] { load_vae_weights<float>(q, *synthetic_param_source(vae_synthetic_spec(c, 1))); }),
         "missing tensor 'post_quant_conv.bias'");
  expect(error_of([&] { load_vae_weights<float>(c, *synthetic_param_source(vae_synthetic_spec(q, 1))); }),
         "unexpected tensor 'post_quant_conv.bias' (and 1 more): not a parameter of AutoencoderKL");
  expect(error_of([&] { vae_tiled_decode(c, w, Tensor<float>({1, 16, 4, 4}), {8, 32, 1.0}); }), "overlap factor");
}

}  // namespace
}  // namespace zimage

// slow: the real FLUX.1 VAE config (block_out_channels [128, 256, 512, 512],
// layers_per_block 2, 32 groups, 16 latent channels) with synthetic weights:
// whole decode and encode in float against double within the chained fp32
// budget (T1), on a small spatial size with a ragged aspect. The 1024x1024
// decode (time, peak RSS) is measured with `zimage vae decode --synthetic`
// (docs/vae.md, "Memory and time"). VaeRealT2: the reference's whole decode at 1024x1024 against
// diffusers' on the sampled rows of golden/vae_flux_1024 (minutes: about 10 TFLOP per dtype).
#include <chrono>
#include <type_traits>

#include "support/goldens.h"
#include "numerics/row_sample.h"
#include "support/test_support.h"
#include "vae/autoencoder_kl.h"
#include "vae/synthetic_vae.h"
#include "vae/vae_golden.h"
#include "vae/module_table.h"

namespace zimage {
namespace {

using numerics::Tier;

const VaeConfig& flux() {
  static const VaeConfig c = flux_vae_config();
  return c;
}
const ParamSource& params() {
  static const auto src = synthetic_param_source(vae_synthetic_spec(flux(), 0));
  return *src;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TEST(VaeRealT1, DecodeFloatVsDouble) {
  const Tensor<double> z = testing::randn<double>({1, 16, 8, 12}, testing::test_seed());
  auto t0 = std::chrono::steady_clock::now();
  const Tensor<float> f = vae_decode(flux(), load_vae_weights<float>(flux(), params(), VaePart::Decoder), z.cast<float>());
  const double tf = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  const Tensor<double> d = vae_decode(flux(), load_vae_weights<double>(flux(), params(), VaePart::Decoder), z);
  const double td = seconds_since(t0);
  EXPECT_EQ(d.shape, (Shape{1, 3, 64, 96}));
  std::printf("  Flux decode [1,16,8,12] -> [1,3,64,96]: float %.2f s, double %.2f s\n", tf, td);
  testing::expect_within("Flux decode [1,16,8,12] T1", numerics::compare(f, d),
                         vae_module_budget(Tier::T1, "decode", flux(), z.shape));
}

TEST(VaeRealT1, EncodeFloatVsDouble) {
  const Tensor<double> x = testing::randn<double>({1, 3, 64, 48}, testing::test_seed(), 0.5);
  const auto [mf, lf] = vae_encode(flux(), load_vae_weights<float>(flux(), params(), VaePart::Encoder), x.cast<float>());
  const auto [md, ld] = vae_encode(flux(), load_vae_weights<double>(flux(), params(), VaePart::Encoder), x);
  EXPECT_EQ(md.shape, (Shape{1, 16, 8, 6}));
  const auto b = vae_module_budget(Tier::T1, "encode.mean", flux(), x.shape);
  testing::expect_within("Flux encode.mean [1,3,64,48] T1", numerics::compare(mf, md), b);
  testing::expect_within("Flux encode.logvar [1,3,64,48] T1", numerics::compare(lf, ld), b);
}

// golden/vae_flux_1024 (kind vae_sampled): diffusers' AutoencoderKL.decode at the Flux config and
// full size; the reference's decode in T, on the golden's 64 sampled rows, within the whole-model
// T2 budget of the decode chain at 128 x 128 latents (what the GPU decode is held to).
template <class T>
void full_size_decode_t2() {
  const VaeGolden g = open_vae_golden(testing::golden_path("vae_flux_1024"));
  const VaeSampledDecode d = vae_sampled_decode(g);
  const auto t0 = std::chrono::steady_clock::now();
  const Tensor<T> image = vae_decode(g.config, load_vae_weights<T>(g.config, *g.params, VaePart::Decoder), d.z.cast<T>());
  std::printf("  decode [1,16,128,128] -> %s in %s: %.1f s\n", shape_str(image.shape).c_str(),
              std::is_same_v<T, double> ? "double" : "float", seconds_since(t0));
  ASSERT_EQ(image.shape, d.image);
  const Tensor<T> got = numerics::rows_of(image, d.rows);  // the image as rows of its last dim
  testing::expect_within(std::string("vae_flux_1024 decode vs diffusers T2 (") + (std::is_same_v<T, double> ? "double" : "float") + ")",
                         numerics::compare(got, d.sampled), vae_module_budget(Tier::T2, "decode", g.config, d.z.shape));
}

TEST(VaeRealT2, FullSizeDecodeMatchesDiffusersOnSampledRows_double) { full_size_decode_t2<double>(); }
TEST(VaeRealT2, FullSizeDecodeMatchesDiffusersOnSampledRows_float) { full_size_decode_t2<float>(); }

}  // namespace
}  // namespace zimage

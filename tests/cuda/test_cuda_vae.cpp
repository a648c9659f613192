// The VAE on CUDA (cuda/vae_cuda.h; docs/cuda.md, "The VAE on the GPU"), against the reference and diffusers' goldens.
//   Im2colNhwc: exact, every gather the VAE uses (3x3 same, nearest x2, the downsampler's pad +
//     stride 2, pointwise, ragged band starts). GroupNormNhwc: group_norm_nhwc (+ SiLU) at real
//     widths (T3 fp32 / T4 + peer bf16 against the fp64 reference). SoftmaxRows, TransposeBatched
//     (exact).
//   VaeCudaGolden: every module row of golden/vae_tiny, vae_flux_like and vae_real_blocks that has
//     a CUDA twin, teacher forced on its golden input: fp32 within T3 of our fp64 reference and
//     T2 of diffusers' fp32 golden; bf16 within T4 of the fp64 reference. The whole-model rows
//     decode, encode.mean and encode.logvar run through CudaVae.
//   VaeCudaConfig: refusals before any device work (run without a GPU too).
#include <array>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <tuple>

#include "cuda_support.h"
#include "kernels/group_norm.h"
#include "kernels/im2col.h"
#include "kernels/im2col_map.h"
#include "kernels/softmax_rows.h"
#include "kernels/transpose.h"
#include "kernels/upsample.h"
#include "nn/softmax.h"
#include "numerics/row_sample.h"
#include "support/cli_runner.h"
#include "support/goldens.h"
#include "vae/synthetic_vae.h"
#include "vae_cuda.h"
#ifdef ZIMAGE_WITH_CUDNN
#include "cudnn_plan.h"
#endif
#include "vae/module_table.h"

namespace zimage {
namespace {

using testing::DType;

const VaeGolden& golden(const std::string& c) {
  return testing::open_once<VaeGolden>(testing::golden_path(c), [](const std::string& p) { return open_vae_golden(p); });
}

// The im2col the kernel documents, written out on the host.
Tensor<float> host_im2col(const Tensor<float>& xh, const gpu::Im2colGeom& g, int64_t q0, int64_t P) {
  const int64_t H = xh.dim(1), W = xh.dim(2), C = xh.dim(3), Ho = g.out_h(H), Wo = g.out_w(W);
  const int64_t K = int64_t(g.kh) * g.kw * C;
  Tensor<float> out({P, K});
  for (int64_t p = 0; p < P; ++p) {
    const int64_t q = q0 + p, ox = q % Wo, oy = (q / Wo) % Ho, b = q / (Wo * Ho);
    for (int64_t dy = 0; dy < g.kh; ++dy)
      for (int64_t dx = 0; dx < g.kw; ++dx)
        for (int64_t c = 0; c < C; ++c) {
          const int64_t iy = oy * g.stride + dy - g.pad_top, ix = ox * g.stride + dx - g.pad_left;
          const bool in = iy >= 0 && iy < H * g.up && ix >= 0 && ix < W * g.up;
          out[p * K + (dy * g.kw + dx) * C + c] = in ? xh[((b * H + iy / g.up) * W + ix / g.up) * C + c] : 0.f;
        }
  }
  return out;
}

// Every gather the VAE uses, and two without padding.
const std::vector<std::pair<std::string, gpu::Im2colGeom>>& im2col_geoms() {
  static const std::vector<std::pair<std::string, gpu::Im2colGeom>> geoms = {
      {"same3x3", gpu::geom_same3x3()},
      {"upsample2", gpu::geom_same3x3(2)},
      {"downsample", gpu::geom_downsample()},
      {"pointwise", gpu::geom_pointwise()},
      {"stride2_nopad", {3, 3, 2, 0, 0, 0, 0, 1}}};
  return geoms;
}

// The bands a test takes of Q output pixels: all of them, all but the first 3, and one in the middle.
std::vector<std::array<int64_t, 2>> im2col_bands(int64_t Q) { return {{0, Q}, {3, Q - 3}, {Q / 2, 1}}; }

// C 5 runs v1 in both dtypes; C 12 v2 in fp32 (4 a vector) and v1 in bf16; C 16 v2 in both (bf16: 8).
TEST(Im2colNhwc, IsExactForEveryGather) {
  ZIMAGE_REQUIRE_CUDA();
  for (const int64_t C : {5, 12, 16}) {
    const Tensor<float> x = gpu::nchw_to_nhwc(testing::randn<float>({2, C, 9, 7}, testing::test_seed() + uint64_t(C)));
    for (DType dt : {DType::F32, DType::BF16}) {
      const Tensor<float> xs = testing::round_to(dt, x);
      const auto xd = testing::to_device(xs, dt);
      for (const auto& [name, g] : im2col_geoms()) {
        const int64_t Q = 2 * g.out_h(9) * g.out_w(7), K = int64_t(g.kh) * g.kw * C;
        for (auto [q0, P] : im2col_bands(Q)) {
          testing::Guarded out(dt, {P, K});
          const int vec = gpu::im2col_nhwc_v2_elems(dt, 2, 9, 7, C, g, q0, P, xd.data(), out.data());
          EXPECT_EQ(vec, C % (16 / int64_t(gpu::dtype_size(dt))) == 0 ? 16 / int(gpu::dtype_size(dt)) : 0);
          gpu::im2col_nhwc(dt, xd.data(), 2, 9, 7, C, g, q0, P, out.data(), testing::rt().stream());
          const std::string what = "im2col " + name + " C " + std::to_string(C) + " " + testing::dtype_tag(dt) +
                                   " q0 " + std::to_string(q0) + (vec ? " (v2)" : " (v1)");
          testing::expect_exact(what, numerics::compare(out.host(), host_im2col(xs, g, q0, P).cast<double>()));
          out.expect_guards_intact(what);
        }
      }
    }
  }
}

// v2's index map (kernels/im2col_map.h), the function its kernel runs per 16-byte vector, replayed
// on the host for every vector of every band and gather: the copy it describes is the definition's
// im2col exactly. Then its 32-bit limits and the version choice. Host only (in CI).
TEST(Im2colNhwc, VectorMapIsTheDefinition) {
  int64_t vectors = 0;
  for (const int64_t vec : {4, 8})
    for (const int64_t C : {8, 16, 24}) {
      const Tensor<float> x = gpu::nchw_to_nhwc(testing::randn<float>({2, C, 9, 7}, testing::test_seed() + 7));
      for (const auto& [name, g] : im2col_geoms()) {
        const int64_t Q = 2 * g.out_h(9) * g.out_w(7), K = int64_t(g.kh) * g.kw * C;
        for (auto [q0, P] : im2col_bands(Q)) {
          const std::optional<gpu::Im2colVecMap> m = gpu::im2col_vec_map(2, 9, 7, C, vec, g, q0, P);
          ASSERT_TRUE(m.has_value()) << name;
          Tensor<float> got({P, K});
          const int64_t nv = P * K / vec;
          for (int64_t v = 0; v < nv; ++v) {
            const int64_t src = m->source(uint32_t(v));
            ASSERT_GE(src, -1);
            ASSERT_LT(src, x.numel() / vec) << name << " vector " << v;
            for (int64_t j = 0; j < vec; ++j) got[v * vec + j] = src < 0 ? 0.f : x[src * vec + j];
          }
          vectors += nv;
          const std::string what = "im2col map " + name + " C " + std::to_string(C) + " vec " + std::to_string(vec) +
                                   " q0 " + std::to_string(q0);
          testing::expect_exact(what, numerics::compare(got, host_im2col(x, g, q0, P).cast<double>()));
        }
      }
    }
  std::printf("  %lld vectors replayed\n", (long long)vectors);
  const gpu::Im2colGeom same = gpu::geom_same3x3();
  EXPECT_FALSE(gpu::im2col_vec_map(2, 9, 7, 12, 8, same, 0, 1));                    // C not whole vectors
  EXPECT_FALSE(gpu::im2col_vec_map(1, 1 << 16, 1 << 16, 8, 8, same, 0, 1));         // 2^32 output pixels
  EXPECT_TRUE(gpu::im2col_vec_map(1, 1 << 15, 1 << 16, 8, 8, same, 0, 1 << 20));    // 2^31 pixels, 2^20 rows
  EXPECT_FALSE(gpu::im2col_vec_map(1, 1 << 15, 1 << 16, 64, 8, same, 0, 1 << 25));  // over 2^31 vectors
  const void* a = reinterpret_cast<const void*>(uintptr_t(1) << 12);
  const void* odd = reinterpret_cast<const void*>((uintptr_t(1) << 12) + 8);
  EXPECT_EQ(gpu::im2col_nhwc_v2_elems(DType::BF16, 2, 9, 7, 16, same, 0, 10, a, a), 8);
  EXPECT_EQ(gpu::im2col_nhwc_v2_elems(DType::F32, 2, 9, 7, 12, same, 0, 10, a, a), 4);
  EXPECT_EQ(gpu::im2col_nhwc_v2_elems(DType::BF16, 2, 9, 7, 12, same, 0, 10, a, a), 0);
  EXPECT_EQ(gpu::im2col_nhwc_v2_elems(DType::BF16, 2, 9, 7, 3, same, 0, 10, a, a), 0);  // the encoder's conv_in
  EXPECT_EQ(gpu::im2col_nhwc_v2_elems(DType::BF16, 2, 9, 7, 16, same, 0, 10, odd, a), 0);
  EXPECT_EQ(gpu::im2col_nhwc_v2_elems(DType::BF16, 2, 9, 7, 16, same, 0, 10, a, odd), 0);
  EXPECT_EQ(gpu::im2col_nhwc_v2_elems(DType::F16, 2, 9, 7, 16, same, 0, 10, a, a), 0);  // refused by v1's dispatch
}

struct GnCase {
  DType dt;
  int64_t B, H, W, C, G;
  bool silu;
};
std::string gn_name(const ::testing::TestParamInfo<GnCase>& i) {
  const GnCase& c = i.param;
  return testing::dtype_tag(c.dt) + "_B" + std::to_string(c.B) + "_" + std::to_string(c.H) + "x" + std::to_string(c.W) +
         "_C" + std::to_string(c.C) + "_G" + std::to_string(c.G) + (c.silu ? "_silu" : "");
}
std::vector<GnCase> gn_cases() {
  std::vector<GnCase> out;
  for (DType dt : {DType::F32, DType::BF16})
    for (bool silu : {false, true})
      for (auto [B, H, W, C, G] : std::vector<std::array<int64_t, 5>>{
               {1, 128, 128, 512, 32}, {1, 512, 512, 128, 32}, {2, 17, 9, 64, 8}, {1, 3, 1, 32, 32}})
        out.push_back({dt, B, H, W, C, G, silu});
  return out;
}

class GroupNormNhwc : public ::testing::TestWithParam<GnCase> {};

TEST_P(GroupNormNhwc, MatchesReference) {
  ZIMAGE_REQUIRE_CUDA();
  const GnCase c = GetParam();
  const uint64_t seed = testing::test_seed();
  // An offset mean, as activations have, so that the two-pass variance matters.
  Tensor<float> x = testing::randn<float>({c.B, c.C, c.H, c.W}, seed, 2.0);
  for (auto& v : x.data) v += 3.f;
  x = testing::round_to(c.dt, x);
  GroupNormW<float> w{testing::round_to(c.dt, testing::randn<float>({c.C}, seed + 1, 0.5)),
                      testing::round_to(c.dt, testing::randn<float>({c.C}, seed + 2, 0.5))};
  const auto xd = testing::to_device(gpu::nchw_to_nhwc(x), c.dt);
  const auto wd = testing::to_device(w.weight, c.dt), bd = testing::to_device(w.bias, c.dt);
  testing::Guarded out(c.dt, {c.B, c.H, c.W, c.C});
  gpu::DeviceBuffer scratch;
  gpu::group_norm_nhwc(c.dt, xd.data(), out.data(), {c.B, c.H * c.W, c.C, c.G}, wd.data(), bd.data(), kVaeNormEps,
                       c.silu, scratch, testing::rt().stream());
  const Tensor<float> got = out.host();
  GroupNormW<double> wdd{w.weight.cast<double>(), w.bias.cast<double>()};
  Tensor<double> ref = group_norm(x.cast<double>(), wdd, int(c.G), kVaeNormEps);
  Tensor<float> peer = testing::round_to(c.dt, group_norm(x, w, int(c.G), kVaeNormEps));
  VaeConfig cfg;  // the policy's op chain of a VAE GroupNorm with these groups and this input
  cfg.norm_num_groups = int(c.G);
  std::vector<numerics::Op> ops = vae_module_ops("decoder.conv_norm_out", cfg, x.shape);
  if (c.silu) {
    silu_(ref);
    silu_(peer);
    peer = testing::round_to(c.dt, peer);
    ops.push_back(testing::op_elem("silu", true));
  }
  peer = gpu::nchw_to_nhwc(peer);
  testing::expect_t3_or_t4("group_norm " + gn_name(::testing::TestParamInfo<GnCase>(c, 0)), c.dt, got,
                           &peer, gpu::nchw_to_nhwc(ref), ops);
  out.expect_guards_intact("group_norm");
}

INSTANTIATE_TEST_SUITE_P(Shapes, GroupNormNhwc, ::testing::ValuesIn(gn_cases()), gn_name);

// The input of SoftmaxRows and TransposeBatched: 37 rows of 4099 scores (the mid-block attention's
// shape class: one row per query, L past a multiple of the block size).
Tensor<float> score_rows(DType dt) {
  return testing::round_to(dt, testing::randn<float>({37, 4099}, testing::test_seed(), 30.0));
}

TEST(SoftmaxRows, AgainstReference) {
  ZIMAGE_REQUIRE_CUDA();
  const int64_t R = 37, L = 4099;
  const float scale = 1.0f / std::sqrt(512.0f);
  for (DType dt : {DType::F32, DType::BF16}) {
    const Tensor<float> ss = score_rows(dt);
    testing::Guarded d(dt, {R, L});
    testing::upload_into_guarded(ss, dt, d);
    gpu::softmax_rows({d.data(), L, dt}, R, L, scale, testing::rt().stream());
    Tensor<double> ref = ss.cast<double>();
    for (auto& v : ref.data) v *= double(scale);
    for (int64_t i = 0; i < R; ++i) masked_softmax_row(ref.ptr() + i * L, L, [](int64_t) { return true; });
    testing::expect_tier("softmax_rows " + testing::dtype_tag(dt), dt, d.host(), ref,
                         {testing::op_elem("scale"), {"softmax(L=4099)", 2, double(L), true}});
    d.expect_guards_intact("softmax_rows");
  }
}

// transpose_batched of x [R, L] (values exact in dt) into a guarded [L, R]: exactly x^T.
void expect_transpose_exact(const Tensor<float>& x, DType dt, const std::string& what) {
  const int64_t R = x.dim(0), L = x.dim(1);
  const auto xd = testing::to_device(x, dt);
  testing::Guarded t(dt, {L, R});
  gpu::transpose_batched(dt, xd.data(), t.data(), 1, R, L, testing::rt().stream());
  Tensor<float> tref({L, R});
  for (int64_t i = 0; i < R; ++i)
    for (int64_t j = 0; j < L; ++j) tref[j * R + i] = x[i * L + j];
  testing::expect_exact(what, numerics::compare(t.host(), tref.cast<double>()));
  t.expect_guards_intact(what);
}

TEST(TransposeBatched, IsExact) {
  ZIMAGE_REQUIRE_CUDA();
  for (DType dt : {DType::F32, DType::BF16})
    expect_transpose_exact(score_rows(dt), dt, "transpose " + testing::dtype_tag(dt));
}

// More column tiles than gridDim.y holds (65535 x 32 columns): an image's NCHW -> NHWC upload at
// over 2.1 megapixels (3 x 1456 x 1456 and up), where the kernel strides over the column tiles.
TEST(TransposeBatched, IsExactPastTheGridsColumnTiles) {
  ZIMAGE_REQUIRE_CUDA();
  const int64_t R = 3, L = 65535 * 32 + 77;
  Tensor<float> x({R, L});
  for (int64_t i = 0; i < x.numel(); ++i) x[i] = float(i % 251) - 125.0f;  // exact in bf16
  for (DType dt : {DType::F32, DType::BF16})
    expect_transpose_exact(x, dt, "transpose " + testing::dtype_tag(dt) + " 3 x " + std::to_string(L));
}

// The nearest upsampling the kernel documents, written out on the host (NHWC).
Tensor<float> host_upsample(const Tensor<float>& xh, int up) {
  const int64_t B = xh.dim(0), H = xh.dim(1), W = xh.dim(2), C = xh.dim(3);
  Tensor<float> y({B, H * up, W * up, C});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t oy = 0; oy < H * up; ++oy)
      for (int64_t ox = 0; ox < W * up; ++ox)
        for (int64_t c = 0; c < C; ++c)
          y[((b * H * up + oy) * W * up + ox) * C + c] = xh[((b * H + oy / up) * W + ox / up) * C + c];
  return y;
}

// Every copy unit: bf16 C 5 (10-byte rows: 2-byte units), fp32 C 5 (20: 4-byte), bf16 C 8 and
// fp32 C 64 (16-byte units); factors 2 (Upsample2D) and 3.
TEST(UpsampleNearest, IsExactForEveryCopyUnit) {
  ZIMAGE_REQUIRE_CUDA();
  for (DType dt : {DType::F32, DType::BF16})
    for (int64_t C : {5, 8, 64})
      for (int up : {2, 3}) {
        const Tensor<float> x = testing::round_to(dt, testing::randn<float>({2, 5, 3, C}, testing::test_seed()));
        const auto xd = testing::to_device(x, dt);
        testing::Guarded y(dt, {2, 5 * up, 3 * up, C});
        gpu::upsample_nearest_nhwc(dt, xd.data(), 2, 5, 3, C, up, y.data(), testing::rt().stream());
        const std::string what = "upsample_nearest " + testing::dtype_tag(dt) + " C" + std::to_string(C) + " x" +
                                 std::to_string(up);
        testing::expect_exact(what, numerics::compare(y.host(), host_upsample(x, up).cast<double>()));
        y.expect_guards_intact(what);
      }
  // A 16-byte row at 4-byte-aligned (not 16-byte-aligned) pointers: the 4-byte units.
  const DType dt = DType::BF16;
  const Tensor<float> x = testing::round_to(dt, testing::randn<float>({1, 3, 2, 8}, testing::test_seed()));
  gpu::DeviceTensor xd(dt, {1 * 3 * 2 * 8 + 2});
  gpu::upload_into(x, dt, gpu::offset(xd.data(), 2, dt), testing::rt().staging(), testing::rt().stream());
  testing::Guarded y(dt, {1 * 6 * 4 * 8 + 2});
  gpu::upsample_nearest_nhwc(dt, gpu::offset(xd.data(), 2, dt), 1, 3, 2, 8, 2, gpu::offset(y.data(), 2, dt),
                             testing::rt().stream());
  const Tensor<float> got = y.host();
  Tensor<float> got_body({1, 6, 4, 8});
  std::copy(got.data.begin() + 2, got.data.end(), got_body.data.begin());
  testing::expect_exact("upsample_nearest bf16 C8 x2 at 4-byte alignment",
                        numerics::compare(got_body, host_upsample(x, 2).cast<double>()));
  y.expect_guards_intact("upsample_nearest at 4-byte alignment");
}

// One conv of each geometry cuDNN takes (conv_cudnn.h; with and without the fused bias), into a
// guarded output, and through conv2d_nhwc with VaeConvVersion::cudnn (the upsampler: the kernel
// above, then cuDNN), against the fp64 reference conv on the same bf16-rounded inputs: T4 of the
// conv chain plus the peer rule (the fp32 reference conv rounded to bf16). Each call is checked to
// have gone through cuDNN (cudnn_conv_calls); the downsampler's unequal pads stay on im2col.
TEST(CudnnConv, MatchesTheReferenceConvForEveryGeometry) {
  ZIMAGE_REQUIRE_CUDA();
  std::string why;
  if (!gpu::cudnn_available(&why)) GTEST_SKIP() << why;
  const DType dt = DType::BF16;
  const uint64_t seed = testing::test_seed();
  const int64_t B = 2, H = 17, W = 9, Ci = 64, Co = 32;
  const Tensor<float> x = testing::round_to(dt, testing::randn<float>({B, Ci, H, W}, seed));
  const auto xd = testing::to_device(gpu::nchw_to_nhwc(x), dt);
  struct Geo {
    std::string name;
    gpu::Im2colGeom g;
    int k;
  };
  const std::vector<Geo> geos = {{"same3x3", gpu::geom_same3x3(), 3},
                                 {"upsample2", gpu::geom_same3x3(2), 3},
                                 {"pointwise", gpu::geom_pointwise(), 1}};
  gpu::Im2colGeom down = gpu::geom_downsample();
  EXPECT_EQ(gpu::resolve_vae_conv(gpu::VaeConvVersion::cudnn, dt, Ci, Co, down), gpu::VaeConvVersion::im2col);
  for (const Geo& geo : geos)
    for (bool with_bias : {true, false}) {
      Conv2dW<float> w{testing::round_to(dt, testing::randn<float>({Co, Ci, geo.k, geo.k}, seed + 1, 0.1)), {}};
      if (with_bias) w.bias = testing::round_to(dt, testing::randn<float>({Co}, seed + 2));
      const Conv2dW<double> wd{w.weight.cast<double>(), w.bias.cast<double>()};
      const Tensor<double> xdd = x.cast<double>();
      const ConvGeom rg{geo.g.stride, geo.g.pad_top, geo.g.pad_left, geo.g.pad_bottom, geo.g.pad_right, geo.g.up};
      const Tensor<double> truth = conv2d(xdd, wd, rg);
      const Tensor<float> peer = testing::round_to(dt, conv2d(x, w, rg));
      const auto ops = vae_module_ops(geo.k == 3 ? "decoder.conv_in" : "post_quant_conv", VaeConfig{}, x.shape);
      const std::string what = "cudnn conv " + geo.name + (with_bias ? " bias" : " no bias");
      const gpu::DeviceConv dc = gpu::upload_conv(w, dt, testing::rt());
      gpu::Im2colGeom g = geo.g;
      g.kh = g.kw = geo.k;
      if (g.up == 1) {  // cudnn_conv alone, into a guarded output
        const gpu::CudnnConvShape cs = gpu::cudnn_conv_shape(Ci, Co, B, H, W, g, with_bias);
        testing::Guarded out(dt, {B, cs.out_h(), cs.out_w(), Co});
        const uint64_t calls = gpu::cudnn_conv_calls();
        gpu::cudnn_conv(dt, xd.data(), dc.weight.data(), with_bias ? dc.bias.data() : nullptr, out.data(), cs,
                        testing::rt().stream());
        EXPECT_EQ(gpu::cudnn_conv_calls(), calls + 1) << what;
        const Tensor<float> peer_nhwc = gpu::nchw_to_nhwc(peer);
        testing::expect_t3_or_t4(what + " (cudnn_conv)", dt, out.host(), &peer_nhwc, gpu::nchw_to_nhwc(truth), ops);
        out.expect_guards_intact(what);
      }
      gpu::VaeCudaOptions o;
      o.dtype = dt;
      o.conv = gpu::VaeConvVersion::cudnn;
      ASSERT_EQ(gpu::resolve_vae_conv(o.conv, dt, Ci, Co, g), gpu::VaeConvVersion::cudnn) << what;
      gpu::VaeRun r(testing::rt(), o, 32);
      const uint64_t calls = gpu::cudnn_conv_calls();
      const gpu::DeviceTensor y = gpu::conv2d_nhwc(r, dc, xd, geo.g);
      EXPECT_EQ(gpu::cudnn_conv_calls(), calls + 1) << what << ": conv2d_nhwc did not go through cuDNN";
      const Tensor<float> got = testing::to_host(y.data(), dt, y.shape);
      const Tensor<float> peer_nhwc = gpu::nchw_to_nhwc(peer);
      testing::expect_t3_or_t4(what + " (conv2d_nhwc)", dt, got, &peer_nhwc, gpu::nchw_to_nhwc(truth), ops);
    }
  EXPECT_GE(gpu::cudnn_conv_cached_plans(), 6u) << "a plan per geometry and bias";
}

// ---- Modules and the whole model against the goldens --------------------------------------------

struct Row {
  std::string golden, row;
};
void PrintTo(const Row& r, std::ostream* os) { *os << r.golden << " " << r.row; }

std::vector<Row> rows() {
  std::vector<Row> out;
  for (const std::string c : {"vae_tiny", "vae_flux_like", "vae_real_blocks"}) {
    const VaeGolden& g = golden(c);
    for (const auto& n : g.outputs())
      if (n != "unscale" && vae_input_name(g, n)) out.push_back({c, n});
  }
  return out;
}

class VaeCudaGolden : public ::testing::TestWithParam<Row> {};

// The (dtype, convolution version) pairs a GPU VAE test runs: fp32 and bf16 through im2col, and bf16
// through cuDNN where cuDNN is available (its convs; the others stay im2col, resolve_vae_conv).
std::vector<std::pair<DType, gpu::VaeConvVersion>> run_kinds() {
  std::vector<std::pair<DType, gpu::VaeConvVersion>> k = {{DType::F32, gpu::VaeConvVersion::im2col},
                                                          {DType::BF16, gpu::VaeConvVersion::im2col}};
  std::string why;
  if (gpu::cudnn_available(&why)) k.push_back({DType::BF16, gpu::VaeConvVersion::cudnn});
  else std::printf("  no cuDNN convolution runs: %s\n", why.c_str());
  return k;
}
std::string kind_tag(DType dt, gpu::VaeConvVersion conv) {
  return testing::dtype_tag(dt) + " " + gpu::vae_conv_version_name(conv);
}

TEST_P(VaeCudaGolden, TeacherForcedModuleMatches) {
  ZIMAGE_REQUIRE_CUDA();
  const auto& [c, row] = GetParam();
  const VaeGolden& g = golden(c);
  const auto truth = run_vae_module<double>(g, row);
  ASSERT_TRUE(truth.has_value());
  const Shape in = g.shape(*vae_input_name(g, row));
  for (const auto& [dt, conv] : run_kinds()) {
    gpu::VaeCudaOptions opts;
    opts.dtype = dt;
    opts.conv = conv;
    const uint64_t cudnn_calls = gpu::cudnn_conv_calls();
    const size_t refused = gpu::cudnn_conv_refused_shapes();
    const auto got = gpu::run_vae_module_cuda(g, row, opts, testing::rt());
    ASSERT_TRUE(got.has_value());
    if (conv == gpu::VaeConvVersion::cudnn) {
      std::printf("  %s: %llu convolutions through cuDNN\n", row.c_str(),
                  (unsigned long long)(gpu::cudnn_conv_calls() - cudnn_calls));
      EXPECT_EQ(gpu::cudnn_conv_refused_shapes(), refused) << "a shape fell back to im2col (stderr says which)";
    }
    auto ops = vae_module_ops(row, g.config, in);
    // In bf16 the golden input and the weights are rounded to storage too (the fp64 truth uses
    // them unrounded): two more roundings than the policy's chain, which starts from its inputs.
    if (dt == DType::BF16) ops.insert(ops.begin(), {{"input to bf16", 1, 1, false}, {"weights to bf16", 1, 1, false}});
    const std::string what = c + " " + row + " " + kind_tag(dt, conv);
    testing::expect_tier(what + " vs fp64", dt, *got, *truth, ops);
    if (dt == DType::F32)
      testing::expect_within(what + " vs diffusers T2", numerics::compare(*got, g.get<double>(row)), vae_row_budget(g, row));
  }
}

INSTANTIATE_TEST_SUITE_P(Goldens, VaeCudaGolden, ::testing::ValuesIn(rows()),
                         [](const ::testing::TestParamInfo<Row>& i) {
                           return testing::test_name(i.param.golden + "__" + i.param.row);
                         });

// ---- The whole decoder at full size --------------------------------------------------------------

// AutoencoderKL.decode at the Flux config and 1024 x 1024 (golden/vae_flux_1024, kind vae_sampled:
// diffusers fp32 on the CPU, synthetic weights), the GPU's image on the golden's 64 sampled rows of
// [B * C * H, W]: fp32 within the whole-model T2 budget of the decode chain at 128 x 128 latents;
// bf16 within T4 of the chain plus the two roundings to storage (the golden's own fp32 error is
// far below the bf16 bound, as for the DiT in bf16).
TEST(VaeCudaFullSize, Decode1024MatchesDiffusersOnSampledRows) {
  ZIMAGE_REQUIRE_CUDA();
  const VaeGolden& g = golden("vae_flux_1024");
  const VaeSampledDecode d = vae_sampled_decode(g);
  for (const auto& [dt, conv] : run_kinds()) {
    gpu::VaeCudaOptions opts;
    opts.dtype = dt;
    opts.conv = conv;
    gpu::CudaVae vae(g.config, *g.params, VaePart::Decoder, opts);
    const uint64_t cudnn_calls = gpu::cudnn_conv_calls();
    const size_t refused = gpu::cudnn_conv_refused_shapes();
    const Tensor<float> image = vae.decode(d.z);
    ASSERT_EQ(image.shape, d.image);
    if (conv == gpu::VaeConvVersion::cudnn) {
      EXPECT_GT(gpu::cudnn_conv_calls(), cudnn_calls) << "cuDNN did not run";
      EXPECT_EQ(gpu::cudnn_conv_refused_shapes(), refused) << "a decoder shape fell back to im2col (stderr says which)";
    }
    const Tensor<float> got = numerics::rows_of(image, d.rows);  // the image as rows of its last dim
    const std::string what = "vae_flux_1024 decode 1024x1024 " + kind_tag(dt, conv);
    if (dt == DType::F32) {
      testing::expect_within(what + " vs diffusers T2", numerics::compare(got, d.sampled),
                             vae_module_budget(numerics::Tier::T2, "decode", g.config, d.z.shape));
    } else {
      auto ops = vae_module_ops("decode", g.config, d.z.shape);
      ops.insert(ops.begin(), {{"input to bf16", 1, 1, false}, {"weights to bf16", 1, 1, false}});
      testing::expect_tier(what + " vs diffusers fp32", dt, got, d.sampled, ops);
    }
  }
}

// ---- The command line ---------------------------------------------------------------------------

// `zimage vae decode --device cuda [--tiled]` against the CPU reference run of the same command, on a
// small synthetic VAE: T3 (float32) and T4 (bfloat16) of the decode chain against the float64 CPU run.
TEST(CudaVaeCli, DecodeMatchesTheCpuRun) {
  ZIMAGE_REQUIRE_CUDA();
  const auto dir = testing::scratch_dir("cuda_vae_cli");
  VaeConfig cfg = flux_vae_config();
  cfg.block_out_channels = {32, 64};
  cfg.down_block_types.assign(2, "DownEncoderBlock2D");
  cfg.up_block_types.assign(2, "UpDecoderBlock2D");
  cfg.layers_per_block = 1;
  cfg.norm_num_groups = 8;
  cfg.sample_size = {32};
  const auto config = dir / "config.json";
  std::ofstream(config) << cfg.to_json().dump(2);
  const std::string base = "vae decode --synthetic --config " + config.string() + " --random-latents 1,16,12,10 --seed 3";
  auto image = [&](const std::string& extra, const std::string& name) {
    const auto out = dir / (name + ".safetensors");
    const testing::CliResult r = testing::run_zimage(base + extra + " --out " + out.string());
    EXPECT_EQ(r.status, 0) << r.err;
    return SafetensorsFile::open(out.string())->get<double>("image");
  };
  const Tensor<double> truth = image(" --dtype float64", "cpu64");
  const auto ops = vae_module_ops("decode", cfg, Shape{1, 16, 12, 10});
  for (DType dt : {DType::F32, DType::BF16}) {
    const std::string tag = dt == DType::F32 ? "float32" : "bfloat16";
    const Tensor<double> got = image(" --device cuda --dtype " + tag, "cuda_" + tag);
    testing::expect_tier("zimage vae decode --device cuda --dtype " + tag, dt, got.cast<float>(), truth, ops);
  }
  // --tiled: 8 x 8 latent tiles (16 x 16 pixels) over 12 x 10 latents, so 2 x 2 tiles with blends in
  // both directions; each tile decoded on the GPU, blended on the host. The chain is the tiled
  // decode's at 8-latent tiles (a config whose default tile is 8).
  const std::string tiled = " --tiled --tile-latent 8 --tile-sample 16";
  const Tensor<double> tiled_truth = image(tiled + " --dtype float64", "cpu64_tiled");
  VaeConfig tile8 = cfg;
  tile8.sample_size = {16};
  ASSERT_EQ(tile8.tile_latent_min_size(), 8);
  const auto tiled_ops = vae_module_ops("tiled_decode", tile8, Shape{1, 16, 12, 10});
  for (DType dt : {DType::F32, DType::BF16}) {
    const std::string tag = dt == DType::F32 ? "float32" : "bfloat16";
    const Tensor<double> got = image(tiled + " --device cuda --dtype " + tag, "cuda_tiled_" + tag);
    testing::expect_tier("zimage vae decode --tiled --device cuda --dtype " + tag, dt, got.cast<float>(), tiled_truth,
                         tiled_ops);
  }
  std::filesystem::remove_all(dir);
}

// ---- Refusals before any device work ------------------------------------------------------------

TEST(VaeCudaConfig, Fp16RefusedBeforeTheDevice) {
  const VaeGolden& g = golden("vae_tiny");
  gpu::VaeCudaOptions fp16;
  fp16.dtype = DType::F16;
  try {
    gpu::CudaVae vae(g.config, *g.params, VaePart::Decoder, fp16);
    ADD_FAILURE() << "float16 must be refused";
  } catch (const Error& e) {
    std::printf("  %s\n", e.what());
    EXPECT_NE(std::string(e.what()).find("float16"), std::string::npos) << e.what();
  }
}

// The design of conv2d_nhwc on the host: the gather the kernel documents (host_im2col) times the
// permuted weight, plus the bias, equals the reference conv2d for every geometry the VAE uses (the
// upsampler's fused nearest x2 against upsample_2d, the downsampler's pad + stride 2 against
// downsample_2d). In double, so only the summation order differs.
TEST(VaeCudaConfig, Im2colTimesPermutedWeightIsTheReferenceConv) {
  const uint64_t seed = testing::test_seed();
  const Tensor<float> x = testing::randn<float>({2, 6, 9, 7}, seed);
  Conv2dW<float> w3{testing::randn<float>({5, 6, 3, 3}, seed + 1), testing::randn<float>({5}, seed + 2)};
  Conv2dW<float> w1{testing::randn<float>({5, 6, 1, 1}, seed + 3), testing::randn<float>({5}, seed + 4)};
  auto as_gemm = [&](const Conv2dW<float>& w, const gpu::Im2colGeom& g) {
    const int64_t Ho = g.out_h(9), Wo = g.out_w(7), Q = 2 * Ho * Wo, O = w.weight.dim(0);
    const Tensor<float> col = host_im2col(gpu::nchw_to_nhwc(x), g, 0, Q), p = gpu::permute_conv_weight(w.weight);
    const int64_t K = col.dim(1);
    Tensor<double> y({2, O, Ho, Wo});  // back to NCHW
    for (int64_t q = 0; q < Q; ++q)
      for (int64_t o = 0; o < O; ++o) {
        double acc = w.bias[o];
        for (int64_t k = 0; k < K; ++k) acc += double(col[q * K + k]) * double(p[o * K + k]);
        const int64_t b = q / (Ho * Wo), pix = q % (Ho * Wo);
        y[(b * O + o) * Ho * Wo + pix] = acc;
      }
    return y;
  };
  auto wd = [](const Conv2dW<float>& w) { return Conv2dW<double>{w.weight.cast<double>(), w.bias.cast<double>()}; };
  const Tensor<double> xd = x.cast<double>();
  // The T3 budget of a 3x3 conv over 6 channels (the policy's conv_in chain); the difference here
  // is one fp32 rounding of an fp64 result, a wrong column order or pad is O(1).
  const numerics::Budget exact_order =
      numerics::budget_for(numerics::Tier::T3, vae_module_ops("decoder.conv_in", VaeConfig{}, x.shape));
  const std::vector<std::pair<std::string, std::pair<Tensor<double>, Tensor<double>>>> cases = {
      {"same3x3", {as_gemm(w3, gpu::geom_same3x3()), conv2d(xd, wd(w3), ConvGeom::same3x3())}},
      {"upsample", {as_gemm(w3, gpu::geom_same3x3(2)), upsample_2d(xd, wd(w3))}},
      {"downsample", {as_gemm(w3, gpu::geom_downsample()), downsample_2d(xd, wd(w3))}},
      {"pointwise", {as_gemm(w1, gpu::geom_pointwise()), conv2d(xd, wd(w1), ConvGeom::pointwise())}}};
  for (const auto& [name, yr] : cases) {
    ASSERT_EQ(yr.first.shape, yr.second.shape) << name;
    testing::expect_within("conv as im2col x permuted weight, " + name,
                           numerics::compare(yr.first.cast<float>(), yr.second), exact_order);
  }
}

// The cuDNN version's decomposition of Upsample2D, on the host in double: the nearest x2 image
// (host_upsample, the upsample kernel's documented map) convolved with the same 3x3 pads is the
// reference upsample_2d, bit for bit; and the request cudnn_conv_shape makes for each gather has
// the gather's output size.
TEST(VaeCudaConfig, UpsampleThenConvIsTheReferenceUpsampler) {
  const uint64_t seed = testing::test_seed();
  const Tensor<float> x = testing::randn<float>({2, 6, 5, 4}, seed);
  const Conv2dW<double> w{testing::randn<float>({5, 6, 3, 3}, seed + 1).cast<double>(),
                          testing::randn<float>({5}, seed + 2).cast<double>()};
  // host_upsample works in NHWC: NCHW -> NHWC, upsample, back.
  const Tensor<float> up_nhwc = host_upsample(gpu::nchw_to_nhwc(x), 2);
  Tensor<double> up({2, 6, 10, 8});
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t c = 0; c < 6; ++c)
      for (int64_t p = 0; p < 80; ++p) up[(b * 6 + c) * 80 + p] = up_nhwc[(b * 80 + p) * 6 + c];
  testing::expect_exact("conv(nearest x2) vs upsample_2d",
                        numerics::compare(conv2d(up, w, ConvGeom::same3x3()), upsample_2d(x.cast<double>(), w)));
}

TEST(VaeCudaConfig, CudnnRequestHasTheGatherOutputSize) {
  for (auto [name, geom, k] : std::vector<std::tuple<std::string, gpu::Im2colGeom, int>>{
           {"same3x3", gpu::geom_same3x3(), 3},
           {"upsample2", gpu::geom_same3x3(2), 3},
           {"downsample", gpu::geom_downsample(), 3},
           {"pointwise", gpu::geom_pointwise(), 1}})
    for (int64_t n : {1, 2, 7, 8, 64, 127, 128}) {
      gpu::Im2colGeom g = geom;
      g.kh = g.kw = k;
      if (g.out_h(n) < 1) continue;
      const gpu::CudnnConvShape c = gpu::cudnn_conv_shape(16, 32, 2, n, n + 1, g, true);
      EXPECT_EQ(c.out_h(), g.out_h(n)) << name << " " << n;
      EXPECT_EQ(c.out_w(), g.out_w(n + 1)) << name << " " << n;
      EXPECT_EQ(c.H, n * g.up) << name;
      EXPECT_EQ(c.pad_bottom, g.pad_bottom) << name;
      EXPECT_EQ(c.pad_right, g.pad_right) << name;
    }
}

// The VAE convolution versions: names, parsing, ZIMAGE_VAE_CONV, and which convs cudnn takes (host:
// without a GPU every request resolves to im2col, with the reason).
TEST(VaeConvVersion, NamesEnvironmentAndResolution) {
  using gpu::VaeConvVersion;
  for (VaeConvVersion v : {VaeConvVersion::automatic, VaeConvVersion::im2col, VaeConvVersion::cudnn})
    EXPECT_EQ(gpu::parse_vae_conv_version(gpu::vae_conv_version_name(v)), v);
  try {
    gpu::parse_vae_conv_version("winograd", "ZIMAGE_VAE_CONV");
    ADD_FAILURE() << "an unknown version must be refused";
  } catch (const Error& e) {
    std::printf("  %s\n", e.what());
    EXPECT_EQ(std::string(e.what()), "ZIMAGE_VAE_CONV must be auto, im2col or cudnn, not 'winograd'");
  }
  gpu::Im2colGeom g3 = gpu::geom_same3x3();
  std::string why;
  EXPECT_EQ(gpu::resolve_vae_conv(VaeConvVersion::im2col, DType::BF16, 512, 512, g3), VaeConvVersion::im2col);
  EXPECT_EQ(gpu::resolve_vae_conv(VaeConvVersion::cudnn, DType::F32, 512, 512, g3, &why), VaeConvVersion::im2col);
  EXPECT_NE(why.find("bfloat16 only"), std::string::npos) << why;
  EXPECT_EQ(gpu::resolve_vae_conv(VaeConvVersion::cudnn, DType::BF16, 512, 3, g3, &why), VaeConvVersion::im2col);
  EXPECT_NE(why.find("multiples of 8"), std::string::npos) << why;
  gpu::Im2colGeom down = gpu::geom_downsample();
  EXPECT_EQ(gpu::resolve_vae_conv(VaeConvVersion::cudnn, DType::BF16, 512, 512, down, &why), VaeConvVersion::im2col);
  EXPECT_NE(why.find("equal pads"), std::string::npos) << why;
  why.clear();
  const bool cudnn_here = gpu::cudnn_available(&why);
  const VaeConvVersion big = gpu::resolve_vae_conv(VaeConvVersion::cudnn, DType::BF16, 512, 512, g3);
  EXPECT_EQ(big, cudnn_here ? VaeConvVersion::cudnn : VaeConvVersion::im2col) << why;
  std::printf("  cudnn for a 512 -> 512 bf16 conv here: %s%s\n", gpu::vae_conv_version_name(big),
              cudnn_here ? "" : (" (" + why + ")").c_str());
  // automatic: ZIMAGE_VAE_CONV, else im2col.
  const char* old_env = std::getenv("ZIMAGE_VAE_CONV");
  const std::string saved = old_env ? old_env : "";
  ::unsetenv("ZIMAGE_VAE_CONV");
  EXPECT_EQ(gpu::requested_vae_conv(VaeConvVersion::automatic), VaeConvVersion::im2col);
  EXPECT_EQ(gpu::requested_vae_conv(VaeConvVersion::cudnn), VaeConvVersion::cudnn);
  EXPECT_EQ(gpu::resolve_vae_conv(VaeConvVersion::automatic, DType::BF16, 512, 512, g3), VaeConvVersion::im2col);
  ::setenv("ZIMAGE_VAE_CONV", "cudnn", 1);
  EXPECT_EQ(gpu::resolve_vae_conv(VaeConvVersion::automatic, DType::BF16, 512, 512, g3), big);
  ::setenv("ZIMAGE_VAE_CONV", "bogus", 1);
  EXPECT_THROW(gpu::resolve_vae_conv(VaeConvVersion::automatic, DType::BF16, 512, 512, g3), Error);
  EXPECT_EQ(gpu::requested_vae_conv(VaeConvVersion::im2col), VaeConvVersion::im2col) << "a given version ignores it";
  if (old_env) ::setenv("ZIMAGE_VAE_CONV", saved.c_str(), 1);
  else ::unsetenv("ZIMAGE_VAE_CONV");
}

// cuDNN convolution requests on the host: plan keys tell every field apart, the refusals are one line,
// and without cuDNN or a GPU a call throws one line naming cuDNN before touching memory.
TEST(CudnnConv, PlanKeysRefusalsAndUnavailability) {
  gpu::CudnnConvShape base;
  base.B = 1, base.H = 128, base.W = 96, base.cin = 512, base.cout = 256;
  const std::string k0 = gpu::cudnn_conv_plan_key(DType::BF16, base);
  std::printf("  plan key: %s\n  text: %s\n", k0.c_str(), base.text().c_str());
  std::vector<gpu::CudnnConvShape> variants(13, base);
  variants[0].B = 2, variants[1].H = 127, variants[2].W = 97, variants[3].cin = 256, variants[4].cout = 512;
  variants[5].kh = variants[5].kw = 1, variants[6].stride = 2, variants[7].pad_top = 0, variants[8].pad_left = 0;
  variants[9].pad_bottom = 0, variants[10].pad_right = 0, variants[11].bias = false, variants[12].kw = 1;
  std::set<std::string> keys{k0, gpu::cudnn_conv_plan_key(DType::F32, base)};
  for (const auto& v : variants) keys.insert(gpu::cudnn_conv_plan_key(DType::BF16, v));
  EXPECT_EQ(keys.size(), variants.size() + 2) << "a plan key that does not tell two requests apart";
  std::string why;
  EXPECT_TRUE(gpu::cudnn_conv_supports(DType::BF16, base, &why)) << why;
  EXPECT_FALSE(gpu::cudnn_conv_supports(DType::F32, base, &why));
  EXPECT_NE(why.find("bfloat16 only"), std::string::npos) << why;
  gpu::CudnnConvShape odd = base;
  odd.cin = 12;
  EXPECT_FALSE(gpu::cudnn_conv_supports(DType::BF16, odd, &why));
  EXPECT_NE(why.find("multiples of 8"), std::string::npos) << why;
  gpu::CudnnConvShape uneven = base;
  uneven.pad_top = uneven.pad_left = 0;
  EXPECT_FALSE(gpu::cudnn_conv_supports(DType::BF16, uneven, &why));
  EXPECT_NE(why.find("equal pads"), std::string::npos) << why;
  gpu::CudnnConvShape tiny = base;
  tiny.H = 1, tiny.pad_top = tiny.pad_bottom = 0;
  EXPECT_FALSE(gpu::cudnn_conv_supports(DType::BF16, tiny, &why));
  EXPECT_NE(why.find("smaller than the kernel"), std::string::npos) << why;
  if (gpu::cudnn_available(&why)) return;  // the unavailable path needs a machine without cuDNN or a GPU
  alignas(16) static unsigned char fake[64];
  try {
    gpu::cudnn_conv(DType::BF16, fake, fake, fake, fake, base, nullptr);
    ADD_FAILURE() << "cudnn_conv without cuDNN must throw";
  } catch (const Error& e) {
    std::printf("  %s\n", e.what());
    EXPECT_EQ(std::string(e.what()).rfind("cuDNN conv: ", 0), 0u) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
}

#ifdef ZIMAGE_WITH_CUDNN
// The plan cache's refusals (cudnn_plan.h BasicPlanCache, here over int plans, host only): a build
// that throws refuses its (device, key) with the message and is never tried again; other keys and
// devices are not affected; `first` tells the call that found the answer. conv2d_nhwc relies on it
// to run a shape without a plan on im2col and say so once.
TEST(CudnnConv, PlanCacheRemembersARefusalAndDoesNotBuildAgain) {
  gpu::cudnn::BasicPlanCache<int> cache;
  int builds = 0;
  auto fails = [&]() -> std::unique_ptr<int> {
    ++builds;
    throw Error("cuDNN conv: no engine config finalized (B 1, H 8)");
  };
  auto works = [&] {
    ++builds;
    return std::make_unique<int>(7);
  };
  std::string why;
  bool first = false;
  EXPECT_EQ(cache.try_get(0, "a", fails, &why, &first), nullptr);
  EXPECT_TRUE(first);
  EXPECT_EQ(why, "cuDNN conv: no engine config finalized (B 1, H 8)");
  why.clear();
  EXPECT_EQ(cache.try_get(0, "a", works, &why, &first), nullptr) << "a refused key must stay refused";
  EXPECT_FALSE(first);
  EXPECT_EQ(why, "cuDNN conv: no engine config finalized (B 1, H 8)");
  EXPECT_EQ(builds, 1) << "a refused key was built again";
  const int* p = cache.try_get(1, "a", works, &why, &first);  // another device
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 7);
  EXPECT_TRUE(first);
  EXPECT_EQ(cache.try_get(1, "a", fails, &why, &first), p) << "a built key keeps its plan";
  EXPECT_FALSE(first);
  EXPECT_EQ(builds, 2);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.refused(), 1u);
  EXPECT_THROW(cache.get(0, "b", fails), Error) << "get throws what the build throws";
  EXPECT_EQ(cache.size(), 1u) << "a failed get caches nothing";
}
#endif

// The gathers' output sizes equal the reference convolution's (reference/vae/layers.h ConvGeom).
TEST(VaeCudaConfig, GatherSizesMatchTheReferenceGeometry) {
  for (int64_t n : {1, 2, 7, 8, 64, 127, 128}) {
    EXPECT_EQ(gpu::geom_same3x3().out_h(n), n);
    EXPECT_EQ(gpu::geom_same3x3(2).out_h(n), 2 * n);
    EXPECT_EQ(gpu::geom_pointwise().out_w(n), n);
    if (n >= 2) {
      EXPECT_EQ(gpu::geom_downsample().out_h(n), (n - 2) / 2 + 1) << n;
    }
  }
}

}  // namespace
}  // namespace zimage

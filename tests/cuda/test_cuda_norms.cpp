// Row kernels against their reference twins: rms_norm_modulate (rms_norm + mul_rows),
// gated_residual (rms_norm + add_gated), gated_residual_rms_norm (the two fused: bitwise the pair of
// kernels, and T3 against the fp64 chain in fp32), final_layer_norm (layer_norm + 1 + scale), swiglu and
// silu (feed_forward's gate, common.h silu), timestep_embedding. fp32: T3 against the fp64
// reference; bf16: T4 (absolute bound + peer rule against a host emulation of the torch bf16 op
// sequence). Every output has guard bands. Real shapes (C 3840 with 4096 + 32 / 512 tokens, F 10240)
// and ragged ones (97, 1025 tokens; B 2 with a small width).
#include <cstring>
#include <functional>

#include "cuda_support.h"
#include "dit/final_layer.h"
#include "dit/timestep_embedder.h"
#include "dit/transformer_block.h"
#include "kernels/final_layer_norm.h"
#include "kernels/gated_residual.h"
#include "kernels/residual_add.h"
#include "kernels/rms_norm_modulate.h"
#include "kernels/swiglu.h"
#include "kernels/timestep_embedding.h"

namespace zimage {
namespace {

using testing::DType;

struct RowCase {
  DType dt;
  int64_t B, L, C;
};
std::string row_case_name(const ::testing::TestParamInfo<RowCase>& i) {
  return testing::dtype_tag(i.param.dt) + "_B" + std::to_string(i.param.B) + "_L" + std::to_string(i.param.L) + "_C" +
         std::to_string(i.param.C);
}
// C 3840, 2560, 64 run the v2 row kernels (16-byte vectors); C 1004 runs v1 in bf16 (no whole
// number of 8-element vectors) and v2 in fp32; C 102 runs v1 in both; C 8192 is the width limit
// (1024 bf16 vectors: v2; 2048 fp32 vectors: v1). v2 blocks take several rows on long sequences
// (row_kernel_rows_per_block, from the kernel's occupancy): on an H100 or H200 (132 SMs) B 2 x
// L 2113 x C 3840 gives 8 rows a block in both dtypes (at most 4 resident blocks an SM), so item 0
// ends inside a block (2113 = 8 x 264 + 1) and its per-item factors change mid-block.
std::vector<RowCase> row_cases() {
  std::vector<RowCase> out;
  for (DType dt : {DType::F32, DType::BF16})
    for (auto [B, L, C] : std::vector<std::array<int64_t, 3>>{{1, 97, 3840},   {1, 1025, 3840}, {1, 4096 + 32, 3840},
                                                             {1, 4096 + 512, 3840}, {2, 97, 64}, {2, 1025, 2560},
                                                             {2, 33, 1004},   {1, 65, 102},   {1, 40, 8192},
                                                             {2, 2113, 3840}})
      out.push_back({dt, B, L, C});
  return out;
}

// Elementwise f over a float tensor, rounded to dt after each application (the torch op's output).
template <class Fn>
Tensor<float> map_round(DType dt, Tensor<float> t, Fn fn) {
  for (auto& v : t.data) v = fn(v);
  return testing::round_to(dt, t);
}

class RowKernelCase : public ::testing::TestWithParam<RowCase> {
 protected:
  void SetUp() override {
    ZIMAGE_REQUIRE_CUDA();
    const auto [dt_, B_, L_, C_] = GetParam();
    dt = dt_, B = B_, L = L_, C = C_;
    const uint64_t seed = testing::test_seed();
    x = testing::round_to(dt, testing::randn<float>({B, L, C}, seed));
    y = testing::round_to(dt, testing::randn<float>({B, L, C}, seed + 1, 3.0));
    w = testing::round_to(dt, map_round(DType::F32, testing::randn<float>({C}, seed + 2, 0.2), [](float v) { return 1 + v; }));
    mod = testing::round_to(dt, testing::randn<float>({B, 4 * C}, seed + 3, 0.5));
    name = testing::dtype_tag(dt) + "_B" + std::to_string(B) + "_L" + std::to_string(L) + "_C" + std::to_string(C);
  }
  // Chunk j of mod as a [B, C] tensor.
  Tensor<float> chunk(int j) const {
    Tensor<float> c({B, C});
    for (int64_t b = 0; b < B; ++b)
      for (int64_t k = 0; k < C; ++k) c[b * C + k] = mod[b * 4 * C + j * C + k];
    return c;
  }
  DType dt = DType::F32;
  int64_t B = 0, L = 0, C = 0;
  Tensor<float> x, y, w, mod;
  std::string name;
};

// One suite per kernel, on the same row cases.
class RmsNormModulate : public RowKernelCase {};
class GatedResidual : public RowKernelCase {};
class FinalLayerNorm : public RowKernelCase {};
class GatedResidualRmsNorm : public RowKernelCase {};

TEST_P(RmsNormModulate, AgainstReference) {
  const auto xd = testing::to_device(x, dt), wd = testing::to_device(w, dt), md = testing::to_device(mod, dt);
  for (bool modulated : {true, false}) {
    testing::Guarded out(dt, {B, L, C});
    // scale_mlp: chunk 2 of [B, 4C], read with row stride 4C
    const gpu::ConstDevRows scale = modulated ? gpu::ConstDevRows(md.data(), 4 * C, dt).from_col(2 * C) : gpu::ConstDevRows();
    gpu::rms_norm_modulate({xd.data(), C, dt}, wd.data(), scale, {B * L, L, C}, kDitNormEps, {out.data(), C, dt},
                           testing::rt().stream());
    const Tensor<float> got = out.host();
    Tensor<double> ref = rms_norm(x.cast<double>(), w.cast<double>(), kDitNormEps);
    Tensor<float> peer = testing::round_to(dt, rms_norm(x, w, kDitNormEps));
    std::vector<numerics::Op> ops{testing::op_rms(double(C))};
    if (modulated) {
      Tensor<double> s = chunk(2).cast<double>();
      for (auto& v : s.data) v += 1;
      mul_rows(ref, s);
      const Tensor<float> sf = map_round(dt, chunk(2), [](float v) { return 1 + v; });
      mul_rows(peer, sf);
      peer = testing::round_to(dt, peer);
      ops.push_back(testing::op_elem("scale"));
    }
    const std::string what = std::string(modulated ? "rms_norm_modulate " : "rms_norm ") + name;
    testing::expect_t3_or_t4(what, dt, got, &peer, ref, ops);
    out.expect_guards_intact(what);
  }
}

TEST_P(GatedResidual, AgainstReference) {
  const auto yd = testing::to_device(y, dt), wd = testing::to_device(w, dt), md = testing::to_device(mod, dt);
  for (bool gated : {true, false}) {
    testing::Guarded xo(dt, {B, L, C});
    testing::upload_into_guarded(x, dt, xo);
    // gate_mlp: chunk 3 of [B, 4C], read with row stride 4C
    const gpu::ConstDevRows gate = gated ? gpu::ConstDevRows(md.data(), 4 * C, dt).from_col(3 * C) : gpu::ConstDevRows();
    gpu::gated_residual({xo.data(), C, dt}, {yd.data(), C, dt}, wd.data(), gate, {B * L, L, C}, kDitNormEps,
                        testing::rt().stream());
    const Tensor<float> got = xo.host();
    Tensor<double> ref = x.cast<double>();
    Tensor<double> g = chunk(3).cast<double>();
    for (auto& v : g.data) v = std::tanh(v);
    add_gated(ref, gated ? &g : nullptr, rms_norm(y.cast<double>(), w.cast<double>(), kDitNormEps));
    Tensor<float> peer = x;
    const Tensor<float> gf = map_round(dt, chunk(3), [](float v) { return std::tanh(v); });
    Tensor<float> n = testing::round_to(dt, rms_norm(y, w, kDitNormEps));
    if (gated) {
      mul_rows(n, gf);
      n = testing::round_to(dt, n);
    }
    add_gated(peer, static_cast<const Tensor<float>*>(nullptr), n);
    peer = testing::round_to(dt, peer);
    std::vector<numerics::Op> ops{testing::op_rms(double(C)), testing::op_elem("tanh", true),
                                  testing::op_elem("gated residual")};
    const std::string what = std::string(gated ? "gated_residual " : "residual ") + name;
    testing::expect_t3_or_t4(what, dt, got, &peer, ref, ops);
    xo.expect_guards_intact(what);
  }
}

// The fused kernel against the two kernels it fuses (gated_residual, then rms_norm_modulate on the
// updated x): x and h bitwise equal in both dtypes (where v2 does not fit, the fused call is those
// two calls); in fp32 also T3 of x and h against the fp64 chain add_gated, rms_norm, mul_rows.
// The next norm's eps differs from the residual's, so that each norm is seen to use its own.
constexpr double kNextNormEps = 1e-6;

TEST_P(GatedResidualRmsNorm, AgainstTheTwoKernelsAndReference) {
  const auto yd = testing::to_device(y, dt), wd = testing::to_device(w, dt), md = testing::to_device(mod, dt);
  const Tensor<float> w_next =
      testing::round_to(dt, map_round(DType::F32, testing::randn<float>({C}, testing::test_seed() + 4, 0.2),
                                      [](float v) { return 1 - v; }));
  const auto wnd = testing::to_device(w_next, dt);
  for (bool modulated : {true, false}) {
    const gpu::ConstDevRows mods(md.data(), 4 * C, dt);
    const gpu::ConstDevRows gate = modulated ? mods.from_col(3 * C) : gpu::ConstDevRows();
    const gpu::ConstDevRows scale = modulated ? mods.from_col(0) : gpu::ConstDevRows();
    const gpu::RowShape shape{B * L, L, C};
    testing::Guarded x_fused(dt, {B, L, C}), h_fused(dt, {B, L, C}), x_pair(dt, {B, L, C}), h_pair(dt, {B, L, C});
    testing::upload_into_guarded(x, dt, x_fused);
    testing::upload_into_guarded(x, dt, x_pair);
    const cudaStream_t s = testing::rt().stream();
    gpu::gated_residual_rms_norm({x_fused.data(), C, dt}, {yd.data(), C, dt}, {wd.data(), gate, kDitNormEps},
                                 {wnd.data(), scale, kNextNormEps}, {h_fused.data(), C, dt}, shape, s);
    gpu::gated_residual({x_pair.data(), C, dt}, {yd.data(), C, dt}, wd.data(), gate, shape, kDitNormEps, s);
    gpu::rms_norm_modulate({x_pair.data(), C, dt}, wnd.data(), scale, shape, kNextNormEps, {h_pair.data(), C, dt}, s);
    const std::string what = std::string(modulated ? "gated_residual_rms_norm " : "residual_rms_norm ") + name;
    const Tensor<float> xf = x_fused.host(), hf = h_fused.host(), xp = x_pair.host(), hp = h_pair.host();
    int64_t x_diff = 0, h_diff = 0;
    for (int64_t i = 0; i < xf.numel(); ++i) {
      x_diff += std::memcmp(&xf[i], &xp[i], sizeof(float)) != 0;
      h_diff += std::memcmp(&hf[i], &hp[i], sizeof(float)) != 0;
    }
    std::printf("  %s: against gated_residual + rms_norm_modulate: %lld of %lld x values and %lld h values differ\n",
                what.c_str(), (long long)x_diff, (long long)xf.numel(), (long long)h_diff);
    EXPECT_EQ(x_diff, 0) << what << ": x is not bitwise the two kernels' x";
    EXPECT_EQ(h_diff, 0) << what << ": h is not bitwise the two kernels' h";
    if (dt == DType::F32) {
      Tensor<double> x_ref = x.cast<double>();
      Tensor<double> g = chunk(3).cast<double>();
      for (auto& v : g.data) v = std::tanh(v);
      add_gated(x_ref, modulated ? &g : nullptr, rms_norm(y.cast<double>(), w.cast<double>(), kDitNormEps));
      Tensor<double> h_ref = rms_norm(x_ref, w_next.cast<double>(), kNextNormEps);
      if (modulated) {
        Tensor<double> s1 = chunk(0).cast<double>();
        for (auto& v : s1.data) v += 1;
        mul_rows(h_ref, s1);
      }
      const std::vector<numerics::Op> x_ops{testing::op_rms(double(C)), testing::op_elem("tanh", true),
                                            testing::op_elem("gated residual")};
      std::vector<numerics::Op> h_ops = x_ops;
      h_ops.push_back(testing::op_rms(double(C)));
      h_ops.push_back(testing::op_elem("scale"));
      testing::expect_tier(what + " x", dt, xf, x_ref, x_ops);
      testing::expect_tier(what + " h", dt, hf, h_ref, h_ops);
    }
    x_fused.expect_guards_intact(what + " x");
    h_fused.expect_guards_intact(what + " h");
  }
}

TEST_P(FinalLayerNorm, AgainstReference) {
  const auto xd = testing::to_device(x, dt);
  const Tensor<float> s = chunk(1);
  const auto sd = testing::to_device(s, dt);
  testing::Guarded out(dt, {B, L, C});
  gpu::final_layer_norm({xd.data(), C, dt}, {sd.data(), C, dt}, {B * L, L, C}, kFinalNormEps, {out.data(), C, dt},
                        testing::rt().stream());
  Tensor<double> ref = layer_norm(x.cast<double>(), kFinalNormEps);
  Tensor<double> s1 = s.cast<double>();
  for (auto& v : s1.data) v += 1;
  mul_rows(ref, s1);
  Tensor<float> peer = testing::round_to(dt, layer_norm(x, kFinalNormEps));
  mul_rows(peer, map_round(dt, s, [](float v) { return 1 + v; }));
  peer = testing::round_to(dt, peer);
  const std::string what = "final_layer_norm " + name;
  testing::expect_t3_or_t4(what, dt, out.host(), &peer, ref,
                           {{"layer_norm", 3, 2.0 * double(C), true}, testing::op_elem("scale")});
  out.expect_guards_intact(what);
}

INSTANTIATE_TEST_SUITE_P(Cuda, RmsNormModulate, ::testing::ValuesIn(row_cases()), row_case_name);
INSTANTIATE_TEST_SUITE_P(Cuda, GatedResidual, ::testing::ValuesIn(row_cases()), row_case_name);
INSTANTIATE_TEST_SUITE_P(Cuda, FinalLayerNorm, ::testing::ValuesIn(row_cases()), row_case_name);
INSTANTIATE_TEST_SUITE_P(Cuda, GatedResidualRmsNorm, ::testing::ValuesIn(row_cases()), row_case_name);

// ---------------------------------------------------------------- SwiGLU and SiLU

// F 10240 runs swiglu v2 (16-byte vectors), F 1001 the v1 fallback (a row is no whole number of
// vectors).
class SwiGlu : public ::testing::TestWithParam<std::tuple<DType, int64_t, int64_t>> {};

TEST_P(SwiGlu, AgainstFeedForwardGate) {
  ZIMAGE_REQUIRE_CUDA();
  const auto [dt, N, F] = GetParam();
  const Tensor<float> h13 = testing::round_to(dt, testing::randn<float>({N, 2 * F}, testing::test_seed(), 4.0));
  const auto hd = testing::to_device(h13, dt);
  testing::Guarded out(dt, {N, F});
  gpu::swiglu(dt, hd.data(), N, F, out.data(), testing::rt().stream());
  Tensor<double> ref({N, F});
  Tensor<float> peer({N, F});
  Tensor<float> a({N, F}), b({N, F});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t f = 0; f < F; ++f) {
      const float h1 = h13[n * 2 * F + f], h3 = h13[n * 2 * F + F + f];
      ref[n * F + f] = silu(double(h1)) * double(h3);
      a[n * F + f] = silu(h1);
      b[n * F + f] = h3;
    }
  a = testing::round_to(dt, a);
  for (int64_t i = 0; i < peer.numel(); ++i) peer[i] = a[i] * b[i];
  peer = testing::round_to(dt, peer);
  const std::string what = "swiglu " + testing::dtype_tag(dt) + "_N" + std::to_string(N) + "_F" + std::to_string(F);
  testing::expect_t3_or_t4(what, dt, out.host(), &peer, ref, {{"silu", 2, 1, true}, testing::op_elem("gate mul")});
  out.expect_guards_intact(what);

  // silu alone (t_embedder.mlp.1, the final layer's adaLN SiLU), in place
  const int64_t n = N * F;
  const Tensor<float> v = testing::round_to(dt, testing::randn<float>({n}, testing::test_seed() + 7, 4.0));
  testing::Guarded io(dt, {n});
  testing::upload_into_guarded(v, dt, io);
  gpu::silu(dt, io.data(), io.data(), n, testing::rt().stream());
  Tensor<double> sref({n});
  Tensor<float> speer({n});
  for (int64_t i = 0; i < n; ++i) sref[i] = silu(double(v[i])), speer[i] = silu(v[i]);
  testing::expect_t3_or_t4("silu " + testing::dtype_tag(dt), dt, io.host(), &(speer = testing::round_to(dt, speer)),
                           sref, {{"silu", 2, 1, true}});
  io.expect_guards_intact("silu");
}

// residual_add: x += y, the fp32 sum rounded once to the storage dtype, which is the reference's
// `h[i] += x[i]` in fp32 and torch's bf16 add (an fp32 sum rounded once). n not a multiple of any
// vector width, in place, guards around x.
TEST(ResidualAdd, IsTheFp32SumRoundedOnce_n100003) {
  ZIMAGE_REQUIRE_CUDA();
  const int64_t n = 100003;
  for (DType dt : {DType::F32, DType::BF16}) {
    const Tensor<float> x = testing::round_to(dt, testing::randn<float>({n}, testing::test_seed() + 11, 3.0));
    const Tensor<float> y = testing::round_to(dt, testing::randn<float>({n}, testing::test_seed() + 12, 3.0));
    testing::Guarded xd(dt, {n});
    testing::upload_into_guarded(x, dt, xd);
    const auto yd = testing::to_device(y, dt);
    gpu::residual_add(dt, xd.data(), yd.data(), n, testing::rt().stream());
    Tensor<float> want({n});
    for (int64_t i = 0; i < n; ++i) want[i] = x[i] + y[i];
    want = testing::round_to(dt, want);
    const std::string what = "residual_add " + testing::dtype_tag(dt);
    testing::expect_exact(what, numerics::compare(xd.host(), want.cast<double>()));
    xd.expect_guards_intact(what);
  }
}

// More rows than the grid's y dimension holds (65535): swiglu v2's row loop runs twice.
TEST(CudaSwiGluRows, MoreRowsThanGridY_N70001_F64_bf16) {
  ZIMAGE_REQUIRE_CUDA();
  const DType dt = DType::BF16;
  const int64_t N = 70001, F = 64;
  const Tensor<float> h13 = testing::round_to(dt, testing::randn<float>({N, 2 * F}, testing::test_seed(), 4.0));
  const auto hd = testing::to_device(h13, dt);
  testing::Guarded out(dt, {N, F});
  gpu::swiglu(dt, hd.data(), N, F, out.data(), testing::rt().stream());
  Tensor<double> ref({N, F});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t f = 0; f < F; ++f)
      ref[n * F + f] = silu(double(h13[n * 2 * F + f])) * double(h13[n * 2 * F + F + f]);
  testing::expect_tier("swiglu bf16_N70001_F64", dt, out.host(), ref, {{"silu", 2, 1, true}, testing::op_elem("gate mul")});
  out.expect_guards_intact("swiglu bf16_N70001_F64");
}

INSTANTIATE_TEST_SUITE_P(Cuda, SwiGlu,
                         ::testing::Combine(::testing::Values(DType::F32, DType::BF16),
                                            ::testing::Values(int64_t{97}, int64_t{1025}, int64_t{4096 + 32}),
                                            ::testing::Values(int64_t{10240}, int64_t{1001})),
                         [](const auto& i) {
                           return testing::dtype_tag(std::get<0>(i.param)) + "_N" + std::to_string(std::get<1>(i.param)) +
                                  "_F" + std::to_string(std::get<2>(i.param));
                         });

// Host only (in CI): the v2 row kernels' rows per block, the rows over one full wave of resident
// blocks (sms x blocks per SM), from 1 to kMaxRowsPerBlock.
TEST(RowKernelRowsPerBlock, RowsOverOneWaveBetweenOneAndTheMaximum) {
  EXPECT_EQ(gpu::row_kernel_rows_per_block(4224, 2, 132), 8);  // the step: 264 resident blocks, 16 clamped
  EXPECT_EQ(gpu::row_kernel_rows_per_block(2050, 4, 132), 3);  // 528 resident blocks
  EXPECT_EQ(gpu::row_kernel_rows_per_block(2050, 6, 132), 2);  // 792
  EXPECT_EQ(gpu::row_kernel_rows_per_block(1055, 4, 132), 1);  // under two waves: one row a block
  EXPECT_EQ(gpu::row_kernel_rows_per_block(1056, 4, 132), 2);
  EXPECT_EQ(gpu::row_kernel_rows_per_block(128, 2, 132), 1);  // a caption
  EXPECT_EQ(gpu::row_kernel_rows_per_block(0, 2, 132), 1);
  EXPECT_EQ(gpu::row_kernel_rows_per_block(1 << 20, 1, 108), gpu::kMaxRowsPerBlock);
  EXPECT_EQ(gpu::row_kernel_rows_per_block(1500, 2, 108), 6);  // 1500 / 216
  EXPECT_THROW(gpu::row_kernel_rows_per_block(10, 0, 132), Error);
  EXPECT_THROW(gpu::row_kernel_rows_per_block(10, 2, 0), Error);
  EXPECT_THROW(gpu::row_kernel_rows_per_block(-1, 2, 132), Error);
}

// Host-side, no device: rows_overlap's byte spans, and gated_residual_rms_norm refusing an h that
// overlaps x, wholly or in part, before anything is launched (addresses are compared, never read).
TEST(RowsOverlap, SpansFromTheFirstValueToTheLastRowsLastValue) {
  alignas(16) static char pool[4096];
  const auto at = [](size_t bytes) { return static_cast<void*>(pool + bytes); };
  const gpu::RowShape three_rows{3, 3, 8};  // 3 rows of 8 fp32 values, ld 16: bytes [0, 160)
  const gpu::ConstDevRows x{at(0), 16, DType::F32};
  EXPECT_TRUE(gpu::rows_overlap(x, x, three_rows));
  EXPECT_TRUE(gpu::rows_overlap(x, {at(156), 8, DType::F32}, three_rows));   // starts on x's last value
  EXPECT_FALSE(gpu::rows_overlap(x, {at(160), 8, DType::F32}, three_rows));  // right after it
  EXPECT_TRUE(gpu::rows_overlap(x, {at(32), 16, DType::F32}, three_rows));   // columns 8-15: between x's rows
  EXPECT_FALSE(gpu::rows_overlap({at(400), 16, DType::F32}, x, three_rows));  // wholly after: symmetric
  EXPECT_TRUE(gpu::rows_overlap({at(0), 16, DType::BF16}, {at(76), 8, DType::BF16}, three_rows));  // 2-byte values
  EXPECT_FALSE(gpu::rows_overlap({at(0), 16, DType::BF16}, {at(80), 8, DType::BF16}, three_rows));
  EXPECT_FALSE(gpu::rows_overlap(x, {nullptr, 16, DType::F32}, three_rows));  // absent operand
  EXPECT_FALSE(gpu::rows_overlap(x, x, {0, 1, 8}));                           // no rows
}

// The row kernels' shape check runs on the host before anything is queued (in CI without a GPU):
// a row operand narrower than its columns, rows not in whole items, rows past the 32-bit row
// index, and the fused kernel's h overlapping y are each one line naming the kernel.
TEST(RowKernelShapes, NarrowRowsBadItemsAndOverlapsAreRefusedOnTheHost) {
  alignas(16) static char pool[4096];
  const gpu::RowShape shape{3, 3, 8};
  const gpu::ConstDevRows x{pool, 8, DType::F32};
  const auto expect_refused = [](const std::function<void()>& call, const std::string& want) {
    try {
      call();
      ADD_FAILURE() << "accepted; expected: " << want;
    } catch (const Error& e) {
      std::printf("  refused: %s\n", e.what());
      EXPECT_EQ(std::string(e.what()).rfind(want, 0), 0u) << e.what();
    }
  };
  expect_refused(
      [&] {
        gpu::rms_norm_modulate(x, pool + 3072, {}, shape, 1e-6, {pool + 1024, 4, DType::F32}, nullptr);
      },
      "rms_norm_modulate: y's leading dimension 4 is less than its 8 columns");
  expect_refused(
      [&] {
        gpu::gated_residual({pool, 8, DType::F32}, {pool + 1024, 8, DType::F32}, pool + 3072, {}, {5, 3, 8}, 1e-6,
                            nullptr);
      },
      "gated_residual: bad shape: 5 rows in items of 3, 8 columns");
  expect_refused(
      [&] {
        gpu::gated_residual({pool, 8, DType::F32}, {pool + 1024, 8, DType::F32}, pool + 3072, {},
                            {int64_t(0x7fffffff), 1, 8}, 1e-6, nullptr);
      },
      "gated_residual: bad shape");
  expect_refused(
      [&] {
        gpu::gated_residual_rms_norm({pool, 8, DType::F32}, {pool + 1024, 8, DType::F32}, {pool + 3072, {}, 1e-6},
                                     {pool + 3200, {}, 1e-6}, {pool + 1056, 8, DType::F32}, shape, nullptr);
      },
      "gated_residual_rms_norm: h overlaps y");
}

TEST(RowsOverlap, GatedResidualRmsNormRefusesAnHThatOverlapsX) {
  alignas(16) static char pool[4096];
  const gpu::RowShape shape{3, 3, 8};
  const gpu::DevRows x{pool, 16, DType::F32};
  const gpu::ConstDevRows y{pool + 2048, 8, DType::F32};
  for (const size_t h_at : {size_t(0), size_t(64), size_t(156)}) {
    try {
      gpu::gated_residual_rms_norm(x, y, {pool + 3072, {}, 1e-6}, {pool + 3200, {}, 1e-6}, {pool + h_at, 8, DType::F32},
                                   shape, nullptr);
      ADD_FAILURE() << "h at byte " << h_at << " overlaps x and was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("gated_residual_rms_norm: h overlaps x", 0), 0u) << e.what();
    }
  }
}

// ---------------------------------------------------------------- timestep embedding

class TimestepEmbedding : public ::testing::TestWithParam<DType> {};

TEST_P(TimestepEmbedding, CosFirstAgainstReference_dim256) {
  ZIMAGE_REQUIRE_CUDA();
  const DType dt = GetParam();
  // t * t_scale for sigmas across (0, 1], and both ends
  Tensor<float> t({6}, std::vector<float>{0.f, 1.f, 125.5f, 500.f, 874.25f, 1000.f});
  const auto td = testing::to_device(t, DType::F32);
  testing::Guarded out(dt, {6, 256});
  gpu::timestep_embedding(dt, td.buf.as<const float>(), 6, 256, kTimestepMaxPeriod, out.data(), testing::rt().stream());
  const Tensor<double> ref = timestep_embedding(t.cast<double>(), 256);
  const Tensor<float> peer = testing::round_to(dt, timestep_embedding(t, 256));
  const std::string what = "timestep_embedding " + testing::dtype_tag(dt);
  testing::expect_t3_or_t4(what, dt, out.host(), &peer, ref, {{"timestep_embedding(cos,sin)", 1, 1, true}});
  out.expect_guards_intact(what);
}

INSTANTIATE_TEST_SUITE_P(Cuda, TimestepEmbedding, ::testing::Values(DType::F32, DType::BF16),
                         [](const auto& i) { return testing::dtype_tag(i.param); });

}  // namespace
}  // namespace zimage

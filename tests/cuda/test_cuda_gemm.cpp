// cuBLASLt GEMMs (gemm_lt.h) against reference/nn/linear.h linear: exact small-integer
// products (fp32 and bf16 storage, with and without bias, ragged shapes, strided x), T3 at real
// widths (fp32 vs the fp64 reference, rows sampled for the 4096 + 512 token shapes), the TF32
// mutation (the T3 gate must reject it), bf16 T4 (absolute bound + peer: the fp32 product of the
// same bf16 values, rounded once), guard bands, and bitwise-equal repeated runs; the timed
// algorithm choice (GemmAlgo::timed) under the same gates, and its names, environment and pick
// rule on the host.
#include <cmath>
#include <cstdlib>

#include "cuda_support.h"
#include "nn/linear.h"
#include "numerics/row_sample.h"

namespace zimage {
namespace {

using testing::DType;

// Integers in [-lo, lo]: every product and sum of a K-long dot product stays exact in fp32.
Tensor<float> small_ints(Shape s, uint64_t seed, int lo) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> d(-lo, lo);
  Tensor<float> t(std::move(s));
  for (auto& v : t.data) v = float(d(rng));
  return t;
}

struct GemmRun {
  Tensor<float> y;
};

// y = x W^T + b on the device; x may sit in a wider buffer (row stride ldx >= K).
Tensor<float> run_linear(DType dt, const Tensor<float>& x, int64_t ldx, const LinearW<float>& w, const std::string& what,
                         const gpu::GemmOptions& opts = {}) {
  const int64_t N = x.dim(0), K = w.weight.dim(1), M = w.weight.dim(0);
  Tensor<float> xw({N, ldx});
  for (int64_t n = 0; n < N; ++n) std::copy(x.ptr() + n * K, x.ptr() + (n + 1) * K, xw.ptr() + n * ldx);
  const auto xd = testing::to_device(xw, dt), wd = testing::to_device(w.weight, dt);
  gpu::DeviceTensor bd;
  if (w.has_bias()) bd = testing::to_device(w.bias, dt);
  testing::Guarded out(dt, {N, M});
  testing::rt().linear({xd.data(), ldx, dt}, wd.data(), w.has_bias() ? bd.data() : nullptr, {out.data(), M, dt},
                       {N, M, K}, opts);
  out.expect_guards_intact(what);
  return out.host();
}

class ExactGemm : public ::testing::TestWithParam<std::tuple<DType, std::array<int64_t, 3>, bool>> {};

TEST_P(ExactGemm, SmallIntegersExact) {
  ZIMAGE_REQUIRE_CUDA();
  const auto [dt, nmk, bias] = GetParam();
  const auto [N, M, K] = nmk;
  // |x|, |w| <= 3 and K <= 3840: |sum| <= 9 * 3840 < 2^24, exact in fp32 accumulation.
  const int lim = 3;  // exact in bf16 storage too
  const Tensor<float> x = small_ints({N, K}, testing::test_seed(), lim);
  LinearW<float> w;
  w.weight = small_ints({M, K}, testing::test_seed() + 1, lim);
  if (bias) w.bias = small_ints({M}, testing::test_seed() + 2, 3);
  const std::string tag = testing::dtype_tag(dt) + " N" + std::to_string(N) + " M" + std::to_string(M) + " K" +
                          std::to_string(K) + (bias ? " +bias" : "");
  // The fp32 sum is exact; bf16 storage rounds it once (round to nearest even), as round_to does.
  const Tensor<float> ref = testing::round_to(dt, linear(x, w));
  const Tensor<float> got = run_linear(dt, x, K + (K % 8 ? 0 : 8), w, "gemm " + tag);
  testing::expect_exact("gemm exact " + tag, numerics::compare(got, ref));
  int64_t nonzero = 0;
  for (float v : got.data) nonzero += v != 0;
  EXPECT_GT(nonzero, got.numel() / 2) << "output mostly zeros: " << tag;
}

INSTANTIATE_TEST_SUITE_P(
    Cuda, ExactGemm,
    ::testing::Combine(::testing::Values(DType::F32, DType::BF16),
                       ::testing::Values(std::array<int64_t, 3>{97, 64, 64}, std::array<int64_t, 3>{1025, 256, 3840},
                                         std::array<int64_t, 3>{1, 15360, 256}, std::array<int64_t, 3>{33, 64, 97},
                                         std::array<int64_t, 3>{4096 + 32, 64, 3840}),
                       ::testing::Bool()),
    [](const auto& i) {
      const auto& s = std::get<1>(i.param);
      return testing::dtype_tag(std::get<0>(i.param)) + "_N" + std::to_string(s[0]) + "_M" + std::to_string(s[1]) +
             "_K" + std::to_string(s[2]) + (std::get<2>(i.param) ? "_bias" : "");
    });

using numerics::rows_of;
using numerics::sample_rows;

// Real-width operands: x randn, W randn / sqrt(K), a small bias, all rounded to the storage dtype so
// that the fp64 reference multiplies the same numbers.
struct RealOperands {
  Tensor<float> x;
  LinearW<float> w;
  std::string tag;
};
RealOperands real_operands(DType dt, int64_t N, int64_t M, int64_t K) {
  RealOperands o;
  o.x = testing::round_to(dt, testing::randn<float>({N, K}, testing::test_seed()));
  o.w.weight = testing::round_to(dt, testing::randn<float>({M, K}, testing::test_seed() + 1, 1.0 / std::sqrt(double(K))));
  o.w.bias = testing::round_to(dt, testing::randn<float>({M}, testing::test_seed() + 2, 0.05));
  o.tag = testing::dtype_tag(dt) + " N" + std::to_string(N) + " M" + std::to_string(M) + " K" + std::to_string(K);
  return o;
}

// The gates of a real-width GEMM on sampled rows: T3 against fp64 in fp32; in bf16 T4 with the peer
// (the fp32 product of the same bf16 values, rounded once).
void expect_real_gates(DType dt, const RealOperands& o, const Tensor<float>& got) {
  const auto rows = sample_rows(o.x.dim(0));
  const Tensor<float> xs = rows_of(o.x, rows);
  const Tensor<double> ref = linear(xs.cast<double>(), LinearW<double>{o.w.weight.cast<double>(), o.w.bias.cast<double>()});
  Tensor<float> peer = testing::round_to(dt, linear(xs, o.w));
  testing::expect_t3_or_t4("gemm " + o.tag + " (" + std::to_string(rows.size()) + " rows)", dt, rows_of(got, rows),
                           &peer, ref, {testing::op_linear(double(o.w.weight.dim(1)))});
}

class RealGemm : public ::testing::TestWithParam<std::tuple<DType, std::array<int64_t, 3>>> {};

TEST_P(RealGemm, WithinBudgetAgainstFp64) {
  ZIMAGE_REQUIRE_CUDA();
  const auto [dt, nmk] = GetParam();
  const auto [N, M, K] = nmk;
  const RealOperands o = real_operands(dt, N, M, K);
  const Tensor<float>& x = o.x;
  const LinearW<float>& w = o.w;
  const std::string& tag = o.tag;
  const Tensor<float> got = run_linear(dt, x, K, w, "gemm " + tag);
  expect_real_gates(dt, o, got);

  // Determinism: the same call again is bitwise equal.
  testing::expect_exact("gemm run twice " + tag, numerics::compare(run_linear(dt, x, K, w, "gemm again " + tag), got));
}

INSTANTIATE_TEST_SUITE_P(
    Cuda, RealGemm,
    ::testing::Combine(::testing::Values(DType::F32, DType::BF16),
                       ::testing::Values(std::array<int64_t, 3>{97, 3 * 3840, 3840},      // to_qkv, ragged
                                         std::array<int64_t, 3>{1025, 3840, 10240},      // w2, ragged
                                         std::array<int64_t, 3>{4096 + 32, 2 * 10240, 3840},  // w13, real
                                         std::array<int64_t, 3>{4096 + 512, 3840, 3840},  // to_out, real
                                         std::array<int64_t, 3>{1, 4 * 3840, 256},        // adaLN
                                         std::array<int64_t, 3>{512, 3840, 2560},         // cap_embedder.1
                                         std::array<int64_t, 3>{4096, 3840, 64})),        // x_embedder
    [](const auto& i) {
      const auto& s = std::get<1>(i.param);
      return testing::dtype_tag(std::get<0>(i.param)) + "_N" + std::to_string(s[0]) + "_M" + std::to_string(s[1]) +
             "_K" + std::to_string(s[2]);
    });

// GemmAlgo::timed: several candidates run, one is kept per key, and what it computes passes the same
// gates as the heuristic's choice (T3 in fp32, T4 + peer in bf16) and repeats bitwise. Shapes: the
// step's w13 (bf16) and to_out (fp32) at 4224 tokens, and a ragged one: none of them used by another
// test here, so even under ZIMAGE_GEMM_ALGO=timed no earlier test has cached their keys.
class TimedGemm : public ::testing::TestWithParam<std::tuple<DType, std::array<int64_t, 3>>> {};

TEST_P(TimedGemm, KeepsOneAlgorithmWithinBudgetAndRepeatsBitwise) {
  ZIMAGE_REQUIRE_CUDA();
  const auto [dt, nmk] = GetParam();
  const auto [N, M, K] = nmk;
  RealOperands o = real_operands(dt, N, M, K);
  o.tag += " timed";
  const Tensor<float>& x = o.x;
  const LinearW<float>& w = o.w;
  const std::string& tag = o.tag;
  gpu::GemmOptions timed;
  timed.algo = gpu::GemmAlgo::timed;
  const gpu::Runtime::GemmAlgoCounts before = testing::rt().gemm_algo_counts();
  const Tensor<float> got = run_linear(dt, x, K, w, "gemm " + tag, timed);
  const gpu::Runtime::GemmAlgoCounts after = testing::rt().gemm_algo_counts();
  std::printf("  %s: %llu candidates run, %s\n", tag.c_str(),
              (unsigned long long)(after.candidates_run - before.candidates_run),
              after.not_first > before.not_first ? "kept another than the heuristic's first" : "kept the heuristic's first");
  if (after.cached == before.cached + 1) {
    EXPECT_EQ(after.timed_keys, before.timed_keys + 1) << "the new key was not chosen by timing";
  } else {  // a second --gtest_repeat pass: the key kept its algorithm from the first
    std::printf("  %s: the key was cached before this test (an earlier repeat)\n", tag.c_str());
    EXPECT_EQ(after.cached, before.cached);
    EXPECT_EQ(after.candidates_run, before.candidates_run) << "a cached key was timed again";
  }
  expect_real_gates(dt, o, got);
  // The key keeps its algorithm: no new timing, the same bits.
  const Tensor<float> again = run_linear(dt, x, K, w, "gemm again " + tag, timed);
  EXPECT_EQ(testing::rt().gemm_algo_counts().candidates_run, after.candidates_run) << "a cached key is not timed again";
  testing::expect_exact("gemm run twice " + tag, numerics::compare(again, got));
}

INSTANTIATE_TEST_SUITE_P(
    Cuda, TimedGemm,
    ::testing::Values(std::tuple{DType::BF16, std::array<int64_t, 3>{4096 + 128, 2 * 10240, 3840}},  // w13
                      std::tuple{DType::F32, std::array<int64_t, 3>{4096 + 128, 3840, 3840}},        // to_out
                      std::tuple{DType::BF16, std::array<int64_t, 3>{99, 3 * 3840, 3840}}),          // ragged
    [](const auto& i) {
      const auto& s = std::get<1>(i.param);
      return testing::dtype_tag(std::get<0>(i.param)) + "_N" + std::to_string(s[0]) + "_M" + std::to_string(s[1]) +
             "_K" + std::to_string(s[2]);
    });

// Host only (in CI): the choice's names, its environment variable, and pick_timed_algo's rule.
TEST(GemmAlgo, NamesEnvironmentAndPickRule) {
  using gpu::GemmAlgo;
  for (GemmAlgo a : {GemmAlgo::automatic, GemmAlgo::heuristic, GemmAlgo::timed})
    EXPECT_EQ(gpu::parse_gemm_algo(gpu::gemm_algo_name(a)), a);
  try {
    gpu::parse_gemm_algo("fastest", "ZIMAGE_GEMM_ALGO");
    ADD_FAILURE() << "an unknown choice must be refused";
  } catch (const Error& e) {
    std::printf("  %s\n", e.what());
    EXPECT_EQ(std::string(e.what()), "ZIMAGE_GEMM_ALGO must be auto, heuristic or timed, not 'fastest'");
  }
  const char* old_env = std::getenv("ZIMAGE_GEMM_ALGO");
  const std::string saved = old_env ? old_env : "";
  ::unsetenv("ZIMAGE_GEMM_ALGO");
  EXPECT_EQ(gpu::requested_gemm_algo(GemmAlgo::automatic), GemmAlgo::heuristic);
  ::setenv("ZIMAGE_GEMM_ALGO", "timed", 1);
  EXPECT_EQ(gpu::requested_gemm_algo(GemmAlgo::automatic), GemmAlgo::timed);
  EXPECT_EQ(gpu::requested_gemm_algo(GemmAlgo::heuristic), GemmAlgo::heuristic) << "a given choice ignores it";
  ::setenv("ZIMAGE_GEMM_ALGO", "auto", 1);
  EXPECT_EQ(gpu::requested_gemm_algo(GemmAlgo::automatic), GemmAlgo::heuristic);
  ::setenv("ZIMAGE_GEMM_ALGO", "bogus", 1);
  EXPECT_THROW(gpu::requested_gemm_algo(GemmAlgo::automatic), Error);
  if (old_env) ::setenv("ZIMAGE_GEMM_ALGO", saved.c_str(), 1);
  else ::unsetenv("ZIMAGE_GEMM_ALGO");

  // The fastest wins when it beats the heuristic's first by the margin (1 %) or more.
  EXPECT_EQ(gpu::pick_timed_algo({1.00, 0.95, 0.97}), 1u);
  EXPECT_EQ(gpu::pick_timed_algo({1.00, 0.99, 0.97}), 2u);
  EXPECT_EQ(gpu::pick_timed_algo({1.00, 0.989}), 1u);
  // Within the margin the heuristic's first stays; so does a first that is fastest.
  EXPECT_EQ(gpu::pick_timed_algo({1.00, 0.995}), 0u);
  EXPECT_EQ(gpu::pick_timed_algo({0.90, 1.00, 0.95}), 0u);
  EXPECT_EQ(gpu::pick_timed_algo({1.00, 0.95}, 0.10), 0u);
  // Ties go to the earlier candidate; failed candidates (inf, NaN) are passed over.
  EXPECT_EQ(gpu::pick_timed_algo({1.00, 0.90, 0.90}), 1u);
  EXPECT_EQ(gpu::pick_timed_algo({INFINITY, 1.00, 0.90}), 2u);
  EXPECT_EQ(gpu::pick_timed_algo({NAN, 1.00}), 1u);
  EXPECT_EQ(gpu::pick_timed_algo({1.00, NAN, INFINITY}), 0u);
  EXPECT_EQ(gpu::pick_timed_algo({2.00}), 0u);
  try {
    gpu::pick_timed_algo({INFINITY, NAN});
    ADD_FAILURE() << "no finite time must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "linear (cuBLASLt): none of the 2 timed algorithms ran");
  }
  EXPECT_THROW(gpu::pick_timed_algo({}), Error);
}

// Mutation: TF32 on must fail the T3 gate (docs/tolerances.md: "Must fail if TF32 is switched on").
TEST(CudaGemmMutation, Tf32FailsT3Gate) {
  ZIMAGE_REQUIRE_CUDA();
  if (gpu::compute_capability() < 80) GTEST_SKIP() << "no TF32 before sm_80: the mutation cannot be injected";
  const int64_t N = 256, M = 512, K = 3840;
  const Tensor<float> x = testing::randn<float>({N, K}, testing::test_seed());
  LinearW<float> w;
  w.weight = testing::randn<float>({M, K}, testing::test_seed() + 1, 1.0 / std::sqrt(double(K)));
  const Tensor<double> ref = linear(x.cast<double>(), LinearW<double>{w.weight.cast<double>(), {}});
  const numerics::Budget b = numerics::budget_for(numerics::Tier::T3, {testing::op_linear(double(K))});
  const numerics::Comparison off = numerics::compare(run_linear(DType::F32, x, K, w, "gemm tf32 off"), ref);
  gpu::GemmOptions tf32;
  tf32.allow_tf32 = true;
  const numerics::Comparison on = numerics::compare(run_linear(DType::F32, x, K, w, "gemm tf32 on", tf32), ref);
  std::printf("  TF32 off: %s\n  TF32 on:  %s\n", numerics::describe(off, b).c_str(), numerics::describe(on, b).c_str());
  EXPECT_TRUE(numerics::passes(off, b)) << "fp32 GEMM must pass T3";
  EXPECT_FALSE(numerics::passes(on, b)) << "TF32 passed the T3 gate: the gate cannot see TF32";
}

}  // namespace
}  // namespace zimage

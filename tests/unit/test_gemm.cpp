// The packed GEMM of reference/core/gemm.h, on its own: exact on small
// integers for every edge shape (partial MR/NR panels, partial K blocks,
// strided and transposed operands), bitwise equal to a scalar emulation of
// its rounding contract (FMA chains per K block, blocks added in order),
// bitwise the same split over 1..4 threads, and never writing outside C.
#include <omp.h>

#include <cmath>
#include <random>

#include "core/gemm.h"
#include "support/test_support.h"

namespace zimage {
namespace {

struct GemmCase {
  int64_t n, m, k;
  bool b_transposed;  // B stored as [m, k] (a Linear's weight) instead of [k, m]
};

std::string case_name(const ::testing::TestParamInfo<GemmCase>& info) {
  const GemmCase& c = info.param;
  return "n" + std::to_string(c.n) + "_m" + std::to_string(c.m) + "_k" + std::to_string(c.k) +
         (c.b_transposed ? "_BT" : "_B");
}

// Operands with a row padding of 3 elements, so that no stride equals a width.
template <class T>
struct Problem {
  int64_t n, m, k, lda, ldb;
  bool bt;
  std::vector<T> a, b;
  GemmOperand<T> A() const { return {a.data(), lda, 1}; }
  GemmOperand<T> B() const { return bt ? GemmOperand<T>{b.data(), 1, ldb} : GemmOperand<T>{b.data(), ldb, 1}; }
  T at_a(int64_t i, int64_t p) const { return a[size_t(i * lda + p)]; }
  T at_b(int64_t p, int64_t j) const { return bt ? b[size_t(j * ldb + p)] : b[size_t(p * ldb + j)]; }
};

template <class T, class Draw>
Problem<T> make_problem(const GemmCase& c, Draw draw) {
  Problem<T> p{c.n, c.m, c.k, c.k + 3, (c.b_transposed ? c.k : c.m) + 3, c.b_transposed, {}, {}};
  p.a.resize(size_t(c.n * p.lda));
  p.b.resize(size_t((c.b_transposed ? c.m : c.k) * p.ldb));
  for (auto& v : p.a) v = draw();
  for (auto& v : p.b) v = draw();
  return p;
}

// C with sentinel guard bands: kGuard elements before it and between its rows
// (ldc = m + kGuard), two whole rows after it.
constexpr int64_t kGuard = 7;
template <class T>
struct Guarded {
  int64_t n, m, ldc;
  std::vector<T> buf;
  static constexpr T kSentinel = T(-12345.5);
  Guarded(int64_t n_, int64_t m_)
      : n(n_), m(m_), ldc(m_ + kGuard), buf(size_t(kGuard + (n_ + 2) * (m_ + kGuard)), kSentinel) {}
  T* c() { return buf.data() + kGuard; }
  T at(int64_t i, int64_t j) const { return buf[size_t(kGuard + i * ldc + j)]; }
  int64_t guard_hits() const {
    int64_t hits = 0;
    for (int64_t x = 0; x < int64_t(buf.size()); ++x) {
      const int64_t off = x - kGuard;
      const bool inside = off >= 0 && off < n * ldc && off % ldc < m;
      if (!inside && buf[size_t(x)] != kSentinel) ++hits;
    }
    return hits;
  }
};

class GemmShapes : public ::testing::TestWithParam<GemmCase> {};

// Integers in [-4, 4]: every partial sum is an integer below 2^24, exact in
// float, so any order of summation gives the exact product.
TEST_P(GemmShapes, SmallIntegersExactInFloatAndDouble) {
  const GemmCase& c = GetParam();
  std::mt19937 rng{unsigned(testing::test_seed())};
  std::uniform_int_distribution<int> u(-4, 4);
  const auto pf = make_problem<float>(c, [&] { return float(u(rng)); });
  Guarded<float> cf(c.n, c.m);
  gemm_parallel<float>(c.n, c.m, c.k, pf.A(), pf.B(), cf.c(), cf.ldc);
  Problem<double> pd{pf.n, pf.m, pf.k, pf.lda, pf.ldb, pf.bt, {pf.a.begin(), pf.a.end()}, {pf.b.begin(), pf.b.end()}};
  Guarded<double> cd(c.n, c.m);
  gemm_parallel<double>(c.n, c.m, c.k, pd.A(), pd.B(), cd.c(), cd.ldc);
  int64_t wrong_f = 0, wrong_d = 0;
  for (int64_t i = 0; i < c.n; ++i)
    for (int64_t j = 0; j < c.m; ++j) {
      int64_t want = 0;
      for (int64_t p = 0; p < c.k; ++p) want += int64_t(pf.at_a(i, p)) * int64_t(pf.at_b(p, j));
      wrong_f += cf.at(i, j) != float(want);
      wrong_d += cd.at(i, j) != double(want);
    }
  std::printf("  %s kernel: %lld of %lld float and %lld double elements differ from the integer product; "
              "guard hits %lld / %lld\n",
              gemm_kernel_name(), (long long)wrong_f, (long long)(c.n * c.m), (long long)wrong_d,
              (long long)cf.guard_hits(), (long long)cd.guard_hits());
  EXPECT_EQ(wrong_f, 0);
  EXPECT_EQ(wrong_d, 0);
  EXPECT_EQ(cf.guard_hits(), 0) << "float GEMM wrote outside C";
  EXPECT_EQ(cd.guard_hits(), 0) << "double GEMM wrote outside C";
}

// gemm.h's contract, emulated one element at a time with std::fma.
template <class T>
T contract_element(const Problem<T>& p, int64_t i, int64_t j) {
  T c = 0;
  for (int64_t p0 = 0; p0 < p.k; p0 += kGemmKc) {
    T acc = 0;
    for (int64_t q = p0; q < std::min(p.k, p0 + kGemmKc); ++q) acc = std::fma(p.at_a(i, q), p.at_b(q, j), acc);
    c = p0 == 0 ? acc : c + acc;
  }
  return c;
}

template <class T>
void expect_contract(const GemmCase& c) {
  std::mt19937_64 rng(testing::test_seed() + 1);
  std::normal_distribution<double> nd(0, 1);
  const auto prob = make_problem<T>(c, [&] { return T(nd(rng)); });
  Guarded<T> out(c.n, c.m);
  gemm_parallel<T>(c.n, c.m, c.k, prob.A(), prob.B(), out.c(), out.ldc);
  int64_t differ = 0;
  double worst = 0;
  for (int64_t i = 0; i < c.n; ++i)
    for (int64_t j = 0; j < c.m; ++j) {
      const T want = contract_element(prob, i, j), got = out.at(i, j);
      if (std::memcmp(&want, &got, sizeof(T)) != 0) ++differ;
      worst = std::max(worst, std::fabs(double(want) - double(got)));
    }
  std::printf("  %s %s: %lld of %lld elements differ bitwise from the contract (largest difference %.3g)\n",
              gemm_kernel_name(), sizeof(T) == 4 ? "float" : "double", (long long)differ, (long long)(c.n * c.m),
              worst);
  EXPECT_EQ(differ, 0);
  EXPECT_EQ(out.guard_hits(), 0);
}

TEST_P(GemmShapes, BitwiseEqualToTheRoundingContract) {
  if (std::string(gemm_kernel_name()) == "eigen")
    GTEST_SKIP() << "this build has no FMA vectors: the GEMM is Eigen's, whose rounding is Eigen's own";
  expect_contract<float>(GetParam());
  expect_contract<double>(GetParam());
}

// Bitwise the same on 1..4 threads, and (vector kernels, whose rounding does
// not depend on the tiling) the same as one gemm_serial call.
TEST_P(GemmShapes, SameBitsOnOneToFourThreadsAndSerial) {
  const GemmCase& c = GetParam();
  std::mt19937_64 rng(testing::test_seed() + 2);
  std::normal_distribution<float> nd(0, 1);
  const auto prob = make_problem<float>(c, [&] { return nd(rng); });
  const bool tiling_free = std::string(gemm_kernel_name()) != "eigen";
  std::vector<float> first;
  if (tiling_free) {
    first.resize(size_t(c.n * c.m));
    gemm_serial<float>(c.n, c.m, c.k, prob.A(), prob.B(), first.data(), c.m);
  }
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2, 3, 4}) {
    omp_set_num_threads(threads);
    std::vector<float> par(size_t(c.n * c.m), -1.0f);
    gemm_parallel<float>(c.n, c.m, c.k, prob.A(), prob.B(), par.data(), c.m);
    if (first.empty()) first = par;
    EXPECT_EQ(std::memcmp(par.data(), first.data(), par.size() * sizeof(float)), 0)
        << threads << " threads differ from " << (tiling_free ? "gemm_serial" : "1 thread");
  }
  omp_set_num_threads(saved);
}

// Edges of the blocking: MR = 14 (AVX-512) or 6 (AVX2), NR = 32 / 16 floats,
// KC = 256, MC = 12 MR, NC = 512 floats, the 2048 x 512 output tiles; the
// SDPA shapes (k = 128; p v with k = L); a Linear at real width.
INSTANTIATE_TEST_SUITE_P(Edges, GemmShapes,
                         ::testing::Values(GemmCase{1, 1, 1, true}, GemmCase{1, 33, 5, true},
                                           GemmCase{13, 31, 255, true}, GemmCase{14, 32, 256, true},
                                           GemmCase{15, 33, 257, true}, GemmCase{29, 65, 513, false},
                                           GemmCase{169, 47, 300, false}, GemmCase{97, 97, 128, true},
                                           GemmCase{97, 128, 97, false}, GemmCase{2100, 40, 20, true},
                                           GemmCase{40, 1100, 37, true}, GemmCase{33, 3840, 64, true},
                                           GemmCase{5, 7, 0, true}),
                         case_name);

}  // namespace
}  // namespace zimage

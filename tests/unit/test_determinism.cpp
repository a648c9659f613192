// Determinism: the CPU reference gives bitwise identical outputs across
// repeated runs and across OpenMP thread counts 1, 2 and 4 (reductions never
// depend on how work is split between threads: reference/core/gemm.h).
#include <omp.h>

#include "io/synthetic.h"
#include "dit/transformer.h"
#include "support/test_support.h"

namespace zimage {
namespace {

template <class T>
uint64_t digest(const Tensor<T>& t) {
  return fnv1a64(std::string_view(reinterpret_cast<const char*>(t.ptr()), size_t(t.numel()) * sizeof(T)));
}

// Runs f() with 1, 2, 4 threads (twice at 2) and expects one digest.
template <class F>
void expect_same_across_threads(const std::string& what, F f) {
  const int saved = omp_get_max_threads();
  std::vector<std::pair<int, uint64_t>> seen;
  for (int n : {1, 2, 2, 4}) {
    omp_set_num_threads(n);
    seen.emplace_back(n, f());
  }
  omp_set_num_threads(saved);
  for (const auto& [n, d] : seen) {
    std::printf("  %s: %d threads -> %016llx\n", what.c_str(), n, (unsigned long long)d);
    EXPECT_EQ(d, seen[0].second) << what << " differs with " << n << " threads";
  }
}

// Large enough that a library GEMM would split it between threads.
template <class T>
void linear_case() {
  Tensor<float> x({300, 1024}), w({1500, 1024}), b({1500});
  synthetic_fill(1, "x", 0, 1, x.ptr(), x.numel());
  synthetic_fill(1, "w", 0, 0.03, w.ptr(), w.numel());
  synthetic_fill(1, "b", 0, 0.05, b.ptr(), b.numel());
  const LinearW<T> l{w.cast<T>(), b.cast<T>()};
  const Tensor<T> xt = x.cast<T>();
  expect_same_across_threads("linear [300,1024] x [1500,1024]^T", [&] { return digest(linear(xt, l)); });
}
TEST(Determinism, Linear_N300_K1024_M1500_float) { linear_case<float>(); }
TEST(Determinism, Linear_N300_K1024_M1500_double) { linear_case<double>(); }

template <class T>
void forward_case() {
  const ZImageConfig cfg = testing::tiny_config();
  const auto w = load_weights<T>(cfg, *synthetic_param_source(testing::synthetic_spec(cfg, 5)));
  DitInputs<T> in;
  in.x = {testing::randn<T>({16, 1, 12, 8}, 1), testing::randn<T>({16, 1, 6, 14}, 2)};
  in.cap_feats = {testing::randn<T>({5, 32}, 3), testing::randn<T>({40, 32}, 4)};
  in.t = Tensor<T>({2}, {T(0.3), T(0.8)});
  expect_same_across_threads("forward, ragged batch of 2", [&] {
    const auto s = zimage_forward(w, in);
    return digest(s[0]) ^ (digest(s[1]) * 3);
  });
}
TEST(Determinism, WholeForwardRaggedBatch_float) { forward_case<float>(); }
TEST(Determinism, WholeForwardRaggedBatch_double) { forward_case<double>(); }

}  // namespace
}  // namespace zimage

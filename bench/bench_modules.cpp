// Reference modules under Google Benchmark. FLOP/s from each op's own count
// (2*N*K*M for a GEMM). Shapes: real Z-Image widths (C 3840, F 10240, 30 x 128
// heads) at a short sequence, so one iteration stays under a second.
#include <benchmark/benchmark.h>

#include <random>

#include "modules/attention.h"
#include "modules/feed_forward.h"

namespace zimage {
namespace {

template <class T>
Tensor<T> filled(Shape s, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  Tensor<T> t(std::move(s));
  for (auto& v : t.data) v = T(u(rng) * 0.05);
  return t;
}

template <class T>
void BM_Linear(benchmark::State& st) {
  const int64_t N = st.range(0), K = st.range(1), M = st.range(2);
  const Tensor<T> x = filled<T>({N, K}, 1);
  const LinearW<T> w{filled<T>({M, K}, 2), {}};
  for (auto _ : st) benchmark::DoNotOptimize(linear(x, w).data.data());
  st.counters["FLOP/s"] = benchmark::Counter(2.0 * N * K * M, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Linear<float>)->Args({256, 3840, 3840})->Args({97, 3840, 10240})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Linear<double>)->Args({256, 3840, 3840})->Unit(benchmark::kMillisecond);

template <class T>
void BM_Sdpa(benchmark::State& st) {
  const int64_t L = st.range(0), H = 30, D = 128;
  const Tensor<T> q = filled<T>({1, L, H, D}, 3), k = filled<T>({1, L, H, D}, 4), v = filled<T>({1, L, H, D}, 5);
  for (auto _ : st) benchmark::DoNotOptimize(scaled_dot_product_attention(q, k, v, nullptr).data.data());
  st.counters["FLOP/s"] = benchmark::Counter(4.0 * H * L * L * D, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Sdpa<float>)->Arg(256)->Arg(1025)->Unit(benchmark::kMillisecond);

template <class T>
void BM_FeedForward(benchmark::State& st) {
  const int64_t L = st.range(0), C = 3840, F = 10240;
  const Tensor<T> x = filled<T>({1, L, C}, 6);
  const FeedForwardW<T> w{{filled<T>({F, C}, 7), {}}, {filled<T>({C, F}, 8), {}}, {filled<T>({F, C}, 9), {}}};
  for (auto _ : st) benchmark::DoNotOptimize(feed_forward(x, w).data.data());
  st.counters["FLOP/s"] = benchmark::Counter(6.0 * L * C * F, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_FeedForward<float>)->Arg(97)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace zimage

// The machine's own peak, measured in the same run as everything else:
// fp32 FMA throughput on register-resident accumulators and STREAM-triad
// memory bandwidth. Also registered as benchmarks (BM_PeakFmaFp32,
// BM_PeakTriad) so they appear in the output and in JSON files.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "bench_support.h"

namespace zimage::bench {

Peak& peak() {
  static Peak p;
  return p;
}

namespace {

constexpr int kAcc = 16;  // independent accumulators: covers FMA latency x throughput

// Runs `iters` rounds of kAcc FMAs per vector lane; returns FLOPs done.
double fma_kernel(int64_t iters, float* sink) {
#if defined(__AVX512F__)
  using V = __m512;
  constexpr int lanes = 16;
  V acc[kAcc];
  for (int j = 0; j < kAcc; ++j) acc[j] = _mm512_set1_ps(1.0f + j * 1e-3f);
  const V a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < kAcc; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  alignas(64) float tmp[16];  // (not _mm512_reduce_add_ps: GCC 12 warns inside it)
  float s = 0;
  for (int j = 0; j < kAcc; ++j) {
    _mm512_store_ps(tmp, acc[j]);
    for (float v : tmp) s += v;
  }
#elif defined(__FMA__)
  using V = __m256;
  constexpr int lanes = 8;
  V acc[kAcc];
  for (int j = 0; j < kAcc; ++j) acc[j] = _mm256_set1_ps(1.0f + j * 1e-3f);
  const V a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < kAcc; ++j) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
  alignas(32) float tmp[8];
  float s = 0;
  for (int j = 0; j < kAcc; ++j) {
    _mm256_store_ps(tmp, acc[j]);
    for (float v : tmp) s += v;
  }
#else  // SSE2 baseline: mul + add (no FMA unit reachable), counted as 2 FLOPs
  using V = __m128;
  constexpr int lanes = 4;
  V acc[kAcc];
  for (int j = 0; j < kAcc; ++j) acc[j] = _mm_set1_ps(1.0f + j * 1e-3f);
  const V a = _mm_set1_ps(0.999999f), b = _mm_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < kAcc; ++j) acc[j] = _mm_add_ps(_mm_mul_ps(acc[j], a), b);
  alignas(16) float tmp[4];
  float s = 0;
  for (int j = 0; j < kAcc; ++j) {
    _mm_store_ps(tmp, acc[j]);
    for (float v : tmp) s += v;
  }
#endif
  *sink = s;
  return 2.0 * double(iters) * kAcc * lanes;
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

double measure_fma_peak(int threads, double seconds) {
  const int64_t iters = 1 << 22;
  double best = 0;
  const double until = now() + seconds;
  do {
    double flops = 0;
    std::vector<float> sink(threads);
    const double t0 = now();
#pragma omp parallel for num_threads(threads) reduction(+ : flops) schedule(static, 1)
    for (int t = 0; t < threads; ++t) flops += fma_kernel(iters, &sink[t]);
    best = std::max(best, flops / (now() - t0));
  } while (now() < until);
  return best;
}

double measure_triad_bandwidth(int threads, int64_t n, int repeats) {
  std::vector<float> a(n), b(n), c(n);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) a[i] = 0, b[i] = 1, c[i] = 2;  // first touch by the threads that use them
  double best = 0;
  for (int r = 0; r < repeats; ++r) {
    const double t0 = now();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; ++i) a[i] = b[i] + 0.5f * c[i];
    best = std::max(best, 3.0 * sizeof(float) * double(n) / (now() - t0));
  }
  benchmark::DoNotOptimize(a.data());
  return best;
}

namespace {

void BM_PeakFmaFp32(benchmark::State& st) {
  const int threads = omp_get_max_threads();
  const int64_t iters = 1 << 20;
  std::vector<float> sink(threads);
  double flops = 0;
  const auto t0 = Clock::now();
  for (auto _ : st) {
    double f = 0;
#pragma omp parallel for num_threads(threads) reduction(+ : f) schedule(static, 1)
    for (int t = 0; t < threads; ++t) f += fma_kernel(iters, &sink[t]);
    flops = f;
  }
  set_counters(st, flops, 0, t0);
}
BENCHMARK(BM_PeakFmaFp32)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_PeakTriad(benchmark::State& st) {
  const int64_t n = int64_t(1) << 25;  // 3 x 128 MB
  const int threads = omp_get_max_threads();
  std::vector<float> a(n), b(n), c(n);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) a[i] = 0, b[i] = 1, c[i] = 2;
  const auto t0 = Clock::now();
  for (auto _ : st) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; ++i) a[i] = b[i] + 0.5f * c[i];
    benchmark::DoNotOptimize(a.data());
  }
  set_counters(st, 2.0 * n, 3.0 * sizeof(float) * n, t0);
}
BENCHMARK(BM_PeakTriad)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace zimage::bench

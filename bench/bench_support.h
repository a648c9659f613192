// Shared pieces of the benchmark suite: the machine's measured peak (fp32 FMA
// throughput and memory bandwidth, measured once at start-up in the same run,
// bench_main.cpp), seeded tensors, and the counters every benchmark reports:
//   FLOP/s, %peak_flops (share of the measured FMA peak),
//   B/s,    %peak_bw    (share of the measured triad bandwidth),
// each from the op's own flop and byte counts (bench/README.md lists them).
#pragma once
#include <benchmark/benchmark.h>

#include <chrono>
#include <random>

#include "core/tensor.h"

namespace zimage::bench {

struct Peak {
  int threads = 1;
  double fma_flops = 0;    // fp32 FLOP/s, all threads (an FMA counts as 2)
  double bytes_per_s = 0;  // triad a = b + s c, all threads, bytes read + written
};
Peak& peak();

// fp32 FMAs on independent register accumulators (the widest vectors this
// build targets), `threads` OpenMP threads, best of a few runs.
double measure_fma_peak(int threads, double seconds);
// STREAM triad over three arrays of `floats_per_array` floats.
double measure_triad_bandwidth(int threads, int64_t floats_per_array, int repeats);

using Clock = std::chrono::steady_clock;

// Call right after the timing loop; t0 = Clock::now() taken right before it.
// FLOP/s and B/s are Google Benchmark rates; the shares of peak use the same
// loop's wall time per iteration.
inline void set_counters(benchmark::State& st, double flops_per_iter, double bytes_per_iter, Clock::time_point t0) {
  using C = benchmark::Counter;
  const double per_iter = std::chrono::duration<double>(Clock::now() - t0).count() / double(st.iterations());
  if (flops_per_iter > 0) {
    st.counters["FLOP/s"] = C(flops_per_iter, C::kIsIterationInvariantRate);
    if (peak().fma_flops > 0) st.counters["%peak_flops"] = 100.0 * flops_per_iter / per_iter / peak().fma_flops;
  }
  if (bytes_per_iter > 0) {
    st.counters["B/s"] = C(bytes_per_iter, C::kIsIterationInvariantRate);
    if (peak().bytes_per_s > 0) st.counters["%peak_bw"] = 100.0 * bytes_per_iter / per_iter / peak().bytes_per_s;
  }
}

template <class T>
Tensor<T> filled(Shape s, uint64_t seed, double scale = 0.05) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  Tensor<T> t(std::move(s));
  for (auto& v : t.data) v = T(u(rng) * scale);
  return t;
}

}  // namespace zimage::bench

// The benchmark binary's main: measures this machine's peak first (so every
// result in this run can be reported as a share of it), prints it, then runs
// Google Benchmark as usual (all its flags work: --benchmark_filter,
// --benchmark_repetitions, --benchmark_out=FILE --benchmark_out_format=json).
#include <omp.h>

#include <cstdio>

#include "bench_support.h"

int main(int argc, char** argv) {
  using namespace zimage::bench;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  Peak& p = peak();
  p.threads = omp_get_max_threads();
  p.fma_flops = measure_fma_peak(p.threads, 0.3);
  p.bytes_per_s = measure_triad_bandwidth(p.threads, int64_t(1) << 25, 5);
  std::fprintf(stderr, "zimage_bench: %d thread(s); measured peak %.1f GFLOP/s fp32 FMA, %.1f GB/s triad\n", p.threads,
               p.fma_flops / 1e9, p.bytes_per_s / 1e9);
  benchmark::AddCustomContext("threads", std::to_string(p.threads));
  benchmark::AddCustomContext("peak_fma_gflops", std::to_string(p.fma_flops / 1e9));
  benchmark::AddCustomContext("peak_triad_gbs", std::to_string(p.bytes_per_s / 1e9));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

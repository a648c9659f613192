// Shared pieces of zimage_bench_cuda (bench/README.md, "CUDA"): the device's peaks measured at
// start-up in the same run, the timing harness, the validation verdicts and the one live fixture.
//
// Timing (every benchmark, UseManualTime): per iteration, on the stream the op runs on,
//   cudaMemsetAsync of a buffer 2 x the L2 size (evicts whatever the previous run left in L2),
//   cudaEventRecord(start); op; cudaEventRecord(stop); cudaEventSynchronize(stop)
// and the event interval is the iteration's time (st.SetIterationTime). The flush is outside the
// events. Counters, from the op's own counts (written next to each benchmark):
//   FLOP/s, %peak_flops  against the measured cuBLASLt GEMM peak of the storage dtype
//                        (bf16: tensor cores; fp32: TF32 off),
//   B/s,    %peak_bw     minimum traffic against the measured device-to-device copy rate,
//   budget_used          share of the tolerance budget the validation run used.
// Validation: a configuration is run once and compared with the CPU reference (fp64) before it is
// timed; a failing configuration is skipped with "failed validation: <describe line>" and never
// timed. Verdicts are cached per configuration for the process.
#pragma once
#include <benchmark/benchmark.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>

#include "common.h"
#include "dit/config.h"
#include "device_tensor.h"
#include "gemm_lt.h"
#include "io/safetensors.h"
#include "io/param_source.h"
#include "io/synthetic.h"
#include "numerics/tolerance.h"

namespace zimage::bench::cuda {

using gpu::DType;

// Storage-dtype tags: benchmark names read BM_CudaLinear<fp32>, BM_CudaLinear<bf16>.
struct fp32 {
  static constexpr DType dt = DType::F32;
};
struct bf16 {
  static constexpr DType dt = DType::BF16;
};

// ---------------------------------------------------------------- the device and its peaks

struct DevicePeak {
  std::string device;         // gpu::describe_device()
  int64_t l2_bytes = 0;       // cudaDevAttrL2CacheSize
  double bf16_gemm = 0;       // FLOP/s: best cuBLASLt bf16 GEMM (fp32 accumulation) over square shapes
  double fp32_gemm = 0;       // FLOP/s: best cuBLASLt fp32 GEMM, TF32 off, over square shapes
  double copy_bytes_per_s = 0;  // device-to-device cudaMemcpyAsync, bytes read + written
  double gemm(DType dt) const { return dt == DType::F32 ? fp32_gemm : bf16_gemm; }
};
inline DevicePeak& peak() {
  static DevicePeak p;
  return p;
}

// One Runtime (stream, cuBLASLt handle, algorithm cache) for the process, created on first use
// and deliberately never destroyed (no CUDA calls during static destruction), as in tests/cuda.
inline gpu::Runtime& runtime() {
  static gpu::Runtime* r = new gpu::Runtime();
  return *r;
}

// Evicts L2: a memset of 2 x the L2 size on `s` (allocated on first use, never freed). The byte
// value changes from call to call (never 0), so no run writes the same lines as the last one.
inline void flush_l2(cudaStream_t s) {
  static gpu::DeviceBuffer* buf = nullptr;
  static int value = 0;
  if (!buf) {
    const size_t bytes = size_t(std::max<int64_t>(2 * peak().l2_bytes, int64_t(8) << 20));
    buf = new gpu::DeviceBuffer(bytes);
  }
  value = value % 255 + 1;
  ZIMAGE_CUDA_CHECK(cudaMemsetAsync(buf->get(), value, buf->bytes(), s));
}

// A pair of CUDA events timing work enqueued on one stream.
class EventTimer {
 public:
  EventTimer() {
    ZIMAGE_CUDA_CHECK(cudaEventCreate(&start_));
    try {
      ZIMAGE_CUDA_CHECK(cudaEventCreate(&stop_));
    } catch (...) {
      cudaEventDestroy(start_);
      throw;
    }
  }
  ~EventTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;

  // Seconds between the two events around op() on `s`; with `flush`, L2 is flushed first, on the
  // same stream and outside the events. Waits for the stop event.
  template <class Op>
  double time(cudaStream_t s, Op&& op, bool flush = true) {
    if (flush) flush_l2(s);
    ZIMAGE_CUDA_CHECK(cudaEventRecord(start_, s));
    op();
    ZIMAGE_CUDA_CHECK(cudaEventRecord(stop_, s));
    ZIMAGE_CUDA_CHECK(cudaEventSynchronize(stop_));
    float ms = 0;
    ZIMAGE_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    return double(ms) * 1e-3;
  }

 private:
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

// ---------------------------------------------------------------- counters

// Call after the timing loop with the sum of the iterations' event times. FLOP/s and B/s are
// Google Benchmark rates over the manual time; the shares of peak use the same time per iteration.
inline void set_counters(benchmark::State& st, double flops_per_iter, double bytes_per_iter, double seconds_total,
                         DType dt) {
  using C = benchmark::Counter;
  if (st.iterations() == 0 || !(seconds_total > 0)) return;
  const double per_iter = seconds_total / double(st.iterations());
  if (flops_per_iter > 0) {
    st.counters["FLOP/s"] = C(flops_per_iter, C::kIsIterationInvariantRate);
    if (peak().gemm(dt) > 0) st.counters["%peak_flops"] = 100.0 * flops_per_iter / per_iter / peak().gemm(dt);
  }
  if (bytes_per_iter > 0) {
    st.counters["B/s"] = C(bytes_per_iter, C::kIsIterationInvariantRate);
    if (peak().copy_bytes_per_s > 0)
      st.counters["%peak_bw"] = 100.0 * bytes_per_iter / per_iter / peak().copy_bytes_per_s;
  }
}

// The timing loop: each iteration runs prepare() (not timed: e.g. restoring an in-place input),
// flushes L2 and times op() with events on `s`. A CUDA or library error skips the benchmark with
// its message. Returns the summed event time (0 after an error).
template <class Prepare, class Op>
double timed_loop(benchmark::State& st, cudaStream_t s, Prepare&& prepare, Op&& op) {
  double total = 0;
  try {
    EventTimer timer;
    for (auto _ : st) {
      try {
        prepare();
        const double sec = timer.time(s, op);
        st.SetIterationTime(sec);
        total += sec;
      } catch (const std::exception& e) {
        st.SkipWithError((std::string("error while timing: ") + e.what()).c_str());
        break;
      }
    }
  } catch (const std::exception& e) {  // the events could not be created
    st.SkipWithError((std::string("error: ") + e.what()).c_str());
    return 0;
  }
  return st.error_occurred() ? 0 : total;
}

// ---------------------------------------------------------------- validation verdicts

struct Verdict {
  bool ok = false;
  std::string line;   // numerics::describe(...) of the comparison, or the error
  double used = 0;    // numerics::budget_used
};

// The verdict of configuration `key`, computed by check() the first time it is asked for (an
// exception is a failed verdict naming it) and printed to stderr either way.
inline const Verdict& verdict(const std::string& key, const std::function<Verdict()>& check) {
  static std::map<std::string, Verdict> cache;
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  Verdict v;
  try {
    v = check();
  } catch (const std::exception& e) {
    v = {false, std::string("error: ") + e.what(), 0};
  }
  std::fprintf(stderr, "zimage_bench_cuda: validate %s: %s %s\n", key.c_str(), v.ok ? "PASS" : "FAIL", v.line.c_str());
  return cache.emplace(key, std::move(v)).first->second;
}

// One comparison against a budget as a Verdict.
inline Verdict judge(const std::string& what, const numerics::Comparison& c, const numerics::Budget& b) {
  return {numerics::passes(c, b), what + ": " + numerics::describe(c, b), numerics::budget_used(c, b)};
}

// Skips the benchmark unless `v` passed; records the budget share otherwise.
inline bool require(benchmark::State& st, const Verdict& v) {
  if (!v.ok) {
    st.SkipWithError(("failed validation: " + v.line).c_str());
    return false;
  }
  st.counters["budget_used"] = v.used;
  return true;
}

// T3 for fp32 storage, T4 (the absolute chain bound) for bf16.
inline numerics::Tier tier_of(DType dt) { return dt == DType::F32 ? numerics::Tier::T3 : numerics::Tier::T4; }

// ---------------------------------------------------------------- keys and poison

// A configuration's key: "<what> <dtype> <dims...>" (the verdict and fixture caches' key).
inline std::string shape_key(const char* what, DType dt, std::initializer_list<int64_t> dims) {
  std::string s = std::string(what) + " " + gpu::dtype_name(dt);
  for (int64_t d : dims) {
    s += ' ';  // (not s += " " + std::to_string(d): GCC 12's -Wrestrict false positive, PR 105329)
    s += std::to_string(d);
  }
  return s;
}

// Fills a device buffer with 0xFF bytes (NaN in fp32 and bf16) before a validation run: an
// element the op forgets to write shows up as non-finite.
inline void poison(const gpu::DeviceTensor& t, cudaStream_t s) {
  ZIMAGE_CUDA_CHECK(cudaMemsetAsync(t.data(), 0xFF, size_t(t.numel()) * gpu::dtype_size(t.dtype), s));
}

// ---------------------------------------------------------------- the one live fixture

// Device state of one configuration (uploaded inputs and weights), kept while consecutive calls
// of the benchmark function (Google Benchmark's iteration-count probes and repetitions) ask for
// the same key, freed when another key is asked for: device memory holds one configuration.
struct Fixture {
  virtual ~Fixture() = default;
};
struct FixtureSlot {
  std::string key;
  std::unique_ptr<Fixture> f;
};
inline FixtureSlot& fixture_slot() {
  static FixtureSlot s;
  return s;
}
template <class F, class Make>
F& fixture(const std::string& key, Make&& make) {
  FixtureSlot& s = fixture_slot();
  if (!s.f || s.key != key) {
    s.f.reset();  // free the previous configuration first
    s.key.clear();
    s.f = make();
    s.key = key;
  }
  return static_cast<F&>(*s.f);
}
inline void release_fixture() {
  fixture_slot().f.reset();
  fixture_slot().key.clear();
}

// ---------------------------------------------------------------- host data

// Uniform values in [-scale, scale] from the counter-based generator (io/synthetic.h): fast,
// and the same on every machine.
inline Tensor<float> uniform(Shape s, uint64_t seed, double scale) {
  Tensor<float> t(std::move(s));
  synthetic_fill(seed, "bench_cuda", 0.0, scale, t.ptr(), t.numel());
  return t;
}

// fp32 values rounded to the storage dtype (bf16: nearest even, as the device's upload converts):
// what the device holds, so the fp64 reference sees the same numbers.
inline Tensor<float> round_to(DType dt, Tensor<float> t) {
  if (dt == DType::BF16)
    for (auto& v : t.data) v = bf16_to_float(float_to_bf16(v));
  return t;
}

}  // namespace zimage::bench::cuda

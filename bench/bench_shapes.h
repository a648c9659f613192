// The real Z-Image-Turbo shapes the benchmark suites use, in one place, so the
// CPU suite (bench_dit.cpp) and the CUDA suite (cuda/bench_cuda.cpp) time the
// same GEMMs: dim C, FFN hidden F, heads H x D, adaLN input A, caption
// features CAP, patch features PATCH (2 x 2 x 16 latent channels).
#pragma once
#include <benchmark/benchmark.h>

#include <cstdint>

namespace zimage::bench {

constexpr int64_t C = 3840, F = 10240, H = 30, D = 128, A = 256, CAP = 2560, PATCH = 64;

// Every Linear shape of a DiT block and the caption embedder, as {N tokens, K, M}:
// N = 1056 (512x512 image + 32-token caption) and 4128 (1024x1024 + 32).
inline void dit_linear_args(benchmark::internal::Benchmark* b) {
  for (int64_t n : {1056, 4128}) {
    b->Args({n, C, C});  // to_q / to_k / to_v / to_out.0
    b->Args({n, C, F});  // feed_forward.w1 / w3
    b->Args({n, F, C});  // feed_forward.w2
  }
  b->Args({512, CAP, C});  // cap_embedder.1 at a 512-token caption
  b->ArgNames({"N", "K", "M"});
}

}  // namespace zimage::bench

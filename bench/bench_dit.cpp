// Reference DiT modules and whole blocks at real Z-Image shapes (dim 3840,
// FFN 10240, 30 heads x 128, adaLN 256): image tokens 1024 (512x512) and 4096
// (1024x1024) with captions of 32 and 512 tokens, float32 (the parity path)
// and one float64 row per GEMM shape. FLOP and byte counts per op are
// written next to each benchmark; bytes are the minimum traffic (inputs,
// weights and outputs once).
#include "bench_shapes.h"
#include "bench_support.h"
#include "dit/attention.h"
#include "dit/config.h"
#include "dit/feed_forward.h"
#include "dit/final_layer.h"
#include "dit/timestep_embedder.h"
#include "dit/transformer_block.h"

namespace zimage::bench {
namespace {

template <class T>
LinearW<T> lin(int64_t out, int64_t in, uint64_t seed, bool bias = false) {
  return {filled<T>({out, in}, seed, 1.0 / std::sqrt(double(in))), bias ? filled<T>({out}, seed + 1) : Tensor<T>()};
}

template <class T>
TransformerBlockW<T> block_weights() {
  TransformerBlockW<T> w;
  w.attention = {lin<T>(C, C, 1), lin<T>(C, C, 2), lin<T>(C, C, 3), lin<T>(C, C, 4), filled<T>({D}, 5), filled<T>({D}, 6)};
  w.feed_forward = {lin<T>(F, C, 7), lin<T>(C, F, 8), lin<T>(F, C, 9)};
  for (auto* n : {&w.attention_norm1, &w.attention_norm2, &w.ffn_norm1, &w.ffn_norm2}) *n = filled<T>({C}, 10, 0.2);
  w.modulation = true;
  w.adaLN_modulation = lin<T>(4 * C, A, 11, true);
  return w;
}

// RoPE table rows for L tokens: [1, L, D/2, 2] of unit (cos, sin) pairs.
template <class T>
Tensor<T> freqs(int64_t L) {
  Tensor<T> f({1, L, D / 2, 2});
  for (int64_t i = 0; i < L * D / 2; ++i) {
    const double a = 0.001 * double(i % 997);
    f[2 * i] = T(std::cos(a));
    f[2 * i + 1] = T(std::sin(a));
  }
  return f;
}

// Sequence lengths: image tokens + padded caption tokens.
void seq_args(benchmark::internal::Benchmark* b) {
  for (int64_t img : {1024, 4096})
    for (int64_t cap : {32, 512}) b->Args({img, cap});
  b->ArgNames({"img", "cap"});
}

// ---------------------------------------------------------------- GEMMs of a block
// linear y = x W^T: 2 N K M FLOPs; bytes 4 (N K + K M + N M).
template <class T>
void BM_Linear(benchmark::State& st) {
  const int64_t N = st.range(0), K = st.range(1), M = st.range(2);
  const Tensor<T> x = filled<T>({N, K}, 1);
  const LinearW<T> w = lin<T>(M, K, 2);
  const auto t0 = Clock::now();
  for (auto _ : st) benchmark::DoNotOptimize(linear(x, w).data.data());
  set_counters(st, 2.0 * N * K * M, sizeof(T) * double(N * K + K * M + N * M), t0);
}
BENCHMARK(BM_Linear<float>)->Apply(dit_linear_args)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Linear<double>)->Args({1056, C, C})->ArgNames({"N", "K", "M"})->Unit(benchmark::kMillisecond)->UseRealTime();

// ---------------------------------------------------------------- attention pieces
// sdpa: q k^T and p v: 4 H L^2 D FLOPs (softmax not counted); bytes 4 x 4 L C (q, k, v, out).
template <class T>
void BM_Sdpa(benchmark::State& st) {
  const int64_t L = st.range(0) + st.range(1);
  const Tensor<T> q = filled<T>({1, L, H, D}, 3), k = filled<T>({1, L, H, D}, 4), v = filled<T>({1, L, H, D}, 5);
  const auto t0 = Clock::now();
  for (auto _ : st) benchmark::DoNotOptimize(scaled_dot_product_attention(q, k, v, nullptr).data.data());
  set_counters(st, 4.0 * H * L * L * D, 4.0 * sizeof(T) * L * C, t0);
}
BENCHMARK(BM_Sdpa<float>)->Apply(seq_args)->Unit(benchmark::kMillisecond)->UseRealTime();

// rms_norm over C: ~4 L C FLOPs (square, sum, scale, weight); bytes 2 L C + C.
template <class T>
void BM_RmsNorm(benchmark::State& st) {
  const int64_t L = st.range(0) + st.range(1);
  const Tensor<T> x = filled<T>({1, L, C}, 1), w = filled<T>({C}, 2, 0.2);
  const auto t0 = Clock::now();
  for (auto _ : st) benchmark::DoNotOptimize(rms_norm(x, w, kDitNormEps).data.data());
  set_counters(st, 4.0 * L * C, sizeof(T) * (2.0 * L * C + C), t0);
}
BENCHMARK(BM_RmsNorm<float>)->Apply(seq_args)->Unit(benchmark::kMillisecond)->UseRealTime();

// apply_rotary_emb on q: 6 FLOPs per pair (complex multiply) = 3 L C; bytes 2 L C + L D (table).
template <class T>
void BM_ApplyRotaryEmb(benchmark::State& st) {
  const int64_t L = st.range(0) + st.range(1);
  Tensor<T> q = filled<T>({1, L, H, D}, 1);
  const Tensor<T> f = freqs<T>(L);
  const auto t0 = Clock::now();
  for (auto _ : st) {
    apply_rotary_emb(q, f);
    benchmark::DoNotOptimize(q.data.data());
  }
  set_counters(st, 3.0 * L * C, sizeof(T) * (2.0 * L * C + L * D), t0);
}
BENCHMARK(BM_ApplyRotaryEmb<float>)->Apply(seq_args)->Unit(benchmark::kMillisecond)->UseRealTime();

// ---------------------------------------------------------------- modules and the block
// attention module: 4 linears (8 L C^2) + sdpa (4 L^2 C); bytes: 4 C^2 weights + 6 L C.
template <class T>
void BM_Attention(benchmark::State& st) {
  const int64_t L = st.range(0) + st.range(1);
  const TransformerBlockW<T> w = block_weights<T>();
  const Tensor<T> x = filled<T>({1, L, C}, 12), f = freqs<T>(L);
  const auto t0 = Clock::now();
  for (auto _ : st) benchmark::DoNotOptimize(attention(x, w.attention, nullptr, f, int(H)).data.data());
  set_counters(st, 8.0 * L * C * C + 4.0 * L * L * C, sizeof(T) * (4.0 * C * C + 6.0 * L * C), t0);
}
BENCHMARK(BM_Attention<float>)->Apply(seq_args)->Unit(benchmark::kMillisecond)->UseRealTime();

// feed_forward: 3 GEMMs, 6 L C F; bytes 3 C F + 2 L C + 2 L F.
template <class T>
void BM_FeedForward(benchmark::State& st) {
  const int64_t L = st.range(0) + st.range(1);
  const TransformerBlockW<T> w = block_weights<T>();
  const Tensor<T> x = filled<T>({1, L, C}, 13);
  const auto t0 = Clock::now();
  for (auto _ : st) benchmark::DoNotOptimize(feed_forward(x, w.feed_forward).data.data());
  set_counters(st, 6.0 * L * C * F, sizeof(T) * (3.0 * C * F + 2.0 * L * C + 2.0 * L * F), t0);
}
BENCHMARK(BM_FeedForward<float>)->Apply(seq_args)->Unit(benchmark::kMillisecond)->UseRealTime();

// The modulated ZImageTransformerBlock: attention + FFN + adaLN (2 A 4C) + norms.
template <class T>
void BM_TransformerBlock(benchmark::State& st) {
  const int64_t L = st.range(0) + st.range(1);
  const TransformerBlockW<T> w = block_weights<T>();
  const Tensor<T> x = filled<T>({1, L, C}, 14), f = freqs<T>(L), c = filled<T>({1, A}, 15, 1.0);
  const auto t0 = Clock::now();
  for (auto _ : st) benchmark::DoNotOptimize(transformer_block(x, nullptr, f, &c, w, int(H), kDitNormEps).data.data());
  const double flops = 8.0 * L * C * C + 4.0 * L * L * C + 6.0 * L * C * F + 2.0 * A * 4 * C;
  set_counters(st, flops, sizeof(T) * (4.0 * C * C + 3.0 * C * F + 4.0 * C * A + 10.0 * L * C), t0);
}
BENCHMARK(BM_TransformerBlock<float>)->Apply(seq_args)->Unit(benchmark::kMillisecond)->UseRealTime();

// t_embedder: sinusoidal 256 -> Linear(256, 1024) -> SiLU -> Linear(1024, 256), batch 1.
template <class T>
void BM_TimestepEmbedder(benchmark::State& st) {
  const TimestepEmbedderW<T> w{lin<T>(1024, 256, 16, true), lin<T>(A, 1024, 17, true)};
  Tensor<T> t({1});
  t[0] = T(500);
  const auto t0 = Clock::now();
  for (auto _ : st) benchmark::DoNotOptimize(timestep_embedder(t, w).data.data());
  set_counters(st, 2.0 * (256 * 1024 + 1024 * A), sizeof(T) * (256.0 * 1024 + 1024.0 * A), t0);
}
BENCHMARK(BM_TimestepEmbedder<float>)->Unit(benchmark::kMicrosecond)->UseRealTime();

// final layer on the image tokens: LayerNorm, scale, Linear(C, 64); adaLN Linear(A, C).
template <class T>
void BM_FinalLayer(benchmark::State& st) {
  const int64_t L = st.range(0);
  const FinalLayerW<T> w{lin<T>(PATCH, C, 18, true), lin<T>(C, A, 19, true)};
  const Tensor<T> x = filled<T>({1, L, C}, 20), c = filled<T>({1, A}, 21, 1.0);
  const auto t0 = Clock::now();
  for (auto _ : st) benchmark::DoNotOptimize(final_layer(x, c, w).data.data());
  set_counters(st, 2.0 * L * C * PATCH + 2.0 * A * C + 6.0 * L * C, sizeof(T) * (C * PATCH + A * C + L * C + L * PATCH), t0);
}
BENCHMARK(BM_FinalLayer<float>)->Arg(1024)->Arg(4096)->ArgName("img")->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace zimage::bench

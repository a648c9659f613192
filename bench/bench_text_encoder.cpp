// Qwen3-4B text encoder pieces at Z-Image's prompt length (max_sequence_length
// 512; also 128): one Qwen3DecoderLayer (hidden 2560, 32 heads / 8 KV heads x
// 128, intermediate 9728), its attention and its MLP, float32, batch 1, every
// token real (the causal mask still applies). FLOP counts are what the
// reference computes: its SDPA forms the whole L x L score matrix and masks it,
// so causal attention is counted as 4 H L^2 D like the DiT's.
#include "bench_support.h"
#include "text_encoder/qwen3_modules.h"

namespace zimage::bench {
namespace {

const Qwen3Config& cfg() {
  static const Qwen3Config c = qwen3_4b_config();
  return c;
}

template <class T>
LinearW<T> lin(int64_t out, int64_t in, uint64_t seed) {
  return {filled<T>({out, in}, seed, 1.0 / std::sqrt(double(in))), Tensor<T>()};
}

template <class T>
Qwen3LayerW<T> layer_weights() {
  const int64_t C = cfg().hidden_size, F = cfg().intermediate_size, Q = cfg().q_dim(), KV = cfg().kv_dim(),
                D = cfg().head_dim;
  Qwen3LayerW<T> w;
  w.input_layernorm = filled<T>({C}, 1, 0.2);
  w.post_attention_layernorm = filled<T>({C}, 2, 0.2);
  w.self_attn = {lin<T>(Q, C, 3), lin<T>(KV, C, 4), lin<T>(KV, C, 5), lin<T>(C, Q, 6), filled<T>({D}, 7, 0.2),
                 filled<T>({D}, 8, 0.2)};
  w.mlp = {lin<T>(F, C, 9), lin<T>(F, C, 10), lin<T>(C, F, 11)};
  for (auto* t : {&w.input_layernorm, &w.post_attention_layernorm, &w.self_attn.q_norm, &w.self_attn.k_norm})
    for (auto& v : t->data) v += T(1);
  return w;
}

Tensor<int32_t> all_real(int64_t L) {
  Tensor<int32_t> m({1, L});
  for (auto& v : m.data) v = 1;
  return m;
}

// Attention FLOPs: q/k/v/o projections 2 L C (Q + 2 KV) + 2 L Q C, SDPA 4 H L^2 D.
double attention_flops(int64_t L) {
  const double C = cfg().hidden_size, Q = cfg().q_dim(), KV = cfg().kv_dim();
  return 2.0 * L * C * (Q + 2 * KV) + 2.0 * L * Q * C + 4.0 * cfg().num_attention_heads * L * L * cfg().head_dim;
}
double attention_weight_floats() {
  const double C = cfg().hidden_size, Q = cfg().q_dim(), KV = cfg().kv_dim();
  return C * (Q + 2 * KV) + Q * C;
}
// MLP FLOPs: three GEMMs, 6 L C F.
double mlp_flops(int64_t L) { return 6.0 * L * cfg().hidden_size * cfg().intermediate_size; }

// Qwen3Attention: bytes = weights + x, q, k, v, o once.
template <class T>
void BM_Qwen3Attention(benchmark::State& st) {
  const int64_t L = st.range(0), C = cfg().hidden_size;
  const Qwen3LayerW<T> w = layer_weights<T>();
  const Tensor<T> x = filled<T>({1, L, C}, 12, 1.0);
  const auto [cos, sin] = qwen3_rotary_embedding<T>(cfg(), L);
  const Tensor<int32_t> mask = all_real(L);
  const auto t0 = Clock::now();
  for (auto _ : st)
    benchmark::DoNotOptimize(qwen3_attention(x, w.self_attn, mask, cos, sin, cfg()).data.data());
  const double acts = double(L) * (2.0 * C + 2.0 * cfg().q_dim() + 2.0 * cfg().kv_dim());
  set_counters(st, attention_flops(L), sizeof(T) * (attention_weight_floats() + acts), t0);
}
BENCHMARK(BM_Qwen3Attention<float>)->Arg(128)->Arg(512)->ArgName("L")->Unit(benchmark::kMillisecond)->UseRealTime();

// Qwen3MLP: bytes 3 C F weights + 2 L C + 2 L F.
template <class T>
void BM_Qwen3Mlp(benchmark::State& st) {
  const int64_t L = st.range(0), C = cfg().hidden_size, F = cfg().intermediate_size;
  const Qwen3LayerW<T> w = layer_weights<T>();
  const Tensor<T> x = filled<T>({1, L, C}, 13, 1.0);
  const auto t0 = Clock::now();
  for (auto _ : st) benchmark::DoNotOptimize(qwen3_mlp(x, w.mlp).data.data());
  set_counters(st, mlp_flops(L), sizeof(T) * (3.0 * C * F + 2.0 * L * C + 2.0 * L * F), t0);
}
BENCHMARK(BM_Qwen3Mlp<float>)->Arg(128)->Arg(512)->ArgName("L")->Unit(benchmark::kMillisecond)->UseRealTime();

// Qwen3DecoderLayer: the two above plus two RMSNorms and residuals (not counted
// in FLOPs); bytes: all weights + 8 L C of activations.
template <class T>
void BM_Qwen3DecoderLayer(benchmark::State& st) {
  const int64_t L = st.range(0), C = cfg().hidden_size, F = cfg().intermediate_size;
  const Qwen3LayerW<T> w = layer_weights<T>();
  const Tensor<T> x = filled<T>({1, L, C}, 14, 1.0);
  const auto [cos, sin] = qwen3_rotary_embedding<T>(cfg(), L);
  const Tensor<int32_t> mask = all_real(L);
  const auto t0 = Clock::now();
  for (auto _ : st)
    benchmark::DoNotOptimize(qwen3_decoder_layer(x, w, mask, cos, sin, cfg()).data.data());
  set_counters(st, attention_flops(L) + mlp_flops(L),
               sizeof(T) * (attention_weight_floats() + 3.0 * C * F + 2.0 * C + 8.0 * L * C), t0);
}
BENCHMARK(BM_Qwen3DecoderLayer<float>)->Arg(128)->Arg(512)->ArgName("L")->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace zimage::bench

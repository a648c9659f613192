// Flux VAE decoder pieces at the shapes a 512x512 and a 1024x1024 decode run
// (block_out_channels [128, 256, 512, 512], 32 groups; latent 64x64 or
// 128x128): the ResnetBlock2D of each decoder stage, the mid-block
// attention, and an Upsample2D. conv FLOPs 2 H W C_in k^2 C_out.
#include "bench_support.h"
#include "vae/layers.h"

namespace zimage::bench {
namespace {

template <class T>
Conv2dW<T> conv(int64_t cout, int64_t cin, int64_t k, uint64_t seed) {
  return {filled<T>({cout, cin, k, k}, seed, 1.0 / std::sqrt(double(cin * k * k))), filled<T>({cout}, seed + 1)};
}
template <class T>
GroupNormW<T> gn(int64_t c, uint64_t seed) {
  Tensor<T> w = filled<T>({c}, seed, 0.2);
  for (auto& v : w.data) v += T(1);
  return {w, filled<T>({c}, seed + 1)};
}

// ResnetBlock2D C_in -> C_out at H x H: two 3x3 convs (+ 1x1 shortcut when the
// widths differ), two GroupNorm + SiLU (~8 FLOPs per element each, not counted
// in the GEMM share); bytes: input, output, weights.
template <class T>
void BM_VaeResnet(benchmark::State& st) {
  const int64_t cin = st.range(0), cout = st.range(1), Hs = st.range(2);
  ResnetBlock2DW<T> w{gn<T>(cin, 1), gn<T>(cout, 3), conv<T>(cout, cin, 3, 5), conv<T>(cout, cout, 3, 7), std::nullopt};
  if (cin != cout) w.conv_shortcut = conv<T>(cout, cin, 1, 9);
  const Tensor<T> x = filled<T>({1, cin, Hs, Hs}, 11, 1.0);
  const auto t0 = Clock::now();
  for (auto _ : st) benchmark::DoNotOptimize(resnet_block_2d(x, w, 32).data.data());
  const double hw = double(Hs * Hs);
  const double flops = 2 * hw * cin * 9 * cout + 2 * hw * cout * 9 * cout + (cin != cout ? 2 * hw * cin * cout : 0);
  set_counters(st, flops, sizeof(T) * (hw * (cin + cout) + 9.0 * cout * (cin + cout)), t0);
}
// Decoder stages (up_blocks.i resnets) for a 512x512 image, then for 1024x1024.
void resnet_args(benchmark::internal::Benchmark* b) {
  for (int64_t s : {1, 2}) {
    b->Args({512, 512, 64 * s});   // mid_block / up_blocks.0
    b->Args({512, 512, 128 * s});  // up_blocks.1
    b->Args({512, 256, 256 * s});  // up_blocks.2, first resnet (shortcut)
    b->Args({256, 128, 512 * s});  // up_blocks.3, first resnet (shortcut)
  }
  b->ArgNames({"cin", "cout", "H"});
}
BENCHMARK(BM_VaeResnet<float>)->Apply(resnet_args)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);

// Mid-block attention at 512 channels over H x H tokens: 4 linears (8 L C^2) + 4 L^2 C.
template <class T>
void BM_VaeMidAttention(benchmark::State& st) {
  const int64_t Cc = 512, Hs = st.range(0), L = Hs * Hs;
  auto l = [&](uint64_t s) { return LinearW<T>{filled<T>({Cc, Cc}, s, 1.0 / std::sqrt(double(Cc))), filled<T>({Cc}, s + 1)}; };
  const VaeAttentionW<T> w{gn<T>(Cc, 1), l(3), l(5), l(7), l(9)};
  const Tensor<T> x = filled<T>({1, Cc, Hs, Hs}, 11, 1.0);
  const auto t0 = Clock::now();
  for (auto _ : st) benchmark::DoNotOptimize(vae_attention(x, w, 32).data.data());
  set_counters(st, 8.0 * L * Cc * Cc + 4.0 * L * L * Cc, sizeof(T) * (4.0 * Cc * Cc + 2.0 * L * Cc), t0);
}
BENCHMARK(BM_VaeMidAttention<float>)->Arg(64)->Arg(128)->ArgName("H")->Unit(benchmark::kMillisecond)->UseRealTime();

// Upsample2D: nearest x2 fused into a 3x3 conv at the output size.
template <class T>
void BM_VaeUpsample(benchmark::State& st) {
  const int64_t Cc = st.range(0), Hs = st.range(1);
  const Conv2dW<T> w = conv<T>(Cc, Cc, 3, 13);
  const Tensor<T> x = filled<T>({1, Cc, Hs, Hs}, 15, 1.0);
  const auto t0 = Clock::now();
  for (auto _ : st) benchmark::DoNotOptimize(upsample_2d(x, w).data.data());
  const double hw = 4.0 * Hs * Hs;
  set_counters(st, 2 * hw * Cc * 9 * Cc, sizeof(T) * (hw / 4 * Cc + hw * Cc + 9.0 * Cc * Cc), t0);
}
BENCHMARK(BM_VaeUpsample<float>)->Args({512, 64})->Args({512, 128})->Args({256, 256})->ArgNames({"C", "H"})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace zimage::bench

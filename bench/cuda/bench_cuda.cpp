// zimage_bench_cuda: the CUDA path (cuda/) at real Z-Image shapes, timed with CUDA events, each
// configuration validated against the CPU reference before it is timed (bench_cuda_support.h has
// the timing, counter and validation rules; bench/README.md lists the rows and their formulas).
//
// main: --benchmark_list_tests lists the rows and exits 0 without touching a device. Otherwise,
// without a usable device, one line `zimage_bench_cuda: no CUDA device: <why>` on stderr and
// exit 2; with one, it measures the device's peaks first (best cuBLASLt bf16 and fp32 GEMM rates
// over square shapes, device-to-device copy bandwidth), prints them with the device, adds them to
// the run's context and runs Google Benchmark (all its flags work).
//
// Rows:
//   BM_CudaGemmSquare<fp32|bf16>   the peak's GEMMs again, as validated and timed rows
//   BM_CudaCopy                    the peak's copy again
//   BM_CudaLinear<fp32|bf16>       Runtime::linear (cuBLASLt) on the CPU suite's BM_Linear shapes
//   BM_CudaLinearTimed_bf16        the same bf16 shapes with the timed algorithm choice (gemm_lt.h)
//   BM_CudaFlashAttention<..>      flash_attention, every version (ver), at 30 x 128 heads, batch 2
//                                  with and without a key mask, and batch 1 at 4096 + 32 tokens
//   BM_CudaTransformerBlock<..>    run_block: one real-size modulated block
//   BM_CudaDitStep_bf16/1024x1024  CudaModel::forward at Z-Image-Turbo's config, 4096 image tokens,
//                                  with its FLOP-count bound
//   bench_cuda_kernels.cpp: one row per remaining kernel of cuda/kernels/ (rms_norm_modulate,
//   gated_residual, qk_norm_rope, swiglu, silu, final_layer_norm, convert, residual_add,
//   timestep_embedding, patchify_image, fill_rows, unpatchify, rope_gather, embedding_gather,
//   qwen3_qk_norm_rope, im2col_nhwc, group_norm_nhwc, softmax_rows, transpose_batched): its header
//   lists them.
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "bench_cuda_support.h"
#include "../bench_shapes.h"
#include "numerics/row_sample.h"
#include "forward.h"
#include "weight_layout.h"
#include "kernels/flash_attention.h"
#include "dit/rope_limits.h"
#include "dit/synthetic_checkpoint.h"
#include "dit/transformer.h"
#include "dit/attention.h"
#include "nn/linear.h"
#include "dit/patchify.h"
#include "dit/rope.h"
#include "dit/transformer_block.h"
#include "validation/golden_file.h"
#include "validation/golden_inputs.h"
#include "dit/model_folder.h"
#include "dit/module_table.h"

#ifndef ZIMAGE_GOLDEN_DIR
#error "ZIMAGE_GOLDEN_DIR must name the golden/ folder (bench/CMakeLists.txt defines it)"
#endif

namespace zimage::bench::cuda {

namespace {

// The DiT's real sizes, as bench/bench_dit.cpp (main checks them against ZImageConfig's defaults,
// which are Z-Image-Turbo's config.json: tools/cli/cmd_write_synthetic.cpp).

using numerics::rows_of;
using numerics::sample_rows;

// ---------------------------------------------------------------- GEMMs (cuBLASLt)
// linear y = x W^T through gpu::Runtime::linear, no bias (as the CPU BM_Linear): 2 N K M FLOPs;
// bytes es (N K + K M + N M). x uniform in [-1, 1], W in [-1/sqrt(K), 1/sqrt(K)], both rounded to
// the storage dtype on the host so the fp64 reference multiplies the same numbers.
// Validation: rows sampled as in test_cuda_gemm.cpp against linear<double>; budget
// linear(K) at T3 (fp32) or T4 (bf16).

Tensor<float> linear_x(DType dt, int64_t N, int64_t K) { return round_to(dt, uniform({N, K}, 101, 1.0)); }
Tensor<float> linear_w(DType dt, int64_t M, int64_t K) {
  return round_to(dt, uniform({M, K}, 102, 1.0 / std::sqrt(double(K))));
}

struct LinearFixture : Fixture {
  gpu::DeviceTensor x, w, y;
};

void linear_bench(benchmark::State& st, DType dt, int64_t N, int64_t K, int64_t M,
                  gpu::GemmAlgo algo = gpu::GemmAlgo::heuristic) {
  gpu::Runtime& rt = runtime();
  const std::string key = shape_key("linear", dt, {N, K, M});
  gpu::GemmOptions opts;
  opts.algo = algo;
  st.SetLabel(std::string("algorithm ") + gpu::gemm_algo_name(algo));
  LinearFixture* f = nullptr;
  try {
    f = &fixture<LinearFixture>(key, [&] {
      auto p = std::make_unique<LinearFixture>();
      p->x = gpu::upload(linear_x(dt, N, K), dt, rt.staging(), rt.stream());
      p->w = gpu::upload(linear_w(dt, M, K), dt, rt.staging(), rt.stream());
      p->y = gpu::DeviceTensor(dt, {N, M});
      return p;
    });
  } catch (const std::exception& e) {
    st.SkipWithError((std::string("error: ") + e.what()).c_str());
    return;
  }
  auto op = [&] { rt.linear({f->x.data(), K, dt}, f->w.data(), nullptr, {f->y.data(), M, dt}, {N, M, K}, opts); };
  const Verdict& v = verdict(key + " " + gpu::gemm_algo_name(algo), [&] {
    poison(f->y, rt.stream());
    op();
    const Tensor<float> y = gpu::download(f->y, rt.staging(), rt.stream());
    const std::vector<int64_t> rows = sample_rows(N);
    const Tensor<double> ref =
        linear(rows_of(linear_x(dt, N, K), rows).cast<double>(), LinearW<double>{linear_w(dt, M, K).cast<double>(), {}});
    const numerics::Budget b =
        numerics::budget_for(tier_of(dt), {{"linear(K=" + std::to_string(K) + ")", 1, double(K), false}});
    return judge(key + " (" + std::to_string(rows.size()) + " rows) " + numerics::tier_name(tier_of(dt)),
                 numerics::compare(rows_of(y, rows), ref), b);
  });
  if (!require(st, v)) return;
  const double seconds = timed_loop(st, rt.stream(), [] {}, op);
  const double es = double(gpu::dtype_size(dt));
  set_counters(st, 2.0 * N * K * M, es * (double(N) * K + double(K) * M + double(N) * M), seconds, dt);
}

template <class Tag>
void BM_CudaLinear(benchmark::State& st) {
  linear_bench(st, Tag::dt, st.range(0), st.range(1), st.range(2));
}
// Exactly the CPU suite's BM_Linear shapes (bench_shapes.h).
BENCHMARK_TEMPLATE(BM_CudaLinear, fp32)->Apply(dit_linear_args)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_CudaLinear, bf16)->Apply(dit_linear_args)->UseManualTime()->Unit(benchmark::kMillisecond);

// The same shapes with GemmAlgo::timed (gemm_lt.h): beside BM_CudaLinear<bf16>, what timing the
// heuristic's first candidates gains per shape. The choice is made in the validation call, before
// the timed loop.
void BM_CudaLinearTimed_bf16(benchmark::State& st) {
  linear_bench(st, DType::BF16, st.range(0), st.range(1), st.range(2), gpu::GemmAlgo::timed);
}
BENCHMARK(BM_CudaLinearTimed_bf16)->Apply(dit_linear_args)->UseManualTime()->Unit(benchmark::kMillisecond);

// The start-up peak's square GEMMs as benchmark rows (validated like every GEMM; their
// %peak_flops is near 100 by construction, and shows the run-to-run spread of the peak).
template <class Tag>
void BM_CudaGemmSquare(benchmark::State& st) {
  linear_bench(st, Tag::dt, st.range(0), st.range(0), st.range(0));
}
BENCHMARK_TEMPLATE(BM_CudaGemmSquare, fp32)->Arg(4096)->Arg(8192)->ArgName("n")->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_CudaGemmSquare, bf16)->Arg(4096)->Arg(8192)->Arg(16384)->ArgName("n")->UseManualTime()->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------- device copy
// cudaMemcpyAsync device to device of `mib` MiB: no FLOPs; bytes 2 x size (read + write).
// Validation: the copy of uniform fp32 values is bitwise exact (T0).
struct CopyFixture : Fixture {
  gpu::DeviceTensor src, dst;
};
void BM_CudaCopy(benchmark::State& st) {
  gpu::Runtime& rt = runtime();
  const int64_t n = st.range(0) * (int64_t(1) << 20) / 4;  // floats
  const std::string key = shape_key("copy", DType::F32, {n});
  CopyFixture* f = nullptr;
  try {
    f = &fixture<CopyFixture>(key, [&] {
      auto p = std::make_unique<CopyFixture>();
      p->src = gpu::upload(uniform({n}, 103, 1.0), DType::F32, rt.staging(), rt.stream());
      p->dst = gpu::DeviceTensor(DType::F32, {n});
      return p;
    });
  } catch (const std::exception& e) {
    st.SkipWithError((std::string("error: ") + e.what()).c_str());
    return;
  }
  const size_t bytes = size_t(n) * sizeof(float);
  auto op = [&] {
    ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(f->dst.data(), f->src.data(), bytes, cudaMemcpyDeviceToDevice, rt.stream()));
  };
  const Verdict& v = verdict(key, [&] {
    poison(f->dst, rt.stream());
    op();
    const Tensor<float> got = gpu::download(f->dst, rt.staging(), rt.stream()), want = uniform({n}, 103, 1.0);
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; ++i)
      if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0 && bad++ == 0) first = i;
    return Verdict{bad == 0,
                   key + ": " + (bad ? std::to_string(bad) + " floats differ, the first at " + std::to_string(first)
                                     : "bitwise equal (" + std::to_string(n) + " floats)"),
                   0};
  });
  if (!require(st, v)) return;
  const double seconds = timed_loop(st, rt.stream(), [] {}, op);
  set_counters(st, 0, 2.0 * double(bytes), seconds, DType::F32);
}
BENCHMARK(BM_CudaCopy)->Arg(1024)->ArgName("MiB")->UseManualTime()->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------- attention
// flash_attention (each version) on the fused [B*L, 3C] q|k|v layout (weight_layout.h), 30 heads x
// 128, batch 2 of L = img + cap tokens. mask 0: both items full length, no mask; mask 1: a ragged
// batch, the second item's caption half as long (valid length img + cap / 2), its other keys
// masked. FLOPs: q k^T and p v, 4 B H L^2 D (the dense count: masked keys included, softmax not
// counted, as the CPU BM_Sdpa); bytes es x 4 B L C (q, k, v read once, out written once).
// Validation: heads 0 and 29 against scaled_dot_product_attention<double> (with the same mask),
// chain q k^T (K = D) + softmax (K = L) + p v (K = L) at T3 / T4, as test_cuda_attention.cpp.

struct AttnFixture : Fixture {
  gpu::DeviceTensor qkv, out;
  gpu::DeviceBuffer mask;  // int32 [B, L], or empty
};

// q, k, v uniform in [-3, 3] (rms ~1.7; after qk-norm they are O(1): this makes the softmax
// peaked enough to matter, as the tests' randn x 2).
Tensor<float> attn_qkv(DType dt, int64_t rows) { return round_to(dt, uniform({rows, 3 * C}, 104, 3.0)); }

// Heads of [B, L, H, D] kept in `heads`, as [B, L, heads.size(), D].
Tensor<double> select_heads(const Tensor<float>& x, const std::vector<int64_t>& heads) {
  const int64_t B = x.dim(0), L = x.dim(1), Hx = x.dim(2), Dx = x.dim(3), K = int64_t(heads.size());
  Tensor<double> out({B, L, K, Dx});
  for (int64_t n = 0; n < B * L; ++n)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t d = 0; d < Dx; ++d) out[(n * K + k) * Dx + d] = x[(n * Hx + heads[size_t(k)]) * Dx + d];
  return out;
}

template <class Tag>
void BM_CudaFlashAttention(benchmark::State& st) {
  constexpr DType dt = Tag::dt;
  const int64_t img = st.range(0), cap = st.range(1), B = st.range(3), L = img + cap;
  const bool masked = st.range(2) != 0 && B > 1;
  const gpu::AttentionVersion version = gpu::kAttentionVersions[st.range(4)];
  std::vector<int64_t> seqlens(size_t(B), L);
  if (masked) seqlens.back() = img + cap / 2;
  std::string why;
  if (!gpu::attention_supports(version, dt, D, 3 * C, C, &why)) {
    st.SkipWithError((std::string("error: ") + gpu::attention_version_name(version) + ": " + why).c_str());
    return;
  }
  st.SetLabel(gpu::attention_version_name(version));
  const std::string key =
      shape_key("flash_attention", dt, {B, L, seqlens.back()}) + " " + gpu::attention_version_name(version);
  gpu::Runtime& rt = runtime();
  AttnFixture* f = nullptr;
  try {
    f = &fixture<AttnFixture>(key, [&] {
      auto p = std::make_unique<AttnFixture>();
      p->qkv = gpu::upload(attn_qkv(dt, B * L), dt, rt.staging(), rt.stream());
      p->out = gpu::DeviceTensor(dt, {B, L, H, D});
      if (const std::optional<KeyMask> m = key_mask(seqlens)) {
        p->mask = gpu::DeviceBuffer(size_t(m->numel()) * sizeof(int32_t));
        ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(p->mask.get(), m->ptr(), size_t(m->numel()) * sizeof(int32_t),
                                          cudaMemcpyHostToDevice, rt.stream()));
        ZIMAGE_CUDA_CHECK(cudaStreamSynchronize(rt.stream()));
      }
      return p;
    });
  } catch (const std::exception& e) {
    st.SkipWithError((std::string("error: ") + e.what()).c_str());
    return;
  }
  const void* q = f->qkv.data();
  auto op = [&] {
    const gpu::ConstDevRows qkv{q, 3 * C, dt};
    gpu::flash_attention(qkv, qkv.from_col(C), qkv.from_col(2 * C),
                         f->mask.get() ? f->mask.as<const int32_t>() : nullptr, {f->out.data(), C, dt}, {B, L, H, D},
                         rt.stream(), version, &seqlens);
  };
  const Verdict& v = verdict(key, [&] {
    poison(f->out, rt.stream());
    op();
    const Tensor<float> got = gpu::download(f->out, rt.staging(), rt.stream());
    const Tensor<float> qkv = attn_qkv(dt, B * L);
    const Shape heads_shape{B, L, H, D};
    const Tensor<float> qh = gpu::qkv_part(qkv, 0).reshaped(heads_shape), kh = gpu::qkv_part(qkv, 1).reshaped(heads_shape),
                        vh = gpu::qkv_part(qkv, 2).reshaped(heads_shape);
    const std::vector<int64_t> heads{0, H - 1};
    const std::optional<KeyMask> m = key_mask(seqlens);
    const Tensor<double> ref = scaled_dot_product_attention(select_heads(qh, heads), select_heads(kh, heads),
                                                            select_heads(vh, heads), m ? &*m : nullptr);
    const std::vector<numerics::Op> ops{
        {"q k^T", 1, double(D), false}, {"softmax", 2, double(L), true}, {"p v", 1, double(L), false}};
    return judge(key + " heads 0, 29 " + numerics::tier_name(tier_of(dt)), numerics::compare(select_heads(got, heads), ref),
                 numerics::budget_for(tier_of(dt), ops));
  });
  if (!require(st, v)) return;
  const double seconds = timed_loop(st, rt.stream(), [] {}, op);
  const double es = double(gpu::dtype_size(dt));
  set_counters(st, 4.0 * B * H * double(L) * double(L) * D, es * 4.0 * B * double(L) * C, seconds, dt);
}
// ver: the index in gpu::kAttentionVersions (0 v1_simt, 1 mma, 2 cudnn, 3 mma_wide). B 1 without a mask at
// 4096 + 32 tokens is the step's own layer shape (docs/perf/cuda_h200.json attention_tflops).
void attn_args_versions(benchmark::internal::Benchmark* b, std::initializer_list<int64_t> versions) {
  for (int64_t ver : versions) {
    b->Args({4096, 32, 0, 1, ver});
    for (int64_t img : {1024, 4096})
      for (int64_t cap : {32, 512})
        for (int64_t mask : {0, 1}) b->Args({img, cap, mask, 2, ver});
  }
  b->ArgNames({"img", "cap", "mask", "B", "ver"});
}
BENCHMARK_TEMPLATE(BM_CudaFlashAttention, fp32)
    ->Apply([](auto* b) { attn_args_versions(b, {0}); })
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_CudaFlashAttention, bf16)
    ->Apply([](auto* b) { attn_args_versions(b, {0, 1, 2, 3}); })
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------- one block
// run_block (cuda/forward.h) on layers.0 of a Turbo-size model with synthetic bf16-exact weights
// (synthetic_dit_source), batch 1, L = img + cap tokens, no mask, modulated (adaLN input [1, A]):
// the same work as the CPU BM_TransformerBlock. FLOPs 8 L C^2 + 4 L^2 C + 6 L C F + 8 A C (every
// GEMM and both attention products; norms, RoPE, SwiGLU, gates not counted); bytes
// es (4 C^2 + 3 C F + 4 C A + 10 L C), as the CPU row. RoPE positions as the model gives them:
// image tokens (cap + 1, h, w) on a square grid, caption rows (1 + i, 0, 0).
// Each timed run starts from the same x (a device-to-device copy before the flush, not timed:
// the block updates x in place). Validation: the whole block against transformer_block<double>
// on the same (dtype-rounded) x and adaLN input, chain dit_module_ops("layers.0", cfg, L), T3 / T4.
// The fp64 block costs about 2 TFLOP on the host at L 4608: expect seconds per configuration.

template <class T>
Tensor<T> block_freqs(const ZImageConfig& cfg, int64_t img, int64_t cap) {
  const int64_t L = img + cap, side = int64_t(std::lround(std::sqrt(double(img))));
  ZIMAGE_CHECK(side * side == img, "block_freqs: image tokens " + std::to_string(img) + " are not a square grid");
  Tensor<int32_t> ids({L, 3});
  for (int64_t r = 0; r < L; ++r) {
    const bool image = r < img;
    ids[r * 3 + 0] = int32_t(image ? cap + 1 : r - img + 1);
    ids[r * 3 + 1] = int32_t(image ? r / side : 0);
    ids[r * 3 + 2] = int32_t(image ? r % side : 0);
  }
  return rope_embedder(precompute_freqs_cis<T>(cfg.axes_dims, cfg.axes_lens, cfg.rope_theta), ids)
      .reshaped({1, L, cfg.head_dim() / 2, 2});
}
Tensor<float> block_x(DType dt, int64_t L) { return round_to(dt, uniform({1, L, C}, 105, 1.7)); }
Tensor<float> block_adaln(DType dt) { return round_to(dt, uniform({1, A}, 106, 1.7)); }
constexpr uint64_t kWeightSeed = 42;

struct BlockFixture : Fixture {
  gpu::DeviceBlock w;
  gpu::DeviceTensor x0, x, freqs, adaln;
  gpu::BlockScratch scratch;
};

template <class Tag>
void BM_CudaTransformerBlock(benchmark::State& st) {
  constexpr DType dt = Tag::dt;
  const ZImageConfig cfg;  // Turbo
  const int64_t img = st.range(0), cap = st.range(1), L = img + cap;
  const std::string key = shape_key("transformer_block", dt, {L});
  gpu::Runtime& rt = runtime();
  gpu::CudaOptions opts;
  opts.dtype = dt;
  BlockFixture* f = nullptr;
  try {
    f = &fixture<BlockFixture>(key, [&] {
      auto p = std::make_unique<BlockFixture>();
      const auto src = synthetic_dit_source(cfg, kWeightSeed);
      p->w = gpu::upload_block(load_block<float>(*src, "layers.0", true, cfg.qk_norm), dt, rt);
      p->x0 = gpu::upload(block_x(dt, L), dt, rt.staging(), rt.stream());
      p->x = gpu::DeviceTensor(dt, {1, L, C});
      p->freqs = gpu::upload(block_freqs<float>(cfg, img, cap), DType::F32, rt.staging(), rt.stream());
      p->adaln = gpu::upload(block_adaln(dt), dt, rt.staging(), rt.stream());
      return p;
    });
  } catch (const std::exception& e) {
    st.SkipWithError((std::string("error: ") + e.what()).c_str());
    return;
  }
  auto restore = [&] {
    ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(f->x.data(), f->x0.data(), size_t(f->x.numel()) * gpu::dtype_size(dt),
                                      cudaMemcpyDeviceToDevice, rt.stream()));
  };
  auto op = [&] {
    gpu::run_block(rt, f->w, dt, f->x.data(), 1, L, nullptr, nullptr, f->freqs.buf.as<const float>(), f->adaln.data(),
                   cfg.n_heads, cfg.norm_eps, f->scratch, opts);
  };
  const Verdict& v = verdict(key, [&] {
    restore();
    op();
    const Tensor<float> got = gpu::download(f->x, rt.staging(), rt.stream());
    const auto src = synthetic_dit_source(cfg, kWeightSeed);
    const TransformerBlockW<double> wd = load_block<double>(*src, "layers.0", true, cfg.qk_norm);
    const Tensor<double> ad = block_adaln(dt).cast<double>();
    const Tensor<double> ref = transformer_block(block_x(dt, L).cast<double>(), nullptr, block_freqs<double>(cfg, img, cap),
                                                 &ad, wd, cfg.n_heads, cfg.norm_eps);
    return judge(key + " layers.0 " + numerics::tier_name(tier_of(dt)), numerics::compare(got, ref),
                 dit_module_budget(tier_of(dt), "layers.0", cfg, L));
  });
  if (!require(st, v)) return;
  const double seconds = timed_loop(st, rt.stream(), restore, op);
  const double l = double(L), es = double(gpu::dtype_size(dt));
  const double flops = 8.0 * l * C * C + 4.0 * l * l * C + 6.0 * l * C * F + 2.0 * A * 4 * C;
  set_counters(st, flops, es * (4.0 * C * C + 3.0 * C * F + 4.0 * C * A + 10.0 * l * C), seconds, dt);
}
void seq_args(benchmark::internal::Benchmark* b) {
  for (int64_t img : {1024, 4096})
    for (int64_t cap : {32, 512}) b->Args({img, cap});
  b->ArgNames({"img", "cap"});
}
BENCHMARK_TEMPLATE(BM_CudaTransformerBlock, fp32)->Apply(seq_args)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_CudaTransformerBlock, bf16)->Apply(seq_args)->UseManualTime()->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------- the whole DiT step

// FLOPs of one GEMM-and-attention pass of a block over L tokens (batch 1, no mask), as run_block
// computes them:
//   to_qkv (fused q, k, v)   2 L C (3C)
//   q k^T and p v            4 L^2 C       (2 L^2 D each, per head; H D = C)
//   to_out.0                 2 L C C
//   w13 (fused w1, w3)       2 L C (2F)
//   w2                       2 L F C
//   adaLN_modulation         2 A (4C)      (modulated blocks: noise_refiner, layers; one row)
// = 8 L C^2 + 4 L^2 C + 6 L C F (+ 8 A C).
double block_flops(const ZImageConfig& cfg, int64_t L, bool modulated) {
  const double c = cfg.dim, ff = cfg.ffn_hidden(), a = cfg.adaln_dim(), l = double(L);
  return 2 * l * c * (3 * c) + 4 * l * l * c + 2 * l * c * c + 2 * l * c * (2 * ff) + 2 * l * ff * c +
         (modulated ? 2 * a * (4 * c) : 0.0);
}

// FLOPs of one ZImageTransformer2DModel forward at batch 1 (Turbo runs without CFG), every GEMM
// and attention product, on the row counts cuda/forward.cpp uses (Lx image tokens and Lc caption
// tokens, each padded to a multiple of SEQ_MULTI_OF; Lu = Lx + Lc):
//   t_embedder               2 (256 x 1024 + 1024 x A)
//   x_embedder               2 Lx P C            (P = patch_dim = 64)
//   cap_embedder.1           2 Lc cap_feat_dim C
//   noise_refiner            n_refiner x block(Lx, modulated)
//   context_refiner          n_refiner x block(Lc, not modulated)
//   layers                   n_layers x block(Lu, modulated)
//   final layer              2 A C (adaLN) + 2 Lu C P (linear; on every unified row, as diffusers)
// Softmax, norms, RoPE, SwiGLU, gates and residual adds are not counted (as in the CPU suite).
// At 1024x1024 (Lx 4096) with a 128-token caption: about 5.7e13.
double dit_step_flops(const ZImageConfig& cfg, int64_t image_tokens, int64_t caption_tokens) {
  const int64_t lx = pad_to_seq_multiple(image_tokens), lc = pad_to_seq_multiple(caption_tokens), lu = lx + lc;
  const double c = cfg.dim, a = cfg.adaln_dim(), p = cfg.patch_dim();
  double f = 2.0 * (double(T_FREQ_DIM) * T_EMBED_MID + double(T_EMBED_MID) * a);
  f += 2.0 * double(lx) * p * c;
  f += 2.0 * double(lc) * cfg.cap_feat_dim * c;
  f += cfg.n_refiner_layers * (block_flops(cfg, lx, true) + block_flops(cfg, lc, false));
  f += cfg.n_layers * block_flops(cfg, lu, true);
  f += 2.0 * a * c + 2.0 * double(lu) * c * p;
  return f;
}

std::string golden_dir() {
  const char* e = std::getenv("ZIMAGE_GOLDEN_DIR");
  return e && *e ? e : ZIMAGE_GOLDEN_DIR;
}

// Validation of the DiT step: the same code path (CudaModel built from a ParamSource block by
// block, bf16, forward) at the tiny golden config of golden/tiny_single.safetensors, each sample
// against the diffusers fp32 golden with the whole-model T4 budget (module_budget "sample.i"; the
// golden's own fp32 error is far below the bf16 bound).
Verdict check_dit_golden() {
  const std::string path = golden_dir() + "/tiny_single.safetensors";
  const GoldenFile g = open_golden(path);
  gpu::CudaOptions o;
  o.dtype = DType::BF16;
  gpu::CudaModel m(g.config, *g.params, o);
  const DitInputs<float> in = golden_dit_inputs<float>(g);
  const std::vector<Tensor<float>> got = m.forward(in);
  const int64_t L = unified_seq_len(in.x, in.cap_feats, g.config.patch_size(), g.config.f_patch_size());
  Verdict all{true, "", 0};
  for (size_t i = 0; i < got.size(); ++i) {
    const std::string name = "sample." + std::to_string(i);
    const Verdict v = judge("golden " + g.case_name + " " + name + " bf16 T4", numerics::compare(got[i], g.get<double>(name)),
                            dit_module_budget(numerics::Tier::T4, name, g.config, L));
    all.ok = all.ok && v.ok;
    all.line += (all.line.empty() ? "" : "; ") + v.line;
    all.used = std::max(all.used, v.used);
  }
  ZIMAGE_CHECK(!got.empty(), path + ": no samples");
  return all;
}

struct DitFixture : Fixture {
  std::unique_ptr<gpu::CudaModel> model;
};

// CudaModel::forward (cuda/forward.h) at Z-Image-Turbo's config (ZImageConfig's defaults: dim
// 3840, 30 layers, 2 + 2 refiners, 30 heads, cap_feat_dim 2560, patch 2), bf16 storage, synthetic
// bf16-exact weights uploaded block by block (host memory holds one block; 12.3 GB on the device).
// Inputs: one latent [16, 1, side/8, side/8] (side 1024: 4096 image tokens), a caption of `cap`
// tokens x 2560, t = 0.5. The timed interval is the whole forward() call on the model's stream:
// input uploads, RoPE tables, every kernel and GEMM, the output download, and the host work and
// allocations forward() does in between (it synchronizes inside). Counters: step_s, flops
// (dit_step_flops), bound_s = flops / the measured bf16 GEMM peak, bound/step = bound_s / step_s
// (the share of the FLOP-count bound reached; equals %peak_flops / 100); graph_replays and
// eager_steps: how the timed steps' blocks ran (cuda/step_graph.h).
void BM_CudaDitStep_bf16(benchmark::State& st, int64_t side) {
  const ZImageConfig cfg;  // Turbo
  const int64_t cap = st.range(0), lat = side / 8;
  const Verdict& v = verdict("dit golden tiny_single bfloat16", check_dit_golden);
  if (!require(st, v)) return;
  DitFixture* f = nullptr;
  try {
    f = &fixture<DitFixture>("dit turbo bfloat16", [&] {
      std::fprintf(stderr, "zimage_bench_cuda: building the Turbo-size CudaModel (bf16, synthetic weights, %d + %d + %d blocks)\n",
                   cfg.n_refiner_layers, cfg.n_refiner_layers, cfg.n_layers);
      auto p = std::make_unique<DitFixture>();
      gpu::CudaOptions o;
      o.dtype = DType::BF16;
      p->model = std::make_unique<gpu::CudaModel>(cfg, *synthetic_dit_source(cfg, kWeightSeed), o);
      return p;
    });
  } catch (const std::exception& e) {
    st.SkipWithError((std::string("error: ") + e.what()).c_str());
    return;
  }
  DitInputs<float> in;
  in.x.push_back(uniform({cfg.in_channels, 1, lat, lat}, 107, 1.7));
  in.cap_feats.push_back(uniform({cap, cfg.cap_feat_dim}, 108, 1.7));
  in.t = Tensor<float>({1}, std::vector<float>{0.5f});
  gpu::CudaModel& m = *f->model;
  const gpu::AttentionVersion version = st.range(1) == 1   ? gpu::AttentionVersion::mma
                                        : st.range(1) == 4 ? gpu::AttentionVersion::mma_wide
                                                           : gpu::AttentionVersion::automatic;
  // attn 3: the dispatcher's choice without the CUDA graph (every kernel launched each step).
  const bool graph = st.range(1) != 3;
  m.set_graph(graph);
  // attn 5: the dispatcher's choice with the timed cuBLASLt algorithms (gemm_lt.h GemmAlgo::timed;
  // chosen in the warm-up steps); every other row the heuristic's first.
  const gpu::GemmAlgo gemm_algo = st.range(1) == 5 ? gpu::GemmAlgo::timed : gpu::GemmAlgo::heuristic;
  m.set_gemm_algo(gemm_algo);
  try {
    m.set_attention(version);
  } catch (const std::exception& e) {
    st.SkipWithError((std::string("error: ") + e.what()).c_str());
    return;
  }
  st.SetLabel(std::string("attention ") +
              gpu::attention_version_name(gpu::resolve_attention(version, DType::BF16, cfg.head_dim(), 3 * C, C)) +
              (graph ? "" : ", no CUDA graph") + (gemm_algo == gpu::GemmAlgo::timed ? ", timed GEMM algorithms" : ""));
  // attn 2: the breakdown row (step_profile.h): events around every GEMM and attention call.
  const bool breakdown = st.range(1) == 2;
  m.runtime().profile().enable(breakdown);
  std::array<double, gpu::StepProfile::kParts> parts{};
  auto op = [&] {
    const std::vector<Tensor<float>> out = m.forward(in);
    benchmark::DoNotOptimize(out.data());
    if (breakdown) {
      const auto p = m.runtime().profile().collect();
      for (int k = 0; k < gpu::StepProfile::kParts; ++k) parts[size_t(k)] += p[size_t(k)];
    }
  };
  // Three untimed steps first: RoPE tables, cuBLASLt algorithms and cuDNN plans (about 0.5 s per new
  // attention shape) are built once per shape, not per step; the CUDA graph of the step is captured
  // in the second or third (step_graph.h: eager first, captured when the key comes again).
  try {
    op();
    op();
    op();
  } catch (const std::exception& e) {
    m.runtime().profile().enable(false);
    st.SkipWithError((std::string("error in the warm-up steps: ") + e.what()).c_str());
    return;
  }
  parts = {};
  const gpu::GraphCounts before = m.graph_counts();
  const double seconds = timed_loop(st, m.runtime().stream(), [] {}, op);
  m.runtime().profile().enable(false);
  // How the timed steps ran (replays: the CUDA graph; eager: launched kernel by kernel).
  st.counters["graph_replays"] = double(m.graph_counts().replayed - before.replayed);
  st.counters["eager_steps"] = double(m.graph_counts().eager - before.eager);
  if (breakdown && seconds > 0) {
    const double n = double(st.iterations()), step_ms = 1e3 * seconds / n;
    double named = 0;
    for (int k = 0; k < gpu::StepProfile::kParts; ++k) {
      st.counters[std::string(gpu::StepProfile::part_name(gpu::StepProfile::Part(k))) + "_ms"] = parts[size_t(k)] / n;
      named += parts[size_t(k)] / n;
    }
    st.counters["rest_ms"] = step_ms - named;
  }
  const int64_t tokens = (lat / cfg.patch_size()) * (lat / cfg.patch_size());
  const double flops = dit_step_flops(cfg, tokens, cap);
  set_counters(st, flops, 0, seconds, DType::BF16);
  if (seconds > 0 && peak().bf16_gemm > 0) {
    const double step = seconds / double(st.iterations()), bound = flops / peak().bf16_gemm;
    st.counters["step_s"] = step;
    st.counters["flops"] = flops;
    st.counters["bound_s"] = bound;
    st.counters["bound/step"] = bound / step;
  }
}
// attn 0: the dispatcher's choice (auto); 1: the project's own mma kernel forced; 2: auto with the
// per-step breakdown (gemm_ms, attention_ms, norms_ms, qk_norm_rope_ms, swiglu_ms and rest_ms from
// CUDA events, step_profile.h; its own time includes the
// events' cost, so the step time is row 0's; the events turn the CUDA graph off); 3: auto without
// the CUDA graph (cuda/step_graph.h), for the graph's gain side by side with row 0; 4: mma_wide
// forced (beside row 1: which tiling of the project's kernel makes the faster step); 5: auto with
// GemmAlgo::timed (beside row 0: what timing the cuBLASLt candidates gains the step).
BENCHMARK_CAPTURE(BM_CudaDitStep_bf16, 1024x1024, 1024)
    ->Args({128, 0})
    ->Args({512, 0})
    ->Args({128, 1})
    ->Args({128, 2})
    ->Args({128, 3})
    ->Args({128, 4})
    ->Args({128, 5})
    ->ArgNames({"cap", "attn"})
    ->Iterations(6)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------- peaks (start-up)

// Best rate of `reps` event-timed runs of op (after one warm-up run), no L2 flush (the shapes are
// far larger than L2).
template <class Op>
double best_seconds(cudaStream_t s, int reps, Op&& op) {
  op();
  ZIMAGE_CUDA_CHECK(cudaStreamSynchronize(s));
  EventTimer t;
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < reps; ++r) best = std::min(best, t.time(s, op, false));
  return best;
}

// Square GEMM y = x x^T through Runtime::linear (the library's own cuBLASLt path and options:
// fp32 accumulation, TF32 off, no split-K), x uniform in [-1, 1] (not zeros: tensor-core clocks
// depend on the data).
double gemm_peak(DType dt, const std::vector<int64_t>& sizes) {
  gpu::Runtime& rt = runtime();
  double best = 0;
  for (int64_t n : sizes) {
    const gpu::DeviceTensor x = gpu::upload(uniform({n, n}, 109, 1.0), dt, rt.staging(), rt.stream());
    const gpu::DeviceTensor y(dt, {n, n});
    const double s = best_seconds(rt.stream(), 5, [&] {
      rt.linear({x.data(), n, dt}, x.data(), nullptr, {y.data(), n, dt}, {n, n, n});
    });
    best = std::max(best, 2.0 * double(n) * double(n) * double(n) / s);
  }
  return best;
}

double copy_peak(size_t bytes) {
  gpu::Runtime& rt = runtime();
  const gpu::DeviceBuffer a(bytes), b(bytes);
  ZIMAGE_CUDA_CHECK(cudaMemsetAsync(a.get(), 1, bytes, rt.stream()));
  const double s = best_seconds(rt.stream(), 10, [&] {
    ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice, rt.stream()));
  });
  return 2.0 * double(bytes) / s;
}

void measure_peaks() {
  DevicePeak& p = peak();
  int dev = 0, l2 = 0;
  ZIMAGE_CUDA_CHECK(cudaGetDevice(&dev));
  ZIMAGE_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
  p.device = gpu::describe_device();
  p.l2_bytes = l2;
  p.bf16_gemm = gemm_peak(DType::BF16, {4096, 8192, 16384});
  p.fp32_gemm = gemm_peak(DType::F32, {4096, 8192});
  p.copy_bytes_per_s = copy_peak(size_t(1) << 30);
  runtime().staging() = gpu::DeviceBuffer();  // the peak's 1 GiB staging is not needed again
}

}  // namespace
}  // namespace zimage::bench::cuda

int main(int argc, char** argv) {
  using namespace zimage;
  using namespace zimage::bench;
  using namespace zimage::bench::cuda;
  // --benchmark_list_tests only prints the row names: it needs no device (Initialize consumes the
  // flag, so look for it first).
  bool list_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    list_only = list_only || a == "--benchmark_list_tests" || a == "--benchmark_list_tests=true" ||
                a == "--benchmark_list_tests=1";
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (list_only) {
    benchmark::RunSpecifiedBenchmarks();  // lists, runs nothing
    benchmark::Shutdown();
    return 0;
  }
  std::string why;
  if (!gpu::device_available(&why)) {
    std::fprintf(stderr, "zimage_bench_cuda: no CUDA device: %s\n", why.c_str());
    return 2;
  }
  try {
    const ZImageConfig turbo;
    ZIMAGE_CHECK(turbo.dim == C && turbo.ffn_hidden() == F && turbo.n_heads == H && turbo.head_dim() == D &&
                     turbo.adaln_dim() == A && turbo.cap_feat_dim == CAP,
                 "the benchmark's shape constants differ from ZImageConfig's (Turbo) defaults");
    measure_peaks();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zimage_bench_cuda: measuring the device's peak failed: %s\n", e.what());
    return 1;
  }
  const DevicePeak& p = peak();
  std::fprintf(stderr,
               "zimage_bench_cuda: %s; L2 %.1f MiB; measured peak %.1f TFLOP/s bf16 GEMM, %.1f TFLOP/s fp32 GEMM "
               "(TF32 off), %.1f GB/s device copy\n",
               p.device.c_str(), double(p.l2_bytes) / double(1 << 20), p.bf16_gemm / 1e12, p.fp32_gemm / 1e12,
               p.copy_bytes_per_s / 1e9);
  benchmark::AddCustomContext("device", p.device);
  benchmark::AddCustomContext("l2_bytes", std::to_string(p.l2_bytes));
  benchmark::AddCustomContext("peak_bf16_gemm_tflops", std::to_string(p.bf16_gemm / 1e12));
  benchmark::AddCustomContext("peak_fp32_gemm_tflops", std::to_string(p.fp32_gemm / 1e12));
  benchmark::AddCustomContext("peak_copy_gbs", std::to_string(p.copy_bytes_per_s / 1e9));
  {
    std::string cudnn_why;
    const bool cudnn = gpu::attention_supports(gpu::AttentionVersion::cudnn, gpu::DType::BF16, D, 3 * C, C, &cudnn_why);
    benchmark::AddCustomContext("cudnn_attention", cudnn ? "available" : cudnn_why);
    std::fprintf(stderr, "zimage_bench_cuda: cuDNN attention %s\n", cudnn ? "available" : cudnn_why.c_str());
  }
  benchmark::RunSpecifiedBenchmarks();
  release_fixture();  // device memory back before the process tears the context down
  benchmark::Shutdown();
  return 0;
}

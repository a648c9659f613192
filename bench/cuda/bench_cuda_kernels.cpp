// zimage_bench_cuda: one row per CUDA kernel that bench_cuda.cpp does not time on its own (the
// elementwise, row, layout and VAE kernels of cuda/kernels/), at real Z-Image shapes. The rules are
// bench_cuda_support.h's: L2 flushed before each timed run, CUDA events, UseManualTime; no FLOP
// counter (these kernels are bandwidth-bound): B/s and %peak_bw from the minimum traffic written
// next to each row (every input read once, every output written once, es = the storage dtype's
// size); each configuration is run once and compared with the kernel's `// Twin:` reference on the
// same (dtype-rounded) inputs before it is timed: copies bitwise (T0), arithmetic kernels against the
// fp64 twin with the chain's budget at T3 (fp32) or T4 (bf16), as tests/cuda/ does.
// In-place kernels restore their input before each run (a device-to-device copy, not timed).
//
// Rows (DiT: 4096 image + 32 caption tokens, C 3840, 30 heads x 128, F 10240; Qwen3: 512 tokens,
// 2560 wide, 32 heads, 8 KV heads, head_dim 128; VAE: 128 x 128 x 512 NHWC, 32 groups):
//   BM_CudaRmsNormModulate<..>  rms_norm_modulate       BM_CudaGatedResidual<..>    gated_residual
//   BM_CudaGatedResidualRmsNorm<..> gated_residual_rms_norm (the two above fused; compare with their sum)
//   BM_CudaQkNormRope<..>       qk_norm_rope            BM_CudaSwiglu<..>           swiglu
//   BM_CudaSilu<..>             silu                    BM_CudaFinalLayerNorm<..>   final_layer_norm
//   BM_CudaConvert<bf16>        convert_from_f32 / convert_to_f32
//   BM_CudaResidualAdd<..>      residual_add            BM_CudaTimestepEmbedding<..> timestep_embedding
//   BM_CudaPatchify<..>         patchify_image          BM_CudaFillRows<..>         fill_rows
//   BM_CudaUnpatchify<..>       unpatchify              BM_CudaRopeGather           rope_gather_async
//   BM_CudaEmbeddingGather<bf16> embedding_gather       BM_CudaQwen3QkNormRope<..>  qwen3_qk_norm_rope
//   BM_CudaIm2col<..>           im2col_nhwc             BM_CudaGroupNorm<..>        group_norm_nhwc
//   BM_CudaSoftmaxRows<..>      softmax_rows            BM_CudaTransposeBatched<..> transpose_batched
//   BM_CudaUpsampleNearest<..>  upsample_nearest_nhwc   BM_CudaVaeConv<..>          conv2d_nhwc (im2col | cudnn;
//                                                       the one row with a FLOP counter: a GEMM-sized conv)
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>

#include "bench_cuda_support.h"
#include "numerics/row_sample.h"
#include "qwen3_rope_table.h"
#include "vae_cuda.h"
#include "weight_layout.h"
#include "kernels/convert.h"
#include "kernels/embedding.h"
#include "kernels/final_layer_norm.h"
#include "kernels/gated_residual.h"
#include "kernels/group_norm.h"
#include "kernels/im2col.h"
#include "kernels/patchify.h"
#include "kernels/qk_norm_rope.h"
#include "kernels/qwen3_qk_norm_rope.h"
#include "kernels/residual_add.h"
#include "kernels/rms_norm_modulate.h"
#include "kernels/rope_gather.h"
#include "kernels/softmax_rows.h"
#include "kernels/swiglu.h"
#include "kernels/timestep_embedding.h"
#include "kernels/transpose.h"
#include "kernels/upsample.h"
#include "dit/patchify.h"
#include "dit/rope.h"
#include "dit/timestep_embedder.h"
#include "dit/transformer_block.h"
#include "nn/common.h"
#include "nn/norms.h"
#include "nn/softmax.h"
#include "text_encoder/qwen3_config.h"
#include "text_encoder/qwen3_modules.h"
#include "vae/config.h"
#include "vae/layers.h"
#include "vae/module_table.h"

namespace zimage::bench::cuda {
namespace {

// The DiT's and Qwen3's real sizes (Z-Image-Turbo's config.json; ZImageConfig and Qwen3Config
// defaults).
constexpr int64_t kImg = 4096, kCap = 32, kL = kImg + kCap, kC = 3840, kH = 30, kD = 128, kF = 10240;
constexpr int64_t kQwenL = 512, kQwenH = 32, kQwenG = 8, kQwenD = 128, kQwenC = 2560;

// ---------------------------------------------------------------- the common row

// The fixture of `key` (made by make()), or nullptr after skipping the benchmark with the error.
// Seconds of measured (event) time per row: the kernels run for microseconds and every iteration
// also flushes L2 and synchronizes outside the events, so Google Benchmark's default 0.5 s would
// cost 2-3 s of wall time per row and push the 52 rows past tools/gpu-check.sh --full's bench
// budget (270 s for the whole benchmark). 0.05 s is still thousands of iterations of a 10 us kernel.
constexpr double kKernelMinTime = 0.05;

template <class F, class Make>
F* get_fixture(benchmark::State& st, const std::string& key, Make&& make) {
  try {
    return &fixture<F>(key, std::forward<Make>(make));
  } catch (const std::exception& e) {
    st.SkipWithError((std::string("error: ") + e.what()).c_str());
    return nullptr;
  }
}

// Validates `key` once (check() runs prepare and op itself), then times op() after prepare() with
// the bandwidth counters of `bytes` minimum traffic per run.
template <class Prepare, class Op>
void validate_and_time(benchmark::State& st, const std::string& key, DType dt, Prepare&& prepare, Op&& op,
                       const std::function<Verdict()>& check, double bytes) {
  const Verdict& v = verdict(key, check);
  if (!require(st, v)) return;
  const double seconds = timed_loop(st, runtime().stream(), prepare, op);
  set_counters(st, 0, bytes, seconds, dt);
}

// T0: every value bitwise equal (a copy kernel), as BM_CudaCopy.
Verdict exact(const std::string& what, const Tensor<float>& got, const Tensor<float>& want) {
  if (got.numel() != want.numel())
    return {false, what + ": " + std::to_string(got.numel()) + " values, the reference has " + std::to_string(want.numel()), 0};
  int64_t bad = 0, first = -1;
  for (int64_t i = 0; i < got.numel(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0 && bad++ == 0) first = i;
  return {bad == 0,
          what + " T0: " + (bad ? std::to_string(bad) + " values differ, the first at " + std::to_string(first)
                                : "bitwise equal (" + std::to_string(got.numel()) + " values)"),
          0};
}

// T3 (fp32) / T4 (bf16) against the fp64 twin with the chain `ops`.
Verdict within_budget(const std::string& what, DType dt, const Tensor<float>& got, const Tensor<double>& ref,
                      const std::vector<numerics::Op>& ops) {
  return judge(what + " " + numerics::tier_name(tier_of(dt)), numerics::compare(got.reshaped(ref.shape), ref),
               numerics::budget_for(tier_of(dt), ops));
}

numerics::Op op_rms(double K) { return {"rms_norm(K=" + std::to_string(int64_t(K)) + ")", 3, K, true}; }
numerics::Op op_elem(const std::string& n, bool transcendental = false) { return {n, 1, 1, transcendental}; }

Tensor<float> download(const gpu::DeviceTensor& t) { return gpu::download(t, runtime().staging(), runtime().stream()); }
gpu::DeviceTensor upload(const Tensor<float>& t, DType dt) {
  return gpu::upload(t, dt, runtime().staging(), runtime().stream());
}
void copy_d2d(void* dst, const void* src, size_t bytes) {
  ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, runtime().stream()));
}
void copy_d2d(const gpu::DeviceTensor& dst, const gpu::DeviceTensor& src) {
  copy_d2d(dst.data(), src.data(), size_t(src.numel()) * gpu::dtype_size(src.dtype));
}
template <class T>
gpu::DeviceBuffer upload_raw(const std::vector<T>& v) {
  gpu::DeviceBuffer b(v.size() * sizeof(T));
  ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(b.get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice, runtime().stream()));
  ZIMAGE_CUDA_CHECK(cudaStreamSynchronize(runtime().stream()));
  return b;
}
double es_of(DType dt) { return double(gpu::dtype_size(dt)); }

// Columns [c0, c0 + width) of the rows of t ([rows, ld] flattened), as `shape`.
Tensor<float> columns(const Tensor<float>& t, int64_t ld, int64_t c0, int64_t width, Shape shape) {
  const int64_t rows = t.numel() / ld;
  Tensor<float> out({rows, width});
  for (int64_t r = 0; r < rows; ++r) std::copy(t.ptr() + r * ld + c0, t.ptr() + r * ld + c0 + width, out.ptr() + r * width);
  return out.reshaped(std::move(shape));
}

// 1 + v for each value of t, in double.
Tensor<double> one_plus(const Tensor<float>& t) {
  Tensor<double> d = t.cast<double>();
  for (auto& v : d.data) v += 1;
  return d;
}

// The DiT's RoPE positions for img + cap tokens, as the model gives them: image tokens
// (cap + 1, h, w) on a square grid, caption rows (1 + i, 0, 0).
Tensor<int32_t> dit_rope_ids(int64_t img, int64_t cap) {
  const int64_t side = int64_t(std::lround(std::sqrt(double(img))));
  Tensor<int32_t> ids({img + cap, 3});
  for (int64_t r = 0; r < img + cap; ++r) {
    const bool image = r < img;
    ids[r * 3 + 0] = int32_t(image ? cap + 1 : r - img + 1);
    ids[r * 3 + 1] = int32_t(image ? r / side : 0);
    ids[r * 3 + 2] = int32_t(image ? r % side : 0);
  }
  return ids;
}

// ---------------------------------------------------------------- DiT row kernels
// x [1, L, C] uniform in [-2, 2], weight 1 + [-0.2, 0.2], the adaLN output [1, 4C] in [-0.5, 0.5]
// (scale_msa chunk 2, gate chunk 3, read through a view of row stride 4C as the block does).

Tensor<float> row_x(DType dt) { return round_to(dt, uniform({1, kL, kC}, 201, 2.0)); }
Tensor<float> row_y(DType dt) { return round_to(dt, uniform({1, kL, kC}, 202, 3.0)); }
Tensor<float> row_w(DType dt) {
  Tensor<float> w = uniform({kC}, 203, 0.2);
  for (auto& v : w.data) v += 1;
  return round_to(dt, w);
}
Tensor<float> row_mod(DType dt) { return round_to(dt, uniform({1, 4 * kC}, 204, 0.5)); }
Tensor<float> mod_chunk(const Tensor<float>& mod, int j) {
  return Tensor<float>({1, kC}, std::vector<float>(mod.ptr() + j * kC, mod.ptr() + (j + 1) * kC));
}

struct RowFixture : Fixture {
  gpu::DeviceTensor x, x0, y, w, mod, out;
};

// The gated-residual kernels' fixture: x restored from x0 before each run, y, weight, the four
// adaLN chunks, and optionally h.
std::unique_ptr<RowFixture> gated_residual_fixture(DType dt, bool with_out) {
  auto p = std::make_unique<RowFixture>();
  p->x0 = upload(row_x(dt), dt);
  p->x = gpu::DeviceTensor(dt, {1, kL, kC});
  p->y = upload(row_y(dt), dt);
  p->w = upload(row_w(dt), dt);
  p->mod = upload(row_mod(dt), dt);
  if (with_out) p->out = gpu::DeviceTensor(dt, {1, kL, kC});
  return p;
}

// Twin of gated_residual with gate_mlp (chunk 3): x + tanh(gate) * rms_norm(y) * w, and its chain.
Tensor<double> gated_residual_twin(DType dt) {
  Tensor<double> ref = row_x(dt).cast<double>();
  Tensor<double> g = mod_chunk(row_mod(dt), 3).cast<double>();
  for (auto& v : g.data) v = std::tanh(v);
  add_gated(ref, &g, rms_norm(row_y(dt).cast<double>(), row_w(dt).cast<double>(), kDitNormEps));
  return ref;
}
std::vector<numerics::Op> gated_residual_ops() {
  return {op_rms(double(kC)), op_elem("tanh", true), op_elem("gated residual")};
}

// rms_norm_modulate at [1, 4128, 3840] (mod 1: scale_mlp applied; mod 0: rms_norm alone).
// Bytes es (2 L C + C [+ C]). Twin: rms_norm, then mul_rows(h, 1 + scale); chain rms(C) + scale.
template <class Tag>
void BM_CudaRmsNormModulate(benchmark::State& st) {
  constexpr DType dt = Tag::dt;
  const bool modulated = st.range(0) != 0;
  gpu::Runtime& rt = runtime();
  const std::string key = shape_key("rms_norm_modulate", dt, {kL, kC, int64_t(modulated)});
  RowFixture* f = get_fixture<RowFixture>(st, key, [&] {
    auto p = std::make_unique<RowFixture>();
    p->x = upload(row_x(dt), dt);
    p->w = upload(row_w(dt), dt);
    p->mod = upload(row_mod(dt), dt);
    p->out = gpu::DeviceTensor(dt, {1, kL, kC});
    return p;
  });
  if (!f) return;
  auto op = [&] {
    const gpu::ConstDevRows scale =
        modulated ? gpu::ConstDevRows(f->mod.data(), 4 * kC, dt).from_col(2 * kC) : gpu::ConstDevRows();
    gpu::rms_norm_modulate({f->x.data(), kC, dt}, f->w.data(), scale, {kL, kL, kC}, kDitNormEps,
                           {f->out.data(), kC, dt}, rt.stream());
  };
  validate_and_time(st, key, dt, [] {}, op, [&] {
    poison(f->out, rt.stream());
    op();
    Tensor<double> ref = rms_norm(row_x(dt).cast<double>(), row_w(dt).cast<double>(), kDitNormEps);
    std::vector<numerics::Op> ops{op_rms(double(kC))};
    if (modulated) {
      mul_rows(ref, one_plus(mod_chunk(row_mod(dt), 2)));
      ops.push_back(op_elem("scale"));
    }
    return within_budget(key, dt, download(f->out), ref, ops);
  }, es_of(dt) * (2.0 * kL * kC + kC + (modulated ? kC : 0)));
}
BENCHMARK_TEMPLATE(BM_CudaRmsNormModulate, fp32)->Arg(0)->Arg(1)->ArgName("mod")->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_CudaRmsNormModulate, bf16)->Arg(0)->Arg(1)->ArgName("mod")->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);

// gated_residual at [1, 4128, 3840], x in place (restored before each run), gate_mlp chunk 3.
// Bytes es (3 L C + 2 C): x read and written, y read, weight and gate. Twin: rms_norm, then
// add_gated with tanh(gate); chain rms(C) + tanh + gated residual.
template <class Tag>
void BM_CudaGatedResidual(benchmark::State& st) {
  constexpr DType dt = Tag::dt;
  gpu::Runtime& rt = runtime();
  const std::string key = shape_key("gated_residual", dt, {kL, kC});
  RowFixture* f = get_fixture<RowFixture>(st, key, [&] { return gated_residual_fixture(dt, false); });
  if (!f) return;
  auto prepare = [&] { copy_d2d(f->x, f->x0); };
  auto op = [&] {
    gpu::gated_residual({f->x.data(), kC, dt}, {f->y.data(), kC, dt}, f->w.data(),
                        gpu::ConstDevRows(f->mod.data(), 4 * kC, dt).from_col(3 * kC), {kL, kL, kC}, kDitNormEps,
                        rt.stream());
  };
  validate_and_time(st, key, dt, prepare, op, [&] {
    prepare();
    op();
    return within_budget(key, dt, download(f->x), gated_residual_twin(dt), gated_residual_ops());
  }, es_of(dt) * (3.0 * kL * kC + 2.0 * kC));
}
BENCHMARK_TEMPLATE(BM_CudaGatedResidual, fp32)->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_CudaGatedResidual, bf16)->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);

// gated_residual_rms_norm at [1, 4128, 3840]: gated_residual (gate_mlp, chunk 3) then
// rms_norm_modulate of the new x (scale_msa, chunk 0; weight row_w again) into h, one kernel; x in
// place (restored before each run). Bytes es (4 L C + 4 C): x read and written, y read, h written;
// the pair of kernels moves es (5 L C + 4 C). Twin: add_gated, then rms_norm + mul_rows; x checked
// with gated_residual's chain, h with that chain + rms(C) + scale.
template <class Tag>
void BM_CudaGatedResidualRmsNorm(benchmark::State& st) {
  constexpr DType dt = Tag::dt;
  gpu::Runtime& rt = runtime();
  const std::string key = shape_key("gated_residual_rms_norm", dt, {kL, kC});
  RowFixture* f = get_fixture<RowFixture>(st, key, [&] { return gated_residual_fixture(dt, true); });
  if (!f) return;
  auto prepare = [&] { copy_d2d(f->x, f->x0); };
  auto op = [&] {
    const gpu::ConstDevRows mods(f->mod.data(), 4 * kC, dt);
    gpu::gated_residual_rms_norm(
        {f->x.data(), kC, dt}, {f->y.data(), kC, dt}, {f->w.data(), mods.from_col(3 * kC), kDitNormEps},
        {f->w.data(), mods.from_col(0), kDitNormEps}, {f->out.data(), kC, dt}, {kL, kL, kC}, rt.stream());
  };
  validate_and_time(st, key, dt, prepare, op, [&] {
    prepare();
    poison(f->out, rt.stream());
    op();
    const Tensor<double> x_ref = gated_residual_twin(dt);
    Tensor<double> h_ref = rms_norm(x_ref, row_w(dt).cast<double>(), kDitNormEps);
    mul_rows(h_ref, one_plus(mod_chunk(row_mod(dt), 0)));
    const std::vector<numerics::Op> x_ops = gated_residual_ops();
    std::vector<numerics::Op> h_ops = x_ops;
    h_ops.push_back(op_rms(double(kC)));
    h_ops.push_back(op_elem("scale"));
    const Verdict vx = within_budget(key + " x", dt, download(f->x), x_ref, x_ops);
    Verdict vh = within_budget(key + " h", dt, download(f->out), h_ref, h_ops);
    return Verdict{vx.ok && vh.ok, vx.line + "; " + vh.line, std::max(vx.used, vh.used)};
  }, es_of(dt) * (4.0 * kL * kC + 4.0 * kC));
}
BENCHMARK_TEMPLATE(BM_CudaGatedResidualRmsNorm, fp32)->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_CudaGatedResidualRmsNorm, bf16)->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);

// final_layer_norm at [1, 4128, 3840] with the adaLN scale [1, C] (chunk 1), eps 1e-6.
// Bytes es (2 L C + C). Twin: layer_norm(x, 1e-6) * (1 + scale); chain layer_norm(2C) + scale.
template <class Tag>
void BM_CudaFinalLayerNorm(benchmark::State& st) {
  constexpr DType dt = Tag::dt;
  gpu::Runtime& rt = runtime();
  const std::string key = shape_key("final_layer_norm", dt, {kL, kC});
  RowFixture* f = get_fixture<RowFixture>(st, key, [&] {
    auto p = std::make_unique<RowFixture>();
    p->x = upload(row_x(dt), dt);
    p->mod = upload(mod_chunk(row_mod(dt), 1), dt);
    p->out = gpu::DeviceTensor(dt, {1, kL, kC});
    return p;
  });
  if (!f) return;
  auto op = [&] {
    gpu::final_layer_norm({f->x.data(), kC, dt}, {f->mod.data(), kC, dt}, {kL, kL, kC}, kFinalNormEps,
                          {f->out.data(), kC, dt}, rt.stream());
  };
  validate_and_time(st, key, dt, [] {}, op, [&] {
    poison(f->out, rt.stream());
    op();
    Tensor<double> ref = layer_norm(row_x(dt).cast<double>(), kFinalNormEps);
    mul_rows(ref, one_plus(mod_chunk(row_mod(dt), 1)));
    return within_budget(key, dt, download(f->out), ref,
                         {{"layer_norm", 3, 2.0 * double(kC), true}, op_elem("scale")});
  }, es_of(dt) * (2.0 * kL * kC + kC));
}
BENCHMARK_TEMPLATE(BM_CudaFinalLayerNorm, fp32)->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_CudaFinalLayerNorm, bf16)->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------- SwiGLU, SiLU, residual add

struct EltFixture : Fixture {
  gpu::DeviceTensor a, a0, b, out;
};

// swiglu on the fused w13 output [4128, 2F] -> [4128, F], F 10240. Bytes es 3 N F.
// Twin: feed_forward's silu(h1) * h3; chain silu + gate mul.
Tensor<float> swiglu_h13(DType dt) { return round_to(dt, uniform({kL, 2 * kF}, 211, 4.0)); }
template <class Tag>
void BM_CudaSwiglu(benchmark::State& st) {
  constexpr DType dt = Tag::dt;
  gpu::Runtime& rt = runtime();
  const std::string key = shape_key("swiglu", dt, {kL, kF});
  EltFixture* f = get_fixture<EltFixture>(st, key, [&] {
    auto p = std::make_unique<EltFixture>();
    p->a = upload(swiglu_h13(dt), dt);
    p->out = gpu::DeviceTensor(dt, {kL, kF});
    return p;
  });
  if (!f) return;
  auto op = [&] { gpu::swiglu(dt, f->a.data(), kL, kF, f->out.data(), rt.stream()); };
  validate_and_time(st, key, dt, [] {}, op, [&] {
    poison(f->out, rt.stream());
    op();
    const Tensor<float> h13 = swiglu_h13(dt);
    Tensor<double> ref({kL, kF});
    for (int64_t n = 0; n < kL; ++n)
      for (int64_t j = 0; j < kF; ++j) ref[n * kF + j] = silu(double(h13[n * 2 * kF + j])) * double(h13[n * 2 * kF + kF + j]);
    return within_budget(key, dt, download(f->out), ref, {{"silu", 2, 1, true}, op_elem("gate mul")});
  }, es_of(dt) * 3.0 * kL * kF);
}
BENCHMARK_TEMPLATE(BM_CudaSwiglu, fp32)->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_CudaSwiglu, bf16)->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);

// silu of n values, out of place: n 3840 is the model's own use (the final layer's adaLN SiLU on
// [1, C]; t_embedder's is [1, 1024]), n 4128 x 10240 the bandwidth of a large one. Bytes es 2 n.
// Twin: nn/common.h silu; chain silu.
template <class Tag>
void BM_CudaSilu(benchmark::State& st) {
  constexpr DType dt = Tag::dt;
  const int64_t n = st.range(0);
  gpu::Runtime& rt = runtime();
  const std::string key = shape_key("silu", dt, {n});
  auto input = [&] { return round_to(dt, uniform({n}, 212, 4.0)); };
  EltFixture* f = get_fixture<EltFixture>(st, key, [&] {
    auto p = std::make_unique<EltFixture>();
    p->a = upload(input(), dt);
    p->out = gpu::DeviceTensor(dt, {n});
    return p;
  });
  if (!f) return;
  auto op = [&] { gpu::silu(dt, f->a.data(), f->out.data(), n, rt.stream()); };
  validate_and_time(st, key, dt, [] {}, op, [&] {
    poison(f->out, rt.stream());
    op();
    const Tensor<float> x = input();
    Tensor<double> ref({n});
    for (int64_t i = 0; i < n; ++i) ref[i] = silu(double(x[i]));
    return within_budget(key, dt, download(f->out), ref, {{"silu", 2, 1, true}});
  }, es_of(dt) * 2.0 * double(n));
}
BENCHMARK_TEMPLATE(BM_CudaSilu, fp32)->Arg(kC)->Arg(kL * kF)->ArgName("n")->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_CudaSilu, bf16)->Arg(kC)->Arg(kL * kF)->ArgName("n")->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);

// residual_add x += y on Qwen3's hidden state [512, 2560] (n 1310720) and a DiT-size [4128, 3840]
// (n 15851520), x restored before each run. Bytes es 3 n. Twin: qwen3_decoder_layer's
// `h[i] += x[i]`; chain residual add.
template <class Tag>
void BM_CudaResidualAdd(benchmark::State& st) {
  constexpr DType dt = Tag::dt;
  const int64_t n = st.range(0);
  gpu::Runtime& rt = runtime();
  const std::string key = shape_key("residual_add", dt, {n});
  auto xs = [&] { return round_to(dt, uniform({n}, 213, 2.0)); };
  auto ys = [&] { return round_to(dt, uniform({n}, 214, 1.0)); };
  EltFixture* f = get_fixture<EltFixture>(st, key, [&] {
    auto p = std::make_unique<EltFixture>();
    p->a0 = upload(xs(), dt);
    p->a = gpu::DeviceTensor(dt, {n});
    p->b = upload(ys(), dt);
    return p;
  });
  if (!f) return;
  auto prepare = [&] { copy_d2d(f->a, f->a0); };
  auto op = [&] { gpu::residual_add(dt, f->a.data(), f->b.data(), n, rt.stream()); };
  validate_and_time(st, key, dt, prepare, op, [&] {
    prepare();
    op();
    const Tensor<float> x = xs(), y = ys();
    Tensor<double> ref({n});
    for (int64_t i = 0; i < n; ++i) ref[i] = double(x[i]) + double(y[i]);
    return within_budget(key, dt, download(f->a), ref, {op_elem("residual add")});
  }, es_of(dt) * 3.0 * double(n));
}
BENCHMARK_TEMPLATE(BM_CudaResidualAdd, fp32)->Arg(kQwenL * kQwenC)->Arg(kL * kC)->ArgName("n")->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_CudaResidualAdd, bf16)->Arg(kQwenL * kQwenC)->Arg(kL * kC)->ArgName("n")->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);

// convert_from_f32 (dir 0: fp32 -> bf16, the upload path) and convert_to_f32 (dir 1: bf16 -> fp32,
// the download path) of the DiT's hidden state [4128, 3840]. Bytes (4 + 2) n. Twin:
// Tensor<float>::cast / torch .to(dtype): round to nearest even, back exact; T0 against the host's
// float_to_bf16 / bf16_to_float.
template <class Tag>
void BM_CudaConvert(benchmark::State& st) {
  constexpr DType dt = Tag::dt;
  const bool to_f32 = st.range(0) != 0;
  const int64_t n = kL * kC;
  gpu::Runtime& rt = runtime();
  const std::string key = shape_key(to_f32 ? "convert_to_f32" : "convert_from_f32", dt, {n});
  // dir 0 converts fp32 values (not yet rounded), dir 1 values the storage dtype holds.
  auto input = [&] { return to_f32 ? round_to(dt, uniform({n}, 215, 3.0)) : uniform({n}, 215, 3.0); };
  EltFixture* f = get_fixture<EltFixture>(st, key, [&] {
    auto p = std::make_unique<EltFixture>();
    p->a = upload(input(), to_f32 ? dt : DType::F32);
    p->out = gpu::DeviceTensor(to_f32 ? DType::F32 : dt, {n});
    return p;
  });
  if (!f) return;
  auto op = [&] {
    if (to_f32)
      gpu::convert_to_f32(dt, f->a.data(), static_cast<float*>(f->out.data()), n, rt.stream());
    else
      gpu::convert_from_f32(dt, static_cast<const float*>(f->a.data()), f->out.data(), n, rt.stream());
  };
  validate_and_time(st, key, dt, [] {}, op, [&] {
    poison(f->out, rt.stream());
    op();
    return exact(key, download(f->out), round_to(dt, input()));
  }, (4.0 + es_of(dt)) * double(n));
}
BENCHMARK_TEMPLATE(BM_CudaConvert, bf16)->Arg(0)->Arg(1)->ArgName("dir")->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------- timestep embedding
// timestep_embedding of B timesteps (t * t_scale in [0, 1000]) at dim 256 (t_embedder's frequency
// size). Bytes 4 B + es B 256. Twin: dit/timestep_embedder.h timestep_embedding (cos | sin).
template <class Tag>
void BM_CudaTimestepEmbedding(benchmark::State& st) {
  constexpr DType dt = Tag::dt;
  const int64_t B = st.range(0), dim = 256;
  gpu::Runtime& rt = runtime();
  const std::string key = shape_key("timestep_embedding", dt, {B, dim});
  auto ts = [&] {
    Tensor<float> t = uniform({B}, 216, 500.0);
    for (auto& v : t.data) v += 500.f;
    return t;
  };
  EltFixture* f = get_fixture<EltFixture>(st, key, [&] {
    auto p = std::make_unique<EltFixture>();
    p->a = upload(ts(), DType::F32);
    p->out = gpu::DeviceTensor(dt, {B, dim});
    return p;
  });
  if (!f) return;
  auto op = [&] {
    gpu::timestep_embedding(dt, static_cast<const float*>(f->a.data()), B, dim, kTimestepMaxPeriod, f->out.data(),
                            rt.stream());
  };
  validate_and_time(st, key, dt, [] {}, op, [&] {
    poison(f->out, rt.stream());
    op();
    return within_budget(key, dt, download(f->out), timestep_embedding(Tensor<float>(ts()).cast<double>(), int(dim)),
                         {{"timestep_embedding(cos,sin)", 1, 1, true}});
  }, 4.0 * double(B) + es_of(dt) * double(B) * dim);
}
BENCHMARK_TEMPLATE(BM_CudaTimestepEmbedding, fp32)->Arg(1)->Arg(2)->ArgName("B")->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_CudaTimestepEmbedding, bf16)->Arg(1)->Arg(2)->ArgName("B")->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------- layout: patchify, fill, unpatchify
// The 1024 x 1024 latent [16, 1, 128, 128], p 2, pf 1: 4096 tokens of 64 values.

constexpr int64_t kLatC = 16, kLatH = 128, kLatW = 128, kTokDim = 64;
constexpr int kP = 2, kPf = 1;
Tensor<float> latent(DType dt) { return round_to(dt, uniform({kLatC, 1, kLatH, kLatW}, 221, 2.0)); }
Tensor<float> patch_tokens(DType dt) { return pad_rows_with_last(patchify_image(latent(dt), kP, kPf), kImg); }

struct LayoutFixture : Fixture {
  gpu::DeviceTensor in, out, token;
};

// patchify_image latent -> tokens [4096, 64]. Bytes es 2 x 16 x 128 x 128. Twin: patchify_image,
// then pad_rows_with_last; T0.
template <class Tag>
void BM_CudaPatchify(benchmark::State& st) {
  constexpr DType dt = Tag::dt;
  gpu::Runtime& rt = runtime();
  const std::string key = shape_key("patchify_image", dt, {kLatC, kLatH, kLatW});
  LayoutFixture* f = get_fixture<LayoutFixture>(st, key, [&] {
    auto p = std::make_unique<LayoutFixture>();
    p->in = upload(latent(dt), dt);
    p->out = gpu::DeviceTensor(dt, {kImg, kTokDim});
    return p;
  });
  if (!f) return;
  auto op = [&] {
    gpu::patchify_image(dt, f->in.data(), kLatC, 1, kLatH, kLatW, kP, kPf, kImg, f->out.data(), rt.stream());
  };
  validate_and_time(st, key, dt, [] {}, op, [&] {
    poison(f->out, rt.stream());
    op();
    return exact(key, download(f->out), patch_tokens(dt));
  }, es_of(dt) * 2.0 * kLatC * kLatH * kLatW);
}
BENCHMARK_TEMPLATE(BM_CudaPatchify, fp32)->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_CudaPatchify, bf16)->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);

// fill_rows: the pad-token substitution on the embedded sequence [4128, 3840], rows
// [row_begin, 4128) <- x_pad_token [3840]: rows 4104 (a 8-token caption padded to 32) and 0 (every
// row: the bandwidth bound). Bytes es C (rows + 1). Twin: prepare_sequence's substitution; T0.
template <class Tag>
void BM_CudaFillRows(benchmark::State& st) {
  constexpr DType dt = Tag::dt;
  const int64_t begin = st.range(0);
  gpu::Runtime& rt = runtime();
  const std::string key = shape_key("fill_rows", dt, {kL, kC, begin});
  auto xs = [&] { return round_to(dt, uniform({kL, kC}, 222, 1.0)); };
  auto token = [&] { return round_to(dt, uniform({kC}, 223, 1.0)); };
  LayoutFixture* f = get_fixture<LayoutFixture>(st, key, [&] {
    auto p = std::make_unique<LayoutFixture>();
    p->out = upload(xs(), dt);
    p->token = upload(token(), dt);
    return p;
  });
  if (!f) return;
  auto op = [&] { gpu::fill_rows({f->out.data(), kC, dt}, begin, kL, f->token.data(), kC, rt.stream()); };
  validate_and_time(st, key, dt, [] {}, op, [&] {
    op();
    Tensor<float> want = xs();
    const Tensor<float> t = token();
    for (int64_t r = begin; r < kL; ++r) std::copy(t.ptr(), t.ptr() + kC, want.ptr() + r * kC);
    return exact(key, download(f->out), want);
  }, es_of(dt) * double(kC) * double(kL - begin + 1));
}
BENCHMARK_TEMPLATE(BM_CudaFillRows, fp32)->Arg(kL - 24)->Arg(0)->ArgName("row_begin")->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_CudaFillRows, bf16)->Arg(kL - 24)->Arg(0)->ArgName("row_begin")->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);

// unpatchify tokens [4096, 64] -> the fp32 latent [16, 1, 128, 128]. Bytes (es + 4) 16 x 128 x 128.
// Twin: dit/patchify.h unpatchify; T0.
template <class Tag>
void BM_CudaUnpatchify(benchmark::State& st) {
  constexpr DType dt = Tag::dt;
  gpu::Runtime& rt = runtime();
  const std::string key = shape_key("unpatchify", dt, {kLatC, kLatH, kLatW});
  LayoutFixture* f = get_fixture<LayoutFixture>(st, key, [&] {
    auto p = std::make_unique<LayoutFixture>();
    p->in = upload(patch_tokens(dt), dt);
    p->out = gpu::DeviceTensor(DType::F32, {kLatC, 1, kLatH, kLatW});
    return p;
  });
  if (!f) return;
  auto op = [&] {
    gpu::unpatchify(dt, f->in.data(), kLatC, 1, kLatH, kLatW, kP, kPf, static_cast<float*>(f->out.data()), rt.stream());
  };
  validate_and_time(st, key, dt, [] {}, op, [&] {
    poison(f->out, rt.stream());
    op();
    return exact(key, download(f->out), unpatchify(patch_tokens(dt), {1, kLatH, kLatW}, kP, kPf, kLatC));
  }, (es_of(dt) + 4.0) * kLatC * kLatH * kLatW);
}
BENCHMARK_TEMPLATE(BM_CudaUnpatchify, fp32)->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_CudaUnpatchify, bf16)->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------- RoPE

// rope_gather_async: Turbo's tables (axes_dims [32, 48, 48], axes_lens [1536, 512, 512]) gathered
// at the 4096 + 32 positions of dit_rope_ids into freqs [4128, 64, 2] fp32. Bytes 12 N (ids) +
// 2 x 4 N 128 (table rows read, freqs written). Twin: rope_embedder; T0, and the guard flag stays 0.
struct RopeFixture : Fixture {
  gpu::DeviceBuffer tables, ids, flag;
  gpu::RopeAxes axes;
  gpu::DeviceTensor freqs;
};
void BM_CudaRopeGather(benchmark::State& st) {
  gpu::Runtime& rt = runtime();
  const ZImageConfig cfg;
  const std::string key = shape_key("rope_gather", DType::F32, {kImg, kCap});
  const auto tables = precompute_freqs_cis<float>(cfg.axes_dims, cfg.axes_lens, cfg.rope_theta);
  const Tensor<int32_t> ids = dit_rope_ids(kImg, kCap);
  RopeFixture* f = get_fixture<RopeFixture>(st, key, [&] {
    auto p = std::make_unique<RopeFixture>();
    std::vector<float> all;
    p->axes.n_axes = int(tables.size());
    for (size_t a = 0; a < tables.size(); ++a) {
      p->axes.offset[a] = int64_t(all.size());
      p->axes.len[a] = int(tables[a].dim(0));
      p->axes.pairs[a] = int(tables[a].dim(1));
      all.insert(all.end(), tables[a].data.begin(), tables[a].data.end());
    }
    p->tables = upload_raw(all);
    p->ids = upload_raw(ids.data);
    p->flag = upload_raw(std::vector<int>{0});
    p->freqs = gpu::DeviceTensor(DType::F32, {kL, p->axes.total_pairs(), 2});
    return p;
  });
  if (!f) return;
  auto op = [&] {
    gpu::rope_gather_async(f->tables.as<const float>(), f->axes, f->ids.as<const int32_t>(), kL,
                           static_cast<float*>(f->freqs.data()), f->flag.as<int>(), rt.stream());
  };
  validate_and_time(st, key, DType::F32, [] {}, op, [&] {
    poison(f->freqs, rt.stream());
    op();
    const Tensor<float> got = download(f->freqs);  // synchronizes
    int flag = 0;
    ZIMAGE_CUDA_CHECK(cudaMemcpy(&flag, f->flag.get(), sizeof(int), cudaMemcpyDeviceToHost));
    if (flag != 0) return Verdict{false, key + ": the kernel's bounds guard fired on valid positions", 0};
    return exact(key, got, rope_embedder(tables, ids));
  }, 12.0 * kL + 2.0 * 4.0 * kL * kD);
}
BENCHMARK(BM_CudaRopeGather)->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);

// qk_norm_rope in place on the fused qkv [4128, 3C] (q at column 0, k at C; restored before each
// run), 30 heads x 128, freqs of dit_rope_ids. Bytes es 4 L C (q, k read and written) + 4 L D
// (freqs) + es 2 D. Twin: rms_norm over D (eps 1e-5), then apply_rotary_emb; chain rms(D) + rope +
// cos/sin of an fp32 angle, q and k compared separately.
struct QkFixture : Fixture {
  gpu::DeviceTensor qkv, qkv0, nq, nk, freqs;
};
Tensor<float> qk_weight(DType dt, uint64_t seed, int64_t D) {
  Tensor<float> w = uniform({D}, seed, 0.2);
  for (auto& v : w.data) v += 1;
  return round_to(dt, w);
}
template <class Tag>
void BM_CudaQkNormRope(benchmark::State& st) {
  constexpr DType dt = Tag::dt;
  gpu::Runtime& rt = runtime();
  const ZImageConfig cfg;
  const std::string key = shape_key("qk_norm_rope", dt, {kL, kH, kD});
  const Tensor<int32_t> ids = dit_rope_ids(kImg, kCap);
  auto qkv_host = [&] { return round_to(dt, uniform({kL, 3 * kC}, 231, 2.0)); };
  QkFixture* f = get_fixture<QkFixture>(st, key, [&] {
    auto p = std::make_unique<QkFixture>();
    p->qkv0 = upload(qkv_host(), dt);
    p->qkv = gpu::DeviceTensor(dt, {kL, 3 * kC});
    p->nq = upload(qk_weight(dt, 232, kD), dt);
    p->nk = upload(qk_weight(dt, 233, kD), dt);
    p->freqs = upload(rope_embedder(precompute_freqs_cis<float>(cfg.axes_dims, cfg.axes_lens, cfg.rope_theta), ids),
                      DType::F32);
    return p;
  });
  if (!f) return;
  auto prepare = [&] { copy_d2d(f->qkv, f->qkv0); };
  auto op = [&] {
    const gpu::DevRows q{f->qkv.data(), 3 * kC, dt};
    gpu::qk_norm_rope(q, q.from_col(kC), {f->nq.data(), f->nk.data(), kQkNormEps},
                      static_cast<const float*>(f->freqs.data()), {1, kL, kH, kD}, rt.stream());
  };
  validate_and_time(st, key, dt, prepare, op, [&] {
    prepare();
    op();
    const Tensor<float> got = download(f->qkv), qkv = qkv_host();
    const Tensor<double> fd =
        rope_embedder(precompute_freqs_cis<double>(cfg.axes_dims, cfg.axes_lens, cfg.rope_theta), ids)
            .reshaped({1, kL, kD / 2, 2});
    const std::vector<numerics::Op> ops{op_rms(double(kD)), {"rope", 2, 2, false}, {"cos/sin of an fp32 angle", 1, 1, true}};
    Verdict worst;
    for (int part = 0; part < 2; ++part) {
      const Shape heads{1, kL, kH, kD};
      Tensor<double> ref = rms_norm(columns(qkv, 3 * kC, part * kC, kC, heads).cast<double>(),
                                    qk_weight(dt, part ? 233 : 232, kD).cast<double>(), kQkNormEps);
      apply_rotary_emb(ref, fd);
      const Verdict v = within_budget(key + (part ? " k" : " q"), dt, columns(got, 3 * kC, part * kC, kC, heads), ref, ops);
      if (part == 0 || !v.ok || v.used > worst.used) worst = v;
      if (!v.ok) break;
    }
    return worst;
  }, es_of(dt) * (4.0 * kL * kC + 2.0 * kD) + 4.0 * kL * kD);
}
BENCHMARK_TEMPLATE(BM_CudaQkNormRope, fp32)->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_CudaQkNormRope, bf16)->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------- Qwen3

// embedding_gather of 512 token ids from Qwen3's [151936, 2560] table (bf16, as the text encoder
// runs). Bytes 4 N + 2 x es N C. Twin: qwen3_embedding; T0.
template <class Tag>
void BM_CudaEmbeddingGather(benchmark::State& st) {
  constexpr DType dt = Tag::dt;
  const Qwen3Config qcfg;
  const int64_t V = qcfg.vocab_size, C = qcfg.hidden_size, N = kQwenL;
  gpu::Runtime& rt = runtime();
  const std::string key = shape_key("embedding_gather", dt, {V, C, N});
  auto table = [&] { return round_to(dt, uniform({V, C}, 241, 0.05)); };
  Tensor<int32_t> ids({N});
  for (int64_t i = 0; i < N; ++i) ids[i] = int32_t((i * 7919 + 151) % V);  // spread over the table
  struct F : Fixture {
    gpu::DeviceTensor table, out;
    gpu::DeviceBuffer ids;
  };
  F* f = get_fixture<F>(st, key, [&] {
    auto p = std::make_unique<F>();
    p->table = upload(table(), dt);
    p->ids = upload_raw(ids.data);
    p->out = gpu::DeviceTensor(dt, {N, C});
    return p;
  });
  if (!f) return;
  auto op = [&] { gpu::embedding_gather(dt, f->ids.template as<const int32_t>(), N, f->table.data(), C, f->out.data(), rt.stream()); };
  validate_and_time(st, key, dt, [] {}, op, [&] {
    poison(f->out, rt.stream());
    op();
    return exact(key, download(f->out), qwen3_embedding(ids, table()));
  }, 4.0 * N + 2.0 * es_of(dt) * double(N) * C);
}
BENCHMARK_TEMPLATE(BM_CudaEmbeddingGather, bf16)->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);

// qwen3_qk_norm_rope in place on the fused Qwen3 qkv [512, (32 + 2 x 8) x 128] (restored before
// each run), cos/sin table of qwen3_cos_sin_table. Bytes es 2 L (H + G) D (q, k read and written)
// + 4 L D (table) + es 2 D. Twin: qwen3_rms_norm (rms_norm_eps 1e-6), then
// qwen3_apply_rotary_pos_emb; chain rms(D) + rope, q and k compared separately.
template <class Tag>
void BM_CudaQwen3QkNormRope(benchmark::State& st) {
  constexpr DType dt = Tag::dt;
  const Qwen3Config qcfg;
  const int64_t B = 1, L = kQwenL, H = kQwenH, G = kQwenG, D = kQwenD, W = (H + 2 * G) * D;
  gpu::Runtime& rt = runtime();
  const std::string key = shape_key("qwen3_qk_norm_rope", dt, {L, H, G, D});
  auto qkv_host = [&] { return round_to(dt, uniform({B * L, W}, 251, 2.0)); };
  QkFixture* f = get_fixture<QkFixture>(st, key, [&] {
    auto p = std::make_unique<QkFixture>();
    p->qkv0 = upload(qkv_host(), dt);
    p->qkv = gpu::DeviceTensor(dt, {B * L, W});
    p->nq = upload(qk_weight(dt, 252, D), dt);
    p->nk = upload(qk_weight(dt, 253, D), dt);
    p->freqs = upload(gpu::qwen3_cos_sin_table(qcfg, L), DType::F32);
    return p;
  });
  if (!f) return;
  auto prepare = [&] { copy_d2d(f->qkv, f->qkv0); };
  auto op = [&] {
    const gpu::DevRows q{f->qkv.data(), W, dt};
    gpu::qwen3_qk_norm_rope(q, q.from_col(H * D), {f->nq.data(), f->nk.data(), qcfg.rms_norm_eps},
                            static_cast<const float*>(f->freqs.data()), {B, L, H, D}, G, rt.stream());
  };
  validate_and_time(st, key, dt, prepare, op, [&] {
    prepare();
    op();
    const Tensor<float> got = download(f->qkv), qkv = qkv_host();
    const auto [cos_d, sin_d] = qwen3_rotary_embedding<double>(qcfg, L);
    const std::vector<numerics::Op> ops{op_rms(double(D)), op_elem("rope", true)};
    Verdict worst;
    for (int part = 0; part < 2; ++part) {
      const int64_t heads = part ? G : H;
      const Shape shape{B, L, heads, D};
      Tensor<double> ref = qwen3_rms_norm(columns(qkv, W, part * H * D, heads * D, shape).cast<double>(),
                                          qk_weight(dt, part ? 253 : 252, D).cast<double>(), qcfg.rms_norm_eps);
      qwen3_apply_rotary_pos_emb(ref, cos_d, sin_d);
      const Verdict v =
          within_budget(key + (part ? " k" : " q"), dt, columns(got, W, part * H * D, heads * D, shape), ref, ops);
      if (part == 0 || !v.ok || v.used > worst.used) worst = v;
      if (!v.ok) break;
    }
    return worst;
  }, es_of(dt) * (2.0 * L * (H + G) * D + 2.0 * D) + 4.0 * L * D);
}
BENCHMARK_TEMPLATE(BM_CudaQwen3QkNormRope, fp32)->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_CudaQwen3QkNormRope, bf16)->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------- VAE
// The decoder's mid-block resolution at 1024 x 1024: [1, 128, 128, 512] NHWC.

constexpr int64_t kVaeH = 128, kVaeW = 128, kVaeC = 512, kVaeG = 32;

// im2col_nhwc of the 3 x 3, pad 1 conv at [1, 128, 128, 512] -> [16384, 4608]. Bytes
// es (H W C + H W 9 C). Twin: vae/layers.cpp conv2d's im2col bands (written out on the host as
// tests/cuda/test_cuda_vae.cpp host_im2col); T0.
template <class Tag>
void BM_CudaIm2col(benchmark::State& st) {
  constexpr DType dt = Tag::dt;
  const gpu::Im2colGeom g;  // 3 x 3, stride 1, pad 1
  const int64_t P = g.out_h(kVaeH) * g.out_w(kVaeW), K = int64_t(g.kh) * g.kw * kVaeC;
  gpu::Runtime& rt = runtime();
  const std::string key = shape_key("im2col_nhwc", dt, {kVaeH, kVaeW, kVaeC, g.kh, g.kw});
  auto xs = [&] { return round_to(dt, uniform({1, kVaeH, kVaeW, kVaeC}, 261, 2.0)); };
  LayoutFixture* f = get_fixture<LayoutFixture>(st, key, [&] {
    auto p = std::make_unique<LayoutFixture>();
    p->in = upload(xs(), dt);
    p->out = gpu::DeviceTensor(dt, {P, K});
    return p;
  });
  if (!f) return;
  auto op = [&] { gpu::im2col_nhwc(dt, f->in.data(), 1, kVaeH, kVaeW, kVaeC, g, 0, P, f->out.data(), rt.stream()); };
  validate_and_time(st, key, dt, [] {}, op, [&] {
    poison(f->out, rt.stream());
    op();
    const Tensor<float> x = xs();
    const int64_t Wo = g.out_w(kVaeW);
    Tensor<float> want({P, K});
    for (int64_t q = 0; q < P; ++q) {
      const int64_t ox = q % Wo, oy = q / Wo;
      for (int64_t dy = 0; dy < g.kh; ++dy)
        for (int64_t dx = 0; dx < g.kw; ++dx) {
          const int64_t iy = oy * g.stride + dy - g.pad_top, ix = ox * g.stride + dx - g.pad_left;
          const bool in = iy >= 0 && iy < kVaeH * g.up && ix >= 0 && ix < kVaeW * g.up;
          float* dst = want.ptr() + q * K + (dy * g.kw + dx) * kVaeC;
          if (in)
            std::copy_n(x.ptr() + ((iy / g.up) * kVaeW + ix / g.up) * kVaeC, kVaeC, dst);
          else
            std::fill_n(dst, kVaeC, 0.f);
        }
    }
    return exact(key, download(f->out), want);
  }, es_of(dt) * (double(kVaeH) * kVaeW * kVaeC + double(P) * K));
}
BENCHMARK_TEMPLATE(BM_CudaIm2col, fp32)->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_CudaIm2col, bf16)->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);

// upsample_nearest_nhwc x2 of [1, 128, 128, 512] -> [1, 256, 256, 512] (the first upsampler's input,
// materialized for the cudnn convolution version). Bytes es (H W C + 4 H W C). Twin: the nearest read
// of vae/layers.h's ConvGeom::upsample (tests/cuda/test_cuda_vae.cpp host_upsample); T0.
template <class Tag>
void BM_CudaUpsampleNearest(benchmark::State& st) {
  constexpr DType dt = Tag::dt;
  const int up = 2;
  gpu::Runtime& rt = runtime();
  const std::string key = shape_key("upsample_nearest_nhwc", dt, {kVaeH, kVaeW, kVaeC, up});
  auto xs = [&] { return round_to(dt, uniform({1, kVaeH, kVaeW, kVaeC}, 301, 2.0)); };
  LayoutFixture* f = get_fixture<LayoutFixture>(st, key, [&] {
    auto p = std::make_unique<LayoutFixture>();
    p->in = upload(xs(), dt);
    p->out = gpu::DeviceTensor(dt, {1, kVaeH * up, kVaeW * up, kVaeC});
    return p;
  });
  if (!f) return;
  auto op = [&] { gpu::upsample_nearest_nhwc(dt, f->in.data(), 1, kVaeH, kVaeW, kVaeC, up, f->out.data(), rt.stream()); };
  validate_and_time(st, key, dt, [] {}, op, [&] {
    poison(f->out, rt.stream());
    op();
    const Tensor<float> x = xs();
    Tensor<float> want({1, kVaeH * up, kVaeW * up, kVaeC});
    for (int64_t oy = 0; oy < kVaeH * up; ++oy)
      for (int64_t ox = 0; ox < kVaeW * up; ++ox)
        std::copy_n(x.ptr() + ((oy / up) * kVaeW + ox / up) * kVaeC, kVaeC,
                    want.ptr() + (oy * kVaeW * up + ox) * kVaeC);
    return exact(key, download(f->out), want);
  }, es_of(dt) * 5.0 * double(kVaeH) * kVaeW * kVaeC);
}
BENCHMARK_TEMPLATE(BM_CudaUpsampleNearest, fp32)->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_CudaUpsampleNearest, bf16)->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);

// conv2d_nhwc, 3 x 3, 512 -> 512 channels with bias, per VaeConvVersion (conv: 0 im2col, 1 cudnn;
// cudnn in bf16 only): the decoder's mid-block conv at 1024 px ([1, 128, 128, 512], up 0) and its
// first upsampler (nearest x2 then the conv: [1, 128, 128, 512] -> [1, 256, 256, 512], up 1).
// FLOPs 2 Ho Wo C_out 9 C_in; bytes es (H W C_in + Ho Wo C_out + 9 C_in C_out), the conv's own
// minimum traffic (cudnn up:1 also writes and reads the x2 image, 8 H W C_in es more). Twin: vae/layers.h
// conv2d with ConvGeom::same3x3 / upsample 2, in fp64 on 64 sampled output pixels; chain
// vae_module_ops("decoder.conv_in") at C_in 512 (T3 fp32 / T4 bf16). Counter first_call_ms: the
// configuration's first call, plan building included.
template <class Tag>
void BM_CudaVaeConv(benchmark::State& st) {
  constexpr DType dt = Tag::dt;
  const gpu::VaeConvVersion ver = st.range(0) == 0 ? gpu::VaeConvVersion::im2col : gpu::VaeConvVersion::cudnn;
  const int up = st.range(1) ? 2 : 1;
  const gpu::Im2colGeom g = gpu::geom_same3x3(up);
  const int64_t Ho = g.out_h(kVaeH), Wo = g.out_w(kVaeW), C = kVaeC;
  gpu::Runtime& rt = runtime();
  const std::string key = shape_key("conv2d_nhwc", dt, {kVaeH, kVaeW, C, C, up, st.range(0)});
  std::string why;
  if (gpu::resolve_vae_conv(ver, dt, C, C, g, &why) != ver) {
    st.SkipWithError(("conv version " + std::string(gpu::vae_conv_version_name(ver)) + " does not run here: " + why).c_str());
    return;
  }
  auto xs = [&] { return round_to(dt, uniform({1, C, kVaeH, kVaeW}, 311, 2.0)); };
  auto ws = [&] {
    return Conv2dW<float>{round_to(dt, uniform({C, C, 3, 3}, 312, 1.0 / std::sqrt(9.0 * C))),
                          round_to(dt, uniform({C}, 313, 0.05))};
  };
  struct F : Fixture {
    gpu::DeviceTensor x, y;
    gpu::DeviceConv conv;
    std::unique_ptr<gpu::VaeRun> run;
  };
  F* f = get_fixture<F>(st, key, [&] {
    auto p = std::make_unique<F>();
    p->x = upload(gpu::nchw_to_nhwc(xs()), dt);
    p->conv = gpu::upload_conv(ws(), dt, rt);
    gpu::VaeCudaOptions o;
    o.dtype = dt;
    o.conv = ver;
    p->run = std::make_unique<gpu::VaeRun>(rt, o, int(kVaeG));
    return p;
  });
  if (!f) return;
  auto op = [&] { f->y = gpu::conv2d_nhwc(*f->run, f->conv, f->x, g); };
  // The first call's wall time, plan building included (cudnn: heuristics, finalize, possibly an
  // NVRTC compile of the fused-bias engine), once per configuration: what a new resolution costs.
  static std::map<std::string, double> first_call_ms;
  const Verdict& v = verdict(key, [&] {
    const auto t0 = std::chrono::steady_clock::now();
    op();
    rt.sync();
    first_call_ms[key] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const Tensor<float> x = xs();
    const Conv2dW<float> w = ws();
    const std::vector<int64_t> rows = numerics::sample_rows(Ho * Wo);
    Tensor<double> ref({int64_t(rows.size()), C});
    for (size_t i = 0; i < rows.size(); ++i) {
      const int64_t oy = rows[i] / Wo, ox = rows[i] % Wo;
      for (int64_t o = 0; o < C; ++o) {
        double acc = w.bias[o];
        for (int64_t c = 0; c < C; ++c)
          for (int64_t dy = 0; dy < 3; ++dy)
            for (int64_t dx = 0; dx < 3; ++dx) {
              const int64_t iy = oy + dy - 1, ix = ox + dx - 1;
              if (iy < 0 || iy >= kVaeH * up || ix < 0 || ix >= kVaeW * up) continue;
              acc += double(x[(c * kVaeH + iy / up) * kVaeW + ix / up]) * double(w.weight[((o * C + c) * 3 + dy) * 3 + dx]);
            }
        ref[int64_t(i) * C + o] = acc;
      }
    }
    const Tensor<float> got = numerics::rows_of(download(f->y), rows);
    return within_budget(key + " (" + std::to_string(rows.size()) + " pixels)", dt, got, ref,
                         vae_module_ops("decoder.conv_in", VaeConfig{}, Shape{1, C, kVaeH, kVaeW}));
  });
  if (!require(st, v)) return;
  if (first_call_ms.count(key)) st.counters["first_call_ms"] = first_call_ms[key];
  const double seconds = timed_loop(st, rt.stream(), [] {}, op);
  set_counters(st, 2.0 * double(Ho) * Wo * C * 9 * C,
               es_of(dt) * (double(kVaeH) * kVaeW * C + double(Ho) * Wo * C + 9.0 * C * C), seconds, dt);
}
BENCHMARK_TEMPLATE(BM_CudaVaeConv, fp32)->Args({0, 0})->Args({0, 1})->ArgNames({"conv", "up"})->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_CudaVaeConv, bf16)
    ->Args({0, 0})
    ->Args({1, 0})
    ->Args({0, 1})
    ->Args({1, 1})
    ->ArgNames({"conv", "up"})
    ->UseManualTime()->MinTime(kKernelMinTime)
    ->Unit(benchmark::kMicrosecond);

// group_norm_nhwc at [1, 128 x 128, 512], 32 groups, eps 1e-6, without and with the fused SiLU.
// Bytes es (2 P C + 2 C) (one read of x: the kernel's two statistic passes read it twice more).
// Twin: vae/layers.h group_norm (on the NCHW tensor), then silu_; chain
// vae_module_ops("decoder.conv_norm_out") (+ silu), as test_cuda_vae.cpp.
template <class Tag>
void BM_CudaGroupNorm(benchmark::State& st) {
  constexpr DType dt = Tag::dt;
  const bool with_silu = st.range(0) != 0;
  const int64_t P = kVaeH * kVaeW;
  gpu::Runtime& rt = runtime();
  const std::string key = shape_key("group_norm_nhwc", dt, {P, kVaeC, kVaeG, int64_t(with_silu)});
  auto x_nchw = [&] {  // an offset mean, as activations have
    Tensor<float> x = uniform({1, kVaeC, kVaeH, kVaeW}, 271, 2.0);
    for (auto& v : x.data) v += 3.f;
    return round_to(dt, x);
  };
  auto wb = [&] { return GroupNormW<float>{round_to(dt, uniform({kVaeC}, 272, 0.5)), round_to(dt, uniform({kVaeC}, 273, 0.5))}; };
  struct F : Fixture {
    gpu::DeviceTensor x, y, w, b;
    gpu::DeviceBuffer scratch;
  };
  F* f = get_fixture<F>(st, key, [&] {
    auto p = std::make_unique<F>();
    p->x = upload(gpu::nchw_to_nhwc(x_nchw()), dt);
    p->y = gpu::DeviceTensor(dt, {1, kVaeH, kVaeW, kVaeC});
    const GroupNormW<float> w = wb();
    p->w = upload(w.weight, dt);
    p->b = upload(w.bias, dt);
    return p;
  });
  if (!f) return;
  auto op = [&] {
    gpu::group_norm_nhwc(dt, f->x.data(), f->y.data(), {1, P, kVaeC, kVaeG}, f->w.data(), f->b.data(), kVaeNormEps,
                         with_silu, f->scratch, rt.stream());
  };
  validate_and_time(st, key, dt, [] {}, op, [&] {
    poison(f->y, rt.stream());
    op();
    const Tensor<float> x = x_nchw();
    const GroupNormW<float> w = wb();
    Tensor<double> ref = group_norm(x.cast<double>(), GroupNormW<double>{w.weight.cast<double>(), w.bias.cast<double>()},
                                    int(kVaeG), kVaeNormEps);
    VaeConfig vcfg;
    vcfg.norm_num_groups = int(kVaeG);
    std::vector<numerics::Op> ops = vae_module_ops("decoder.conv_norm_out", vcfg, x.shape);
    if (with_silu) {
      silu_(ref);
      ops.push_back({"silu", 1, 1, true});
    }
    return within_budget(key, dt, download(f->y), gpu::nchw_to_nhwc(ref), ops);
  }, es_of(dt) * (2.0 * P * kVaeC + 2.0 * kVaeC));
}
BENCHMARK_TEMPLATE(BM_CudaGroupNorm, fp32)->Arg(0)->Arg(1)->ArgName("silu")->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_CudaGroupNorm, bf16)->Arg(0)->Arg(1)->ArgName("silu")->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);

// softmax_rows in place on the VAE mid-block attention scores [L, L] (L = 128 x 128 at 1024 px;
// 64 x 64 at 512 px), scale 1 / sqrt(512), restored before each run. Bytes es 2 L^2. Twin:
// masked_softmax_row on S * scale with every key allowed; chain scale + softmax(L), on sampled rows.
template <class Tag>
void BM_CudaSoftmaxRows(benchmark::State& st) {
  constexpr DType dt = Tag::dt;
  const int64_t L = st.range(0), R = L;
  const float scale = 1.0f / std::sqrt(float(kVaeC));
  gpu::Runtime& rt = runtime();
  const std::string key = shape_key("softmax_rows", dt, {R, L});
  auto scores = [&] { return round_to(dt, uniform({R, L}, 281, 30.0)); };
  struct F : Fixture {
    gpu::DeviceTensor s, s0;
  };
  F* f = get_fixture<F>(st, key, [&] {
    auto p = std::make_unique<F>();
    p->s0 = upload(scores(), dt);
    p->s = gpu::DeviceTensor(dt, {R, L});
    return p;
  });
  if (!f) return;
  auto prepare = [&] { copy_d2d(f->s, f->s0); };
  auto op = [&] { gpu::softmax_rows({f->s.data(), L, dt}, R, L, scale, rt.stream()); };
  validate_and_time(st, key, dt, prepare, op, [&] {
    prepare();
    op();
    const std::vector<int64_t> rows = numerics::sample_rows(R);
    const Tensor<float> got = numerics::rows_of(download(f->s), rows);
    const Tensor<float> sampled = numerics::rows_of(scores(), rows);
    Tensor<double> ref = sampled.cast<double>();
    for (auto& v : ref.data) v *= double(scale);
    for (size_t i = 0; i < rows.size(); ++i) masked_softmax_row(ref.ptr() + int64_t(i) * L, L, [](int64_t) { return true; });
    return within_budget(key + " (" + std::to_string(rows.size()) + " rows)", dt, got, ref,
                         {op_elem("scale"), {"softmax(L=" + std::to_string(L) + ")", 2, double(L), true}});
  }, es_of(dt) * 2.0 * double(R) * double(L));
}
BENCHMARK_TEMPLATE(BM_CudaSoftmaxRows, fp32)->Arg(4096)->Arg(16384)->ArgName("L")->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_CudaSoftmaxRows, bf16)->Arg(4096)->Arg(16384)->ArgName("L")->UseManualTime()->MinTime(kKernelMinTime)->Unit(benchmark::kMicrosecond);

// transpose_batched [1, R, Cols] -> [1, Cols, R]: the VAE attention's [16384, 512] (V -> V^T and the
// [B, C, L] <-> [B, L, C] boundaries) and the decoder output's NHWC -> NCHW [1024 x 1024, 3].
// Bytes es 2 R Cols. Twin: vae_attention's transposes; T0.
template <class Tag>
void BM_CudaTransposeBatched(benchmark::State& st) {
  constexpr DType dt = Tag::dt;
  const int64_t R = st.range(0), Cols = st.range(1);
  gpu::Runtime& rt = runtime();
  const std::string key = shape_key("transpose_batched", dt, {R, Cols});
  auto xs = [&] { return round_to(dt, uniform({1, R, Cols}, 291, 1.0)); };
  LayoutFixture* f = get_fixture<LayoutFixture>(st, key, [&] {
    auto p = std::make_unique<LayoutFixture>();
    p->in = upload(xs(), dt);
    p->out = gpu::DeviceTensor(dt, {1, Cols, R});
    return p;
  });
  if (!f) return;
  auto op = [&] { gpu::transpose_batched(dt, f->in.data(), f->out.data(), 1, R, Cols, rt.stream()); };
  validate_and_time(st, key, dt, [] {}, op, [&] {
    poison(f->out, rt.stream());
    op();
    const Tensor<float> x = xs();
    Tensor<float> want({1, Cols, R});
    for (int64_t i = 0; i < R; ++i)
      for (int64_t j = 0; j < Cols; ++j) want[j * R + i] = x[i * Cols + j];
    return exact(key, download(f->out), want);
  }, es_of(dt) * 2.0 * double(R) * double(Cols));
}
BENCHMARK_TEMPLATE(BM_CudaTransposeBatched, fp32)
    ->Args({kVaeH * kVaeW, kVaeC})
    ->Args({1024 * 1024, 3})
    ->ArgNames({"R", "Cols"})
    ->UseManualTime()->MinTime(kKernelMinTime)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_CudaTransposeBatched, bf16)
    ->Args({kVaeH * kVaeW, kVaeC})
    ->Args({1024 * 1024, 3})
    ->ArgNames({"R", "Cols"})
    ->UseManualTime()->MinTime(kKernelMinTime)
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace zimage::bench::cuda

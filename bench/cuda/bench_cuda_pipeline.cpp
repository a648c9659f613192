// zimage_bench_cuda's whole-pipeline rows (the image's speed and memory goals, docs/cuda.md "The
// pipeline on the GPU"): a prompt to a PNG at 1024x1024 in 8 Turbo steps, on a pipeline made in
// memory at the real configs
// (reference/pipeline/synthetic_pipeline.h: Z-Image-Turbo's transformer, Qwen3-4B, the FLUX.1 VAE,
// synthetic weights, the test tokenizer of golden/text_encoder/tokenizer), bf16 storage.
//
//   BM_CudaImageLean_bf16/1024x1024/steps:8  (registered first: in a run of these rows only, it
//       runs before any model is on the device) one image through cuda_generate_hooks, the flow of
//       `zimage generate --device cuda`: the text encoder loaded for the encoding and released
//       before the transformer loads, the VAE loaded after the loop. Peak device memory while it
//       runs (device_tensor.h "Device memory accounting"): peak_used_gib (cudaMemGetInfo's total -
//       free, sampled after every allocation and at each stage: what the 24 GB goal is judged on;
//       it includes the CUDA context, the libraries and the allocator's cached blocks),
//       peak_allocated_gib (the bytes this process's buffers held), baseline_used_gib (the device
//       before the image), and each stage's own peak: encode_, load_ (the transformer's upload),
//       denoise_ and decode_peak_used_gib. One iteration (its time includes generating and
//       uploading 10^10 synthetic weights: not a speed figure).
//       The default pool's cached blocks are trimmed first, so earlier rows leave only what they
//       still hold (baseline_used_gib says how much).
//   BM_CudaImage_bf16/1024x1024/steps:8     ResidentCudaPipeline (cuda/pipeline_cuda.h): the three
//       models uploaded once, then per iteration generate() (the same loop, checks and 8-bit
//       conversion as `zimage generate`) and write_png to a file. Wall time of the whole call,
//       after one untimed image (cuBLASLt algorithms, cuDNN plans, the CUDA graph of the step).
//       Counters: image_s (the median of the timed images, as the peer's figure; image_mean_s the
//       mean); encode_ms (from generate()'s "encode" stage to "load": tokenization, the text
//       encoder, the seeded latents, the input checks), step_ms (the mean of the 8 steps: latents
//       up, the transformer, the output down, the Euler step on the host), denoise_ms, decode_ms
//       (unscale, the VAE, the download, the 8-bit conversion), png_ms, rest_ms (the remainder:
//       the checks before "encode" and lending the transformer). The timed image is checked:
//       finite latents, not one flat colour. caption_tokens: the prompt's length in tokens (the
//       test tokenizer's; the transformer's caption rows).
//       Differences from the peer (tools/gpu_peers/peer_pipeline.py), by design: transformers'
//       Qwen3Model runs all 36 layers and the final norm for hidden_states[-2], ours the 35 it
//       needs; the peer saves its PNG to memory, ours to a file.
//
// Validation (before either row is timed): on the tiny pipeline configs (golden/models/pipeline_tiny,
// golden/text_encoder/tiny_te, in memory, synthetic weights), a prompt at guidance 0 (the timed
// request's kind) and with CFG and a negative: the resident pipeline's latents and images, two
// images in a row, are bit for bit those of the cuda_generate_hooks flow, in bf16. That flow is the one tests/cuda/test_cuda_generate.cpp and the CLI tests gate against
// diffusers' pipeline goldens; the check ties the timed path to it.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench_cuda_support.h"
#include "io/png.h"
#include "pipeline/generate.h"
#include "pipeline/synthetic_pipeline.h"
#include "pipeline_cuda.h"
#include "text_encoder/prompt_encoder.h"
#include "text_encoder/tokenizer.h"

#ifndef ZIMAGE_GOLDEN_DIR
#error "ZIMAGE_GOLDEN_DIR must name the golden/ folder (bench/CMakeLists.txt defines it)"
#endif

namespace zimage::bench::cuda {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string golden(const std::string& rel) {
  const char* e = std::getenv("ZIMAGE_GOLDEN_DIR");
  return std::string(e && *e ? e : ZIMAGE_GOLDEN_DIR) + "/" + rel;
}

constexpr uint64_t kPipelineSeed = 20261204;
// A prompt of Z-Image's kind: 92 tokens in the chat template with the test tokenizer (counted with
// transformers' apply_chat_template in the golden env; the row's caption_tokens counts it again),
// so the transformer sees a 96-row caption, near the step rows' cap:128.
const char* const kPrompt =
    "A red fox sitting in fresh snow at dawn, soft golden light through pine trees, "
    "photographed with a telephoto lens, shallow depth of field, highly detailed fur";

GenerateRequest turbo_request(int64_t side, int64_t steps) {
  GenerateRequest r;
  r.opt.height = side;
  r.opt.width = side;
  r.opt.steps = int(steps);  // Turbo: 8 steps, guidance 0 (no CFG, batch 1)
  r.seed = 42;
  r.prompts = {kPrompt};
  return r;
}

// ---------------------------------------------------------------- validation

// One image each, finite, and the same bytes (latents compared as bytes: NaN == NaN there).
bool same_run(const Generated<float>& a, const Generated<float>& b, std::string* why) {
  for (const Generated<float>* g : {&a, &b}) {
    if (g->nonfinite) return *why = "non-finite: " + *g->nonfinite, false;
    if (g->images.size() != 1) return *why = std::to_string(g->images.size()) + " images, expected 1", false;
  }
  if (a.latents.shape != b.latents.shape ||
      std::memcmp(a.latents.ptr(), b.latents.ptr(), size_t(a.latents.numel()) * sizeof(float)) != 0)
    return *why = "final latents differ", false;
  if (a.images[0].pixels != b.images[0].pixels) return *why = "the images differ", false;
  return true;
}

Verdict check_resident_pipeline(DType dt) {
  const PipelineFolder pipe = synthetic_pipeline(SyntheticPipelineSpec::from_files(
      golden("models/pipeline_tiny/transformer/config.json"), golden("text_encoder/tiny_te/config.json"),
      golden("models/pipeline_tiny/vae/config.json"), golden("text_encoder/tokenizer"), kPipelineSeed));
  gpu::CudaPipelineOptions o;
  o.dtype = dt;
  const gpu::ResidentCudaPipeline resident(pipe, o);
  const std::string what = std::string("resident pipeline ") + gpu::dtype_name(dt) +
                           " (tiny configs, 64x96, 3 steps) vs the zimage generate --device cuda flow";
  // The timed request's kind (guidance 0: one item, no negative), then CFG with a negative prompt.
  for (const double guidance : {0.0, 3.0}) {
    GenerateRequest req;
    req.opt.height = 64;
    req.opt.width = 96;
    req.opt.steps = 3;
    req.opt.cfg.guidance_scale = guidance;
    req.seed = 7;
    req.prompts = {"a red fox in the snow"};
    if (guidance > 0) req.negative_prompts = {"blurry"};
    const Generated<float> lean = generate<float>(pipe, req, gpu::cuda_generate_hooks(pipe.transformer.config, o));
    const Generated<float> first = resident.generate(req), again = resident.generate(req);
    std::string why;
    const std::string g = ", guidance " + std::to_string(int(guidance)) + ": ";
    if (!same_run(first, lean, &why)) return {false, what + g + why, 0};
    if (!same_run(again, lean, &why)) return {false, what + g + "second image: " + why, 0};
  }
  return {true, what + ": latents and images bitwise equal, twice, guidance 0 and 3", 0};
}

// ---------------------------------------------------------------- BM_CudaImageLean_bf16

PipelineFolder real_pipeline() {
  SyntheticPipelineSpec s;  // the real configs
  s.tokenizer_dir = golden("text_encoder/tokenizer");
  s.seed = kPipelineSeed;
  return synthetic_pipeline(s);
}

struct PipelineOnly : Fixture {
  PipelineFolder pipe;
};

constexpr double kGiB = double(int64_t(1) << 30);

void BM_CudaImageLean_bf16(benchmark::State& st, int64_t side) {
  const Verdict& v = verdict("resident pipeline bfloat16", [] { return check_resident_pipeline(DType::BF16); });
  if (!require(st, v)) return;
  PipelineOnly* f = nullptr;
  try {
    // Frees whatever the previous row kept on the device (the resident pipeline) first.
    f = &fixture<PipelineOnly>("pipeline turbo (no device state)", [] {
      auto p = std::make_unique<PipelineOnly>();
      p->pipe = real_pipeline();
      return p;
    });
  } catch (const std::exception& e) {
    st.SkipWithError((std::string("error: ") + e.what()).c_str());
    return;
  }
  gpu::CudaPipelineOptions o;
  o.dtype = DType::BF16;
  const GenerateRequest req = turbo_request(side, st.range(0));
  for (auto _ : st) {
    try {
      // What earlier rows left cached: the default pool keeps freed blocks up to its release
      // threshold (gemm_lt.cpp); give them back so the baseline is this row's.
      ZIMAGE_CUDA_CHECK(cudaDeviceSynchronize());
      int dev = 0;
      cudaMemPool_t pool = nullptr;
      ZIMAGE_CUDA_CHECK(cudaGetDevice(&dev));
      ZIMAGE_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, dev));
      ZIMAGE_CUDA_CHECK(cudaMemPoolTrimTo(pool, 0));
      gpu::watch_device_memory(true);
      const size_t baseline = gpu::device_memory().peak_device_used;
      // Each stage's peaks, then a reset: the stages' figures are their own, the row's their maximum.
      std::map<std::string, double> stage_peak;
      size_t peak_used = baseline, peak_allocated = 0;
      int64_t samples = 0;
      std::string stage = "start";
      auto close_stage = [&](const std::string& next) {
        gpu::sample_device_memory();
        const gpu::MemoryPeaks m = gpu::device_memory();
        stage_peak[stage] = double(m.peak_device_used) / kGiB;
        peak_used = std::max(peak_used, m.peak_device_used);
        peak_allocated = std::max(peak_allocated, m.peak_allocated);
        samples += m.samples;
        stage = next;
        gpu::watch_device_memory(true);
      };
      GenerateHooks<float> h = gpu::cuda_generate_hooks(f->pipe.transformer.config, o);
      h.on_stage = [&](const std::string& next, const std::string&) { close_stage(next); };
      const auto t0 = Clock::now();
      const Generated<float> out = generate<float>(f->pipe, req, h);
      ZIMAGE_CHECK(out.images.size() == 1, "the pipeline returned " + std::to_string(out.images.size()) + " images");
      close_stage("end");
      st.SetIterationTime(seconds_since(t0));
      gpu::watch_device_memory(false);
      st.counters["baseline_used_gib"] = double(baseline) / kGiB;
      st.counters["peak_used_gib"] = double(peak_used) / kGiB;
      st.counters["peak_allocated_gib"] = double(peak_allocated) / kGiB;
      st.counters["memory_samples"] = double(samples);
      for (const char* s : {"encode", "load", "denoise", "decode"})
        if (stage_peak.count(s)) st.counters[std::string(s) + "_peak_used_gib"] = stage_peak[s];
    } catch (const std::exception& e) {
      gpu::watch_device_memory(false);
      st.SkipWithError((std::string("error: ") + e.what()).c_str());
      break;
    }
  }
  st.SetLabel("zimage generate --device cuda --dtype bfloat16 flow: text encoder released before the transformer loads");
}
BENCHMARK_CAPTURE(BM_CudaImageLean_bf16, 1024x1024, 1024)
    ->ArgName("steps")
    ->Arg(8)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------- BM_CudaImage_bf16

struct ImageFixture : Fixture {
  PipelineFolder pipe;
  std::unique_ptr<gpu::ResidentCudaPipeline> resident;
};

// Stage times of one generate() call, from its on_stage and on_step callbacks.
struct StageClock {
  Clock::time_point t0, encode, load, denoise, decode;
  std::vector<double> steps;  // seconds per step
  Clock::time_point last;
  GenerateHooks<float> hooks() {
    GenerateHooks<float> h;
    h.on_stage = [this](const std::string& stage, const std::string&) {
      const auto now = Clock::now();
      if (stage == "encode") encode = now;
      if (stage == "load") load = now;
      if (stage == "denoise") denoise = last = now;
      if (stage == "decode") decode = now;
    };
    h.on_step = [this](const StepEvent<float>&) {
      const auto now = Clock::now();
      steps.push_back(std::chrono::duration<double>(now - last).count());
      last = now;
      return true;
    };
    return h;
  }
};

void BM_CudaImage_bf16(benchmark::State& st, int64_t side) {
  const Verdict& v = verdict("resident pipeline bfloat16", [] { return check_resident_pipeline(DType::BF16); });
  if (!require(st, v)) return;
  ImageFixture* f = nullptr;
  try {
    f = &fixture<ImageFixture>("image turbo bfloat16", [] {
      std::fprintf(stderr, "zimage_bench_cuda: uploading the real-size pipeline (bf16, synthetic weights: Qwen3-4B, "
                           "the Turbo transformer, the FLUX.1 VAE decoder)\n");
      auto p = std::make_unique<ImageFixture>();
      p->pipe = real_pipeline();
      gpu::CudaPipelineOptions o;
      o.dtype = DType::BF16;
      const auto t0 = Clock::now();
      p->resident = std::make_unique<gpu::ResidentCudaPipeline>(p->pipe, o);
      std::fprintf(stderr, "zimage_bench_cuda: pipeline uploaded in %.1f s\n", seconds_since(t0));
      return p;
    });
  } catch (const std::exception& e) {
    st.SkipWithError((std::string("error: ") + e.what()).c_str());
    return;
  }
  const GenerateRequest req = turbo_request(side, st.range(0));
  const std::string png = (std::filesystem::temp_directory_path() /
                           ("zimage_bench_cuda_image_" + std::to_string(::getpid()) + ".png")).string();
  double encode = 0, denoise = 0, decode = 0, png_s = 0, steps = 0, total = 0;
  int64_t nsteps = 0;
  std::vector<double> images;
  Generated<float> last;
  auto one = [&](bool record) {
    StageClock c;
    c.t0 = Clock::now();
    Generated<float> out = f->resident->generate(req, c.hooks());
    const auto end = Clock::now();
    ZIMAGE_CHECK(out.images.size() == 1, "the pipeline returned " + std::to_string(out.images.size()) + " images");
    write_png(png, out.images[0]);
    const double all = seconds_since(c.t0);
    if (record) {
      auto d = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
      encode += d(c.encode, c.load);
      denoise += d(c.denoise, c.decode);
      decode += d(c.decode, end);
      png_s += all - d(c.t0, end);
      for (double s : c.steps) steps += s;
      nsteps += int64_t(c.steps.size());
      total += all;
      images.push_back(all);
    }
    last = std::move(out);
    return all;
  };
  try {
    one(false);  // algorithms, plans and the step's CUDA graph
  } catch (const std::exception& e) {
    st.SkipWithError((std::string("error in the warm-up image: ") + e.what()).c_str());
    return;
  }
  for (auto _ : st) {
    try {
      st.SetIterationTime(one(true));
    } catch (const std::exception& e) {
      st.SkipWithError((std::string("error while timing: ") + e.what()).c_str());
      break;
    }
  }
  std::filesystem::remove(png);
  if (st.error_occurred() || st.iterations() == 0) return;
  // The timed images are checked too: finite latents and an image that is not one flat colour.
  bool finite = !last.nonfinite;
  for (float x : last.latents.data) finite = finite && std::isfinite(x);
  const auto& px = last.images[0].pixels;
  const bool flat = std::all_of(px.begin(), px.end(), [&](uint8_t v) { return v == px[0]; });
  if (!finite || flat) {
    st.SkipWithError(finite ? "the timed image is one flat colour" : "the timed latents are not finite");
    return;
  }
  const double n = double(st.iterations());
  std::sort(images.begin(), images.end());
  st.counters["image_s"] = images[images.size() / 2];  // the median, as the peer's figure
  st.counters["image_mean_s"] = total / n;
  st.counters["encode_ms"] = 1e3 * encode / n;
  st.counters["denoise_ms"] = 1e3 * denoise / n;
  st.counters["step_ms"] = nsteps ? 1e3 * steps / double(nsteps) : 0;
  st.counters["decode_ms"] = 1e3 * decode / n;
  st.counters["png_ms"] = 1e3 * png_s / n;
  // The caption's length (the transformer's cap tokens): the test tokenizer's ids of the chat text.
  const TokenizedBatch tok = f->pipe.prompt_encoder->tokenize({qwen3_chat_prompt(kPrompt)}, 512);
  int64_t caption = 0;
  for (int32_t m : tok.attention_mask.data) caption += m;
  st.counters["caption_tokens"] = double(caption);
  st.counters["rest_ms"] = 1e3 * (total - encode - denoise - decode - png_s) / n;
  st.SetLabel("prompt to PNG, weights resident");
}
BENCHMARK_CAPTURE(BM_CudaImage_bf16, 1024x1024, 1024)
    ->ArgName("steps")
    ->Arg(8)
    ->Iterations(3)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace zimage::bench::cuda

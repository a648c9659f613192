// A ZImagePipeline made in memory: counter-based synthetic weights (io/synthetic.h) at given
// configs, by default the real ones (Z-Image-Turbo's transformer, Qwen3-4B, the FLUX.1 VAE, the
// Turbo scheduler: shift 3.0), and a tokenizer read from a folder. Nothing is written to disk and
// every weight is generated when a model loads it, so a real-size pipeline costs no download and no
// 20 GB of files: the GPU benchmark's whole-image rows (bench/cuda/bench_cuda_pipeline.cpp) run
// generate() on it. Values, per model, as its golden dumper makes them:
//   transformer   synthetic_dit_source (dit/synthetic_checkpoint.h), bf16-exact
//   text encoder  qwen3_synthetic_spec (text_encoder/synthetic_qwen3.h)
//   VAE           vae_synthetic_spec (vae/synthetic_vae.h)
// Never for numerics against diffusers: random weights make noise images. For loading, memory and
// speed at the real sizes.
#pragma once
#include <cstdint>
#include <string>

#include "dit/config.h"
#include "pipeline/pipeline.h"
#include "pipeline/scheduler.h"
#include "text_encoder/qwen3_config.h"
#include "vae/config.h"

namespace zimage {

struct SyntheticPipelineSpec {
  ZImageConfig transformer;                       // the defaults are Z-Image-Turbo's
  Qwen3Config text_encoder = qwen3_4b_config();
  VaeConfig vae = flux_vae_config();
  FlowMatchSchedulerConfig scheduler = turbo_scheduler_config();
  std::string tokenizer_dir;                      // tokenizer.json (+ tokenizer_config.json)
  uint64_t seed = 0;                              // one seed; each model's tensors differ by name
  // Z-Image-Turbo's scheduler_config.json: FlowMatchEulerDiscreteScheduler, 1000 train steps, shift 3.0.
  static FlowMatchSchedulerConfig turbo_scheduler_config();
  // The three models' config.json files (diffusers' and transformers' keys), the Turbo scheduler.
  static SyntheticPipelineSpec from_files(const std::string& transformer_config, const std::string& text_encoder_config,
                                          const std::string& vae_config, const std::string& tokenizer_dir, uint64_t seed);
};

// Checks every config (one line naming the model) and the tokenizer folder; makes no weight.
// dir is "synthetic(seed=S)", for messages; has_text_encoder and has_tokenizer are true and
// prompt_encoder holds the tokenizer and the text encoder.
PipelineFolder synthetic_pipeline(const SyntheticPipelineSpec& spec);

}  // namespace zimage

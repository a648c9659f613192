// ZImagePipeline.__call__ end to end on the CPU reference: prompts (or their
// embeddings) -> in-memory prompt encoding -> one denoising loop over a
// DitModel -> VAE decode -> 8-bit images. `zimage generate` and `zimage
// encode` only parse arguments, call these and print (docs/pipeline.md).
// Ref: diffusers/pipelines/z_image/pipeline_z_image.py ZImagePipeline.__call__
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/dit_model.h"
#include "pipeline/pipeline.h"
#include "text_encoder/prompt_encoder.h"
#include "dit/model_folder.h"

namespace zimage {

// ---- The denoising loop --------------------------------------------------

// What the loop reports after each step.
template <class T>
struct StepEvent {
  int step = 0, steps = 0;        // the step just done (1-based), of steps
  double timestep = 0;            // the scheduler's timestep of that step
  const Tensor<T>* model_output;  // as handed to scheduler.step
  const Tensor<T>* latents;       // after it
};
// Returns false to stop the loop after this step.
template <class T>
using StepCallback = std::function<bool(const StepEvent<T>&)>;

template <class T>
struct Denoised {
  Tensor<T> latents;
  int steps_done = 0;
  // --check-finite: where the first non-finite module output was, e.g.
  // "step 3 (transformer): layers.0.attention: 12 non-finite values, first at flat index 4";
  // the loop stopped there and `latents` are those before that step.
  std::optional<std::string> nonfinite;
};

// The loop of __call__: for each scheduler step, the model output (CFG
// included, pipeline_model_output) and the Euler step. `acts` goes to the
// transformer; with acts->check_finite the loop stops at the first non-finite
// module output. `on_step` sees every step (progress lines, traces) and may stop the loop.
template <class T>
Denoised<T> denoise(const DitModel<T>& dit, const Schedule& s, const CfgOptions& cfg, Tensor<T> latents,
                    const std::vector<Tensor<T>>& pos, const std::vector<Tensor<T>>& neg,
                    const StepCallback<T>& on_step = {}, Activations<T>* acts = nullptr);

// A step callback that keeps every step's model output and latents.
template <class T>
struct DenoiseTrace {
  std::vector<Tensor<T>> model_output;  // per step, as handed to scheduler.step
  std::vector<Tensor<T>> latents;       // per step, after it
  StepCallback<T> recorder() {
    return [this](const StepEvent<T>& e) {
      model_output.push_back(*e.model_output);
      latents.push_back(*e.latents);
      return true;
    };
  }
};

// ---- Prompt encoding -----------------------------------------------------

// ZImagePipeline.encode_prompt's knobs (docs/text_encoder.md, docs/experiments.md "Text-encoder knobs").
// The defaults are the pipeline's path, bit for bit.
struct PromptOptions {
  int hidden_layer = -2;          // hidden_states[hidden_layer] (when hidden_layers is empty)
  int max_sequence_length = 512;  // padding="max_length", truncation
  std::optional<std::string> think;  // absent: no think block; "": the empty block; text: a block with it
  std::optional<std::string> system_prompt;  // a system message first; absent: none
  std::optional<std::string> padding_side;   // "left" | "right"; absent: the tokenizer's (right for Qwen3)
  std::vector<int> hidden_layers;            // non-empty: the weighted mean of these hidden_states
  std::vector<double> hidden_layer_weights;  // one per hidden_layers entry; empty: equal
  // The library's form (hidden_layers or {hidden_layer}).
  EncodeOptions encode_options() const {
    EncodeOptions e;
    e.max_sequence_length = max_sequence_length;
    e.hidden_layers = hidden_layers.empty() ? std::vector<int>{hidden_layer} : hidden_layers;
    e.hidden_layer_weights = hidden_layer_weights;
    e.think = think;
    e.system_prompt = system_prompt;
    e.padding_side = padding_side;
    return e;
  }
};

struct EncodedPrompts {
  // One [L_i, hidden] per prompt, rounded to fp32: what `zimage encode`
  // writes, so --prompt and --prompt-embeds give the same images.
  std::vector<Tensor<float>> embeds;
  std::optional<std::string> nonfinite;  // check_finite: "text encoder: <module, count, index>"; embeds empty
};

// A text-encoder backend for the folder's encoder (the CUDA one: gpu::cuda_text_encoder), made for
// these hidden layers; see PromptEncoder::set_hidden_states_backend. The function it returns may be
// called after that encoder is gone (generate() reuses it for the negatives): it must hold what it needs.
using TextEncoderBackend =
    std::function<PromptEncoder::HiddenStatesFn(const Qwen3TextEncoder&, const std::vector<int>& hidden_layers)>;

// Encodes with the folder's tokenizer/ and text_encoder/, computing in T (or through `backend`).
// Truncated prompts are reported through `warn`, one line each.
template <class T>
EncodedPrompts encode_prompts(const std::string& pipeline_dir, const std::vector<std::string>& prompts,
                              const PromptOptions& opt, bool check_finite,
                              const std::function<void(const std::string&)>& warn = {},
                              const TextEncoderBackend& backend = {});
// The same with an open encoder. A backend is set on `enc` for this call only: afterwards (and
// after an exception) the encoder holds the backend it had before, not this one, so whatever the
// backend holds (the GPU text encoder's memory) is released with the caller's last copy. Not for
// concurrent calls on one encoder.
template <class T>
EncodedPrompts encode_prompts(PromptEncoder& enc, const std::vector<std::string>& prompts, const PromptOptions& opt,
                              bool check_finite, const std::function<void(const std::string&)>& warn = {},
                              const TextEncoderBackend& backend = {});

// ---- The whole pipeline ----------------------------------------------------

struct GenerateRequest {
  GenerateOptions opt;
  // Either prompts, encoded with the pipeline's text encoder (negatives ""
  // per prompt under CFG unless given; one negative serves every prompt) ...
  std::vector<std::string> prompts, negative_prompts;
  PromptOptions prompt_options;
  // ... or their embeddings, one [L_i, cap_feat_dim] per prompt (finite).
  std::vector<Tensor<float>> prompt_embeds, negative_prompt_embeds;
  // Initial latents [B, C, h, w]; absent: torch.randn(shape, Generator("cpu").manual_seed(seed)).
  std::optional<Tensor<float>> latents;
  uint64_t seed = 0;
  DitWeights weights = DitWeights::Auto;
  bool check_finite = false;  // trace every module output; stop at the first non-finite one
};

template <class T>
struct GenerateHooks {
  std::function<void(const std::string&)> warn;  // prompt truncation
  // Each stage as it starts: "encode", "load", "denoise", "decode"; `detail`
  // describes it (for "denoise": the batch, size, steps, guidance, weights).
  std::function<void(const std::string& stage, const std::string& detail)> on_stage;
  StepCallback<T> on_step;
  // The transformer to use instead of open_dit_model (the CUDA model, a test's model).
  std::function<std::unique_ptr<DitModel<T>>(const ModelFolder&, DitWeights)> open_dit;
  // The text encoder to use instead of the reference's (the CUDA encoder): made once, on the first
  // encode_prompts call, for the prompts and the negatives alike, and released after encoding.
  TextEncoderBackend text_encoder;
  // The VAE decode to use instead of the reference's (the CUDA VAE): the loop's final latents, as
  // the transformer saw them (scaled) -> the image [B, out_channels, H, W], about [-1, 1], as
  // decode_latents returns it (unscale_latents, then vae_decode). When set, the reference's VAE
  // weights are never loaded. With check_finite the image is screened as a whole ("VAE decode:").
  std::function<Tensor<float>(const VaeModel&, const Tensor<float>& latents)> decode;
};

template <class T>
struct Generated {
  Tensor<float> init_latents;  // as the loop started
  Tensor<T> latents;           // after the last step
  std::vector<Image8> images;  // one per batch item (prompts x num_images_per_prompt)
  std::string weights;         // how the transformer held its weights
  std::optional<std::string> nonfinite;  // check_finite: where; then images is empty
};

// Sizes, steps, guidance, shift and latents are checked before the text
// encoder is loaded, the embeddings before the transformer is (one-line
// errors naming the argument, as check_generate_inputs). The text encoder is
// freed before the transformer is loaded.
template <class T>
Generated<T> generate(const PipelineFolder& pipe, const GenerateRequest& req, const GenerateHooks<T>& hooks = {});

}  // namespace zimage

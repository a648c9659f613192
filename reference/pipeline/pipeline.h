// ZImagePipeline on the CPU reference, its pieces: a pipeline folder, the
// input checks, one step's model call with CFG, the Euler step, the decode to
// pixels. The loop and the whole pipeline are in pipeline/generate.h.
// Ref: diffusers/pipelines/z_image/pipeline_z_image.py ZImagePipeline.__call__
//
// Shapes (PyTorch order): latents [B, C, h, w] with C = transformer in_channels,
// h = 2 * (height // (2 * f)), w likewise, f = the VAE's spatial factor (8 for
// Flux: images are multiples of 16); B = prompts * num_images_per_prompt.
// Prompt embeddings: one [L_i, cap_feat_dim] per prompt. Image [B, 3, H, W].
// docs/pipeline.md walks through one step and what each test checks.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/png.h"
#include "dit/transformer.h"
#include "pipeline/dit_model.h"
#include "pipeline/cfg.h"
#include "pipeline/scheduler.h"
#include "vae/autoencoder_kl.h"
#include "dit/model_folder.h"

namespace zimage {

class PromptEncoder;  // text_encoder/prompt_encoder.h

// What ZImagePipeline.save_pretrained writes: model_index.json, transformer/,
// vae/, scheduler/ (text_encoder/ and tokenizer/ may be absent).
struct PipelineFolder {
  std::string dir;
  ModelFolder transformer;
  VaeModel vae;
  FlowMatchSchedulerConfig scheduler;
  bool has_text_encoder = false, has_tokenizer = false;
  // The tokenizer and text encoder held in memory (a pipeline made in memory, e.g. synthetic
  // weights at the real configs: pipeline/synthetic_pipeline.h); null: generate() opens them from
  // dir/tokenizer and dir/text_encoder when it encodes prompts.
  std::shared_ptr<PromptEncoder> prompt_encoder;
};
// Errors name the folder and the missing or malformed component.
PipelineFolder open_pipeline_folder(const std::string& dir);

struct GenerateOptions {
  int64_t height = 1024, width = 1024;
  int steps = 8;                   // Turbo's default
  CfgOptions cfg;                  // guidance 0 (Turbo): no CFG
  std::optional<double> shift;     // overrides scheduler_config.json's shift
  int num_images_per_prompt = 1;
  // The DiT-side knobs (docs/experiments.md); the defaults change nothing.
  ForwardOptions dit;             // --rope-scaling / --rope-extend, --skip-context-refiner
  LongPromptOptions long_prompt;  // --long-prompt-mode, --long-prompt-target
};

// The latent shape ZImagePipeline.prepare_latents makes; throws naming
// --height/--width when they are not multiples of 2 * f.
Shape pipeline_latent_shape(const ZImageConfig& dit, const VaeConfig& vae, int64_t batch, int64_t height, int64_t width);

// Every check __call__ does before compute (and the ones it leaves to a
// crash): sizes, steps, embedding widths and counts, CFG needing negatives,
// the RoPE table, latents shape. One-line errors naming the argument.
void check_generate_inputs(const ZImageConfig& dit, const VaeConfig& vae, const GenerateOptions& opt,
                           const std::vector<Shape>& prompt_embeds, const std::vector<Shape>& negative_embeds,
                           const Shape* latents);

// The schedule __call__ builds: default Z-Image sigmas, mu from the image
// token count, scheduler config (shift overridden by opt.shift).
Schedule pipeline_schedule(const FlowMatchSchedulerConfig& sched, const GenerateOptions& opt, const Shape& latents);

// Embeddings in the order the transformer sees them: each prompt repeated
// num_images_per_prompt times, consecutively.
template <class T>
std::vector<Tensor<T>> repeat_per_image(const std::vector<Tensor<T>>& embeds, int per_prompt);

// One step's model call: the transformer on the latents (twice with CFG:
// positives then negatives), CFG combined per item, negated: the
// model_output __call__ hands scheduler.step. latents [B, C, h, w]; pos and
// neg already repeated per image. `acts` goes to the transformer (--check-finite).
template <class T>
Tensor<T> pipeline_model_output(const DitModel<T>& dit, const Schedule& s, int step, const CfgOptions& cfg,
                                const Tensor<T>& latents, const std::vector<Tensor<T>>& pos,
                                const std::vector<Tensor<T>>& neg, Activations<T>* acts = nullptr);
// The same with the weights in memory (zimage_forward).
template <class T>
Tensor<T> pipeline_model_output(const ZImageWeights<T>& w, const Schedule& s, int step, const CfgOptions& cfg,
                                const Tensor<T>& latents, const std::vector<Tensor<T>>& pos,
                                const std::vector<Tensor<T>>& neg, Activations<T>* acts = nullptr);

// Euler step of the flow-match scheduler on the whole latent tensor, in T
// (float: bit for bit diffusers' fp32 step).
template <class T>
void pipeline_step(const Schedule& s, int step, const Tensor<T>& model_output, Tensor<T>& latents);

// latents -> unscale_latents -> vae_decode: image [B, out_channels, H, W], about [-1, 1].
template <class T>
Tensor<T> decode_latents(const VaeConfig& cfg, const VaeWeights<T>& w, const Tensor<T>& latents,
                         Activations<T>* acts = nullptr);

// Ref: image_processor.py VaeImageProcessor.postprocess(output_type="pil"):
// (x * 0.5 + 0.5).clamp(0, 1) in fp32, then numpy's (x * 255).round() (half to
// even) as uint8; one RGB image per batch item.
std::vector<Image8> to_pil_images(const Tensor<float>& image);

}  // namespace zimage

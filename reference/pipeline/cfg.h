// Ref: diffusers/pipelines/z_image/pipeline_z_image.py, ZImagePipeline.__call__
//      (do_classifier_free_guidance, _precomputed_t_norms, the apply_cfg block,
//      the num_images_per_prompt repeat)
//
// Classifier-free guidance as ZImagePipeline runs it, in float32 like torch:
//   apply_cfg at step i  <=>  guidance_scale > 0 and not truncated at step i
//   truncated at step i  <=>  cfg_truncation <= 1 and t_norm_i > cfg_truncation,
//                             t_norm_i = (1000 - t_i) / 1000 in float32 (zimage_model_timestep)
//   pred = pos + g * (pos - neg)          (g rounded to float32; three roundings)
//   if cfg_normalization > 0 and ||pred|| > ||pos|| * factor:
//       pred = pred * ((||pos|| * factor) / ||pred||)   (factor rounded to float32)
// ||.|| is torch.linalg.vector_norm over the whole item [C, 1, H, W], which
// torch's CPU kernel computes as 8 float32 lane sums of x * x (separately
// rounded), the lanes added in order, then the numel % 8 tail added in order
// (on the AVX2 build its first 4 squares rounded and the rest fused into FMAs;
// on DEFAULT all rounded), then sqrtf (docs/scheduler.md; bit-exact on the
// goldens).
//
// Batch order (one transformer call per step): with CFG the batch is
// [positive items..., negative items...]; without CFG only the positive
// items. Item j of each half is latent j; with num_images_per_prompt = k, latent
// j belongs to prompt j / k (prompt embeddings repeated consecutively:
// [p0, p0, p1, p1] for k = 2). The latents are drawn for the whole
// [B * k, C, H, W] batch from one generator (randn_latents).
#pragma once
#include <cstdint>
#include <vector>

#include "pipeline/scheduler.h"
#include "pipeline/torch_generator.h"

namespace zimage {

struct CfgOptions {
  double guidance_scale = 0;     // > 0 enables CFG (do_classifier_free_guidance)
  double cfg_normalization = 0;  // > 0 caps ||pred|| at factor * ||pos||; 0 (False) = off, True = 1
  double cfg_truncation = 1.0;   // CFG off once t_norm > cfg_truncation; values > 1 (or None) never truncate
};

// Whether step i applies CFG and with which scale: 0 when it does not
// (guidance_scale <= 0, or truncated at this step), guidance_scale otherwise.
double cfg_scale_at_step(const CfgOptions&, const Schedule&, int step_index);

// pred = pos + g * (pos - neg), then the optional norm cap, over one item of n
// floats (the whole [C, 1, H, W] item: the norm is over all of it). out may
// alias pos or neg. Returns true when the cap rescaled pred.
bool cfg_combine(const float* pos, const float* neg, int64_t n, double g, double cfg_normalization, float* out,
                 TorchCpuCapability cap = TorchCpuCapability::Avx2);

// torch.linalg.vector_norm(x) of a contiguous float32 tensor of n elements on
// torch's CPU kernel (see above).
float torch_vector_norm(const float* x, int64_t n, TorchCpuCapability cap = TorchCpuCapability::Avx2);

// One entry of the transformer batch of a step.
struct CfgBatchEntry {
  int latent;     // index into the [B * k] latents
  int prompt;     // index into the B prompts (latent / k)
  bool negative;  // negative_prompt_embeds[prompt] instead of prompt_embeds[prompt]
  bool operator==(const CfgBatchEntry&) const = default;
};

// The batch ZImagePipeline sends to the transformer at a step: num_prompts
// prompts, k images per prompt, apply_cfg as cfg_scale_at_step(...) > 0.
// Returns 2 * B * k entries with CFG (positive half first), B * k without.
// Output j of the positive half and output j of the negative half combine into
// noise_pred for latent j.
std::vector<CfgBatchEntry> zimage_transformer_batch(int num_prompts, int images_per_prompt, bool apply_cfg);

}  // namespace zimage

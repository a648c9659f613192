// Ref: diffusers/schedulers/scheduling_flow_match_euler_discrete.py (FlowMatchEulerDiscreteScheduler)
//      diffusers/pipelines/z_image/pipeline_z_image.py (calculate_shift, retrieve_timesteps,
//      get_default_z_image_sigmas, the timestep fed to the transformer)
//
// The schedule reproduces diffusers bit for bit, every dtype transition
// included (docs/scheduler.md has the recipe line by line):
//   - custom sigmas (what ZImagePipeline always passes): the list becomes a
//     numpy float32 array; the shift s * x / (1 + (s - 1) * x) (or the dynamic
//     time shift with mu) is evaluated in numpy float32, the Python scalars
//     rounded to float32 first (NEP 50);
//   - custom timesteps: float32, divided by num_train_timesteps in float32,
//     then as above (and the timesteps are recomputed from the shifted sigmas);
//   - neither: numpy float64 linspace between the constructor's shifted
//     sigma_max * N and sigma_min * N, the shift in float64, one rounding to
//     float32 at the end;
//   then timesteps = sigmas * N in float32 and a final sigma 0 appended.
// Shapes: sigmas [n + 1], timesteps [n].
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/torch_generator.h"  // TorchCpuCapability

namespace zimage {

// scheduler/scheduler_config.json as save_pretrained writes it.
struct FlowMatchSchedulerConfig {
  int num_train_timesteps = 1000;
  double shift = 1.0;
  bool use_dynamic_shifting = false;
  double base_shift = 0.5, max_shift = 1.15;
  int base_image_seq_len = 256, max_image_seq_len = 4096;
  std::string time_shift_type = "exponential";  // or "linear"
  // Everything the reference does not implement is refused when loading, with
  // an error naming the key: shift_terminal (non-null and non-zero),
  // use_karras_sigmas, use_exponential_sigmas, use_beta_sigmas, invert_sigmas,
  // stochastic_sampling (true); unknown keys; a _class_name other than
  // FlowMatchEulerDiscreteScheduler.

  // Throws zimage::Error naming `source` and the field when a value is out of range.
  void validate(const std::string& source) const;
};

// Errors name the file (or `source`) and the key.
FlowMatchSchedulerConfig load_scheduler_config(const std::string& json_path);
FlowMatchSchedulerConfig scheduler_config_from_json_text(const std::string& text, const std::string& source);

// ZImagePipeline's calculate_shift (mu), in double as Python computes it:
// m = (max_shift - base_shift) / (max_len - base_len); b = base_shift - m * base_len;
// mu = image_seq_len * m + b. (config.get(key, default) reads the same fields.)
double calculate_shift(int64_t image_seq_len, const FlowMatchSchedulerConfig&);

// The pipeline's image_seq_len for a latent of H x W: (H / 2) * (W / 2).
int64_t zimage_image_seq_len(int64_t latent_h, int64_t latent_w);

// get_default_z_image_sigmas(n) = torch.linspace(1.0, 1 / n, n).tolist():
// float32 values (as doubles). torch's linspace kernel computes
// start + step * i for i < n / 2 and end - step * (n - 1 - i) after, in float;
// the AVX2 build fuses both into FMAs (cap), which changes the last bit for
// some n (9, 13, 15, 17, ...; docs/scheduler.md).
std::vector<double> default_zimage_sigmas(int num_inference_steps,
                                          TorchCpuCapability cap = TorchCpuCapability::Avx2);

struct Schedule {
  std::vector<float> sigmas;     // n + 1 entries, the last one 0
  std::vector<float> timesteps;  // n entries: sigmas[i] * num_train_timesteps in float32
  int steps() const { return int(timesteps.size()); }
};

// FlowMatchEulerDiscreteScheduler.set_timesteps(num_inference_steps, sigmas=, mu=, timesteps=).
// num_inference_steps: > 0, or 0 for None (then the length of sigmas / timesteps,
// as retrieve_timesteps calls it). mu is required with use_dynamic_shifting and
// ignored without it. With both sigmas and timesteps, sigmas win (timesteps
// must have the same length and are otherwise unused), as in diffusers.
Schedule flow_match_set_timesteps(const FlowMatchSchedulerConfig&, int num_inference_steps,
                                  std::optional<std::vector<double>> sigmas, std::optional<double> mu,
                                  std::optional<std::vector<double>> timesteps = std::nullopt);

// What ZImagePipeline.__call__ does before its loop: sigmas = custom_sigmas or
// get_default_z_image_sigmas(n); mu = calculate_shift(image_seq_len, config);
// retrieve_timesteps(scheduler, n, sigmas=sigmas, mu=mu). With custom sigmas
// the step count is len(custom_sigmas) (the pipeline does not pass n on).
Schedule zimage_pipeline_schedule(const FlowMatchSchedulerConfig&, int num_inference_steps, int64_t image_seq_len,
                                  std::optional<std::vector<double>> custom_sigmas = std::nullopt,
                                  TorchCpuCapability cap = TorchCpuCapability::Avx2);

// One Euler step for step index i (the pipeline calls set_begin_index(0), so
// step i of the loop uses sigmas[i] and sigmas[i + 1]), elementwise in fp32:
//   dt = sigmas[i + 1] - sigmas[i];  sample = sample + dt * model_output
// (two roundings: torch runs the multiply and the add as separate kernels).
// model_output is what the pipeline passes: the negated (CFG-combined)
// transformer output. Mutation::SigmasTimestepsOutOfStep uses sigmas[i + 2] -
// sigmas[i + 1] (clamped to the last sigma) instead.
void flow_match_step(const Schedule&, int step_index, const float* model_output, float* sample, int64_t n);

// What ZImagePipeline feeds the transformer at step i: (1000 - t_i) / 1000 in
// float32 (t_i = timesteps[i]; 1000 is literal in the pipeline, not
// num_train_timesteps). The same values, as doubles, are _precomputed_t_norms.
float zimage_model_timestep(const Schedule&, int step_index);

}  // namespace zimage

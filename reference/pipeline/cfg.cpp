#include "pipeline/cfg.h"

#include <cmath>
#include <string>

#include "core/error.h"

namespace zimage {

double cfg_scale_at_step(const CfgOptions& o, const Schedule& s, int i) {
  ZIMAGE_CHECK(i >= 0 && i < s.steps(), "cfg_scale_at_step: step index " + std::to_string(i) + " outside a schedule of " +
                                            std::to_string(s.steps()) + " steps");
  if (!(o.guidance_scale > 0)) return 0.0;  // do_classifier_free_guidance is False
  double g = o.guidance_scale;
  // _precomputed_t_norms exists only when float(cfg_truncation) <= 1; the float32
  // t_norm is compared as a Python float (double).
  if (o.cfg_truncation <= 1.0 && double(zimage_model_timestep(s, i)) > o.cfg_truncation) g = 0.0;
  return g > 0 ? g : 0.0;
}

float torch_vector_norm(const float* x, int64_t n, TorchCpuCapability cap) {
  ZIMAGE_CHECK(n >= 0, "torch_vector_norm: negative length");
  constexpr int kLanes = 8;  // Vectorized<float>::size() of the kernel torch runs (measured: also on AVX512)
  float acc[kLanes] = {};
  int64_t d = 0;
  for (; d < n - (n % kLanes); d += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const float sq = x[d + l] * x[d + l];
      acc[l] = acc[l] + sq;
    }
  float total = acc[0];
  for (int l = 1; l < kLanes; ++l) total = total + acc[l];
  // The n % 8 tail: `buffer[0] += v * v` in a scalar loop. On the AVX2 build GCC
  // vectorizes it 4 wide (the squares rounded, then added in order, as an
  // in-order reduction) and contracts the scalar remainder into FMAs; the
  // DEFAULT build rounds every square. Measured on 300 vectors per length 1..40.
  const int64_t tail_vec_end = d + (cap == TorchCpuCapability::Avx2 ? ((n - d) / 4) * 4 : n - d);
  for (; d < n; ++d) {
    if (d >= tail_vec_end) {
      total = std::fma(x[d], x[d], total);
    } else {
      const float sq = x[d] * x[d];
      total = total + sq;
    }
  }
  return std::sqrt(total);
}

bool cfg_combine(const float* pos, const float* neg, int64_t n, double g, double cfg_normalization, float* out,
                 TorchCpuCapability cap) {
  ZIMAGE_CHECK(n > 0, "cfg_combine: empty item");
  ZIMAGE_CHECK(std::isfinite(g), "cfg_combine: guidance scale is not finite");
  const float g32 = static_cast<float>(g);  // the Python float scalar becomes a float32 operand
  // Norm of pos before out (which may alias pos) is written.
  const bool normalize = cfg_normalization > 0.0;
  const float pos_norm = normalize ? torch_vector_norm(pos, n, cap) : 0.0f;
  for (int64_t k = 0; k < n; ++k) {
    const float diff = pos[k] - neg[k];
    const float scaled = g32 * diff;
    out[k] = pos[k] + scaled;
  }
  if (!normalize) return false;
  const float new_norm = torch_vector_norm(out, n, cap);
  const float max_norm = pos_norm * static_cast<float>(cfg_normalization);
  if (!(new_norm > max_norm)) return false;
  const float ratio = max_norm / new_norm;
  for (int64_t k = 0; k < n; ++k) out[k] = out[k] * ratio;
  return true;
}

std::vector<CfgBatchEntry> zimage_transformer_batch(int num_prompts, int images_per_prompt, bool apply_cfg) {
  ZIMAGE_CHECK(num_prompts > 0, "zimage_transformer_batch: num_prompts must be positive, got " + std::to_string(num_prompts));
  ZIMAGE_CHECK(images_per_prompt > 0,
               "zimage_transformer_batch: num_images_per_prompt must be positive, got " + std::to_string(images_per_prompt));
  std::vector<CfgBatchEntry> out;
  const int B = num_prompts * images_per_prompt;
  for (int half = 0; half < (apply_cfg ? 2 : 1); ++half)
    for (int j = 0; j < B; ++j) out.push_back({j, j / images_per_prompt, half == 1});
  return out;
}

}  // namespace zimage

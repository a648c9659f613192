// qwen3_cos_sin_table on its own, in zimage_cuda_kernels (cuda/CMakeLists.txt): it uses only the
// reference's qwen3_rope_angles, which holds no mutation branch, so the CUDA mutation tests can link
// it with the mutants build of the reference.
#include "qwen3_rope_table.h"

#include <cmath>

#include "text_encoder/qwen3_modules.h"

namespace zimage::gpu {

Tensor<float> qwen3_cos_sin_table(const Qwen3Config& cfg, int64_t L) {
  const int half = cfg.head_dim / 2;
  const Tensor<float> a = qwen3_rope_angles(cfg.head_dim, L, cfg.rope_theta);
  Tensor<float> cs({L, int64_t(half), 2});
  for (int64_t i = 0; i < L * half; ++i) {
    cs[2 * i] = float(std::cos(double(a[i])));
    cs[2 * i + 1] = float(std::sin(double(a[i])));
  }
  return cs;
}

}  // namespace zimage::gpu

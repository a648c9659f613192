// Part of transformer_z_image.py TimestepEmbedder.timestep_embedding, on its own (no Eigen) so
// that the CUDA kernel's launcher can include it.
#pragma once
#include <cmath>
#include <vector>

namespace zimage {

// TimestepEmbedder.timestep_embedding(t, dim, max_period=10000): the period Z-Image uses.
inline constexpr double kTimestepMaxPeriod = 10000.0;

// Ref: transformer_z_image.py TimestepEmbedder.timestep_embedding (freqs = exp(-ln(max_period) *
// arange(half) / half) in fp32).
// The fp32 frequencies freqs_k = exp(fp32(-ln(max_period)) * k / half), k < dim / 2: one table
// for this reference and the CUDA kernel (cuda/kernels/timestep_embedding.h), so both multiply t
// by the same bits (a device expf one ulp away moves sin at t ~ 1000 by 6e-5: docs/timestep.md).
inline std::vector<float> timestep_frequencies(int dim, double max_period = kTimestepMaxPeriod) {
  const int half = dim / 2;
  const float neg_log = -float(std::log(max_period));
  std::vector<float> freqs(size_t(half > 0 ? half : 0));
  for (int k = 0; k < half; ++k) freqs[size_t(k)] = std::exp(neg_log * float(k) / float(half));
  return freqs;
}

}  // namespace zimage

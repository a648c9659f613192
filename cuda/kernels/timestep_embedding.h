// Sinusoidal timestep embedding, cos first.
// Twin: reference/dit/timestep_embedder.h timestep_embedding
//       (TimestepEmbedder.timestep_embedding: freqs and args in fp32, then cos | sin).
// Shapes: t [B] fp32, already multiplied by t_scale -> emb [B, dim] in storage dtype:
//   freq_k = the twin's table (reference/dit/timestep_frequencies.h, computed on the host with
//   the same expression and libm, passed to the kernel by value), arg = t * freq_k (fp32: the same
//   bits as the twin), emb = [cos(arg), sin(arg)], a trailing 0 column when dim is odd.
// Versions: v2 (only; v1 computed freq_k with the device's expf, one ulp away from glibc's at
//   k = 2, which moved sin(arg) at t ~ 874 by 6e-5: docs/timestep.md). One thread per (b, k),
//   accurate cosf/sinf (no fast math); dim / 2 <= kTimestepMaxHalf.
#pragma once
#include "common.h"

namespace zimage::gpu {

inline constexpr int kTimestepMaxHalf = 512;  // the table travels as a 2 KB kernel parameter

void timestep_embedding(DType dt, const float* t, int64_t B, int64_t dim, double max_period, void* emb,
                        cudaStream_t stream);

}  // namespace zimage::gpu

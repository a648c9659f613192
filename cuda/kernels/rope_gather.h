// RoPE frequency gather with bounds checks.
// Twin: reference/dit/rope.h rope_embedder (RopeEmbedder.__call__): per axis a, row ids[n, a]
//       of table a, the axes concatenated in order.
// Shapes: tables: the fp32 (cos, sin) tables of reference/dit/rope.h precompute_freqs_cis<float>,
// concatenated: axis a holds [len_a, pairs_a, 2] at float offset offset_a. ids [N, 3] int32 ->
// freqs [N, sum(pairs_a), 2] fp32. Copies only (T0).
// Out of table positions: the host checks first (check_rope_positions, same one-line error as the
// reference); the kernel still guards every read: a position outside its table writes NaN to that
// pair and sets *error_flag to 1 (never an out-of-bounds read). rope_gather() checks the flag
// before returning and throws naming the first bad row.
// Versions: v1 (only): one thread per (token, pair).
#pragma once
#include <vector>

#include "common.h"

namespace zimage::gpu {

struct RopeAxes {
  int n_axes = 0;
  int64_t offset[3] = {0, 0, 0};  // float offset of each table in the concatenated buffer
  int len[3] = {0, 0, 0};         // rows of each table
  int pairs[3] = {0, 0, 0};       // axes_dims[a] / 2
  int total_pairs() const { return pairs[0] + pairs[1] + pairs[2]; }
};

// Launch only (asynchronous); *error_flag (device int, zeroed by the caller) reports a bad id.
void rope_gather_async(const float* tables, const RopeAxes& axes, const int32_t* ids, int64_t N, float* freqs,
                       int* error_flag, cudaStream_t stream);

// Host-checked gather: `ids` on the host ([N, 3]) is checked against the tables first with the
// reference's message, then gathered on the device (ids uploaded to `ids_dev`, room for N * 3);
// synchronizes and throws if the kernel's guard fired.
void rope_gather(const float* tables, const RopeAxes& axes, const std::vector<int32_t>& ids, int32_t* ids_dev,
                 float* freqs, int* error_flag, cudaStream_t stream);

}  // namespace zimage::gpu

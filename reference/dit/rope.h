#pragma once
#include <vector>

#include "nn/common.h"

namespace zimage {

// The fp32 angle table of one axis: angle[p, k] = fp32(p * 1/theta^(2k/d)),
// the product taken in fp64 and cast to fp32, as diffusers does
// (torch.outer(timestep, freqs).float()). [len, d/2].
inline Tensor<float> rope_angles(int d, int len, double theta) {
  if (mutated(Mutation::RopeTheta10000)) theta = 10000.0;
  const int half = d / 2;
  std::vector<double> freqs(static_cast<size_t>(half));
  for (int k = 0; k < half; ++k) freqs[size_t(k)] = 1.0 / std::pow(theta, double(2 * k) / double(d));
  Tensor<float> angles({int64_t(len), int64_t(half)});
  for (int p = 0; p < len; ++p)
    for (int k = 0; k < half; ++k) angles[int64_t(p) * half + k] = float(double(p) * freqs[size_t(k)]);
  return angles;
}

// Ref: transformer_z_image.py RopeEmbedder.precompute_freqs_cis
// One table per axis a: [len_a, axes_dims[a]/2, 2] holding (cos, sin) of the
// fp32 angles, cos/sin evaluated in T. Every row depends only on its position,
// so a longer table (len_a > axes_lens[a], --rope-extend) repeats the shorter
// one bit for bit.
template <class T>
std::vector<Tensor<T>> precompute_freqs_cis(const std::vector<int>& axes_dims, const std::vector<int>& lens, double theta) {
  std::vector<Tensor<T>> tables;
  for (size_t a = 0; a < axes_dims.size(); ++a) {
    const Tensor<float> angles = rope_angles(axes_dims[a], lens[a], theta);
    Tensor<T> table({angles.dim(0), angles.dim(1), 2});
    for (int64_t i = 0; i < angles.numel(); ++i) {
      table[2 * i] = std::cos(T(angles[i]));
      table[2 * i + 1] = std::sin(T(angles[i]));
    }
    tables.push_back(std::move(table));
  }
  return tables;
}

// Ref: transformer_z_image.py RopeEmbedder.__call__
// ids [N, 3] -> freqs_cis [N, D/2, 2]: per axis, row ids[n, a] of table a,
// the axes concatenated in order. An id outside a table is an error, never
// an out-of-bounds read (diffusers raises IndexError there).
template <class T>
Tensor<T> rope_embedder(const std::vector<Tensor<T>>& tables, const Tensor<int32_t>& ids) {
  const int64_t N = ids.dim(0), n_axes = int64_t(tables.size());
  ZIMAGE_CHECK(ids.dim(1) == n_axes, "rope_embedder: ids " + shape_str(ids.shape) + " for " + std::to_string(n_axes) + " axes");
  int64_t pairs = 0;
  for (const auto& tb : tables) pairs += tb.dim(1);
  std::vector<int64_t> order(static_cast<size_t>(n_axes));
  for (int64_t a = 0; a < n_axes; ++a) order[size_t(a)] = a;
  if (mutated(Mutation::RopeAxesPermuted) && n_axes >= 2) std::swap(order[0], order[1]);
  Tensor<T> out({N, pairs, 2});
  for (int64_t n = 0; n < N; ++n) {
    T* dst = out.ptr() + n * pairs * 2;
    for (int64_t a : order) {
      const Tensor<T>& tb = tables[size_t(a)];
      const int64_t pos = ids[n * n_axes + a];
      ZIMAGE_CHECK(pos >= 0 && pos < tb.dim(0),
                   "rope_embedder: position " + std::to_string(pos) + " on axis " + std::to_string(a) +
                       " is outside the RoPE table of " + std::to_string(tb.dim(0)) + " rows (axes_lens[" +
                       std::to_string(a) + "])");
      const int64_t w = tb.dim(1) * 2;
      std::copy(tb.ptr() + pos * w, tb.ptr() + (pos + 1) * w, dst);
      dst += w;
    }
  }
  return out;
}

// Ref: transformer_z_image.py ZSingleStreamAttnProcessor.__call__.apply_rotary_emb
// x [B, L, H, D] rotated in place by freqs [B, L, D/2, 2] (shared by heads):
// complex multiply of interleaved adjacent pairs (x[2k], x[2k+1]).
template <class T>
void apply_rotary_emb(Tensor<T>& x, const Tensor<T>& freqs) {
  const int64_t B = x.dim(0), L = x.dim(1), H = x.dim(2), D = x.dim(3);
  ZIMAGE_CHECK(freqs.dim(0) == B && freqs.dim(1) == L && freqs.dim(2) * 2 == D,
               "apply_rotary_emb: freqs " + shape_str(freqs.shape) + " for x " + shape_str(x.shape));
  const bool half_split = mutated(Mutation::RopeHalfSplit);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l) {
      const T* f = freqs.ptr() + (b * L + l) * D;
      for (int64_t h = 0; h < H; ++h) {
        T* v = x.ptr() + ((b * L + l) * H + h) * D;
        for (int64_t k = 0; k < D / 2; ++k) {
          const int64_t i0 = half_split ? k : 2 * k, i1 = half_split ? k + D / 2 : 2 * k + 1;
          const T re = v[i0], im = v[i1], c = f[2 * k], s = f[2 * k + 1];
          v[i0] = re * c - im * s;
          v[i1] = re * s + im * c;
        }
      }
    }
}

}  // namespace zimage

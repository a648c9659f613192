// The Qwen3 kernel cases and host helpers that the Qwen3 CUDA tests (test_cuda_qwen3.cpp, against
// the shipped library) and their mutation tests (test_cuda_qwen3_mutations.cpp, against the
// mutants build) share.
#pragma once
#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "cuda_support.h"
#include "text_encoder/qwen3_config.h"

namespace zimage::testing {

// A [B, L] padding mask: item b has lens[b] real tokens, at the end (left padding) or the start.
inline Tensor<int32_t> pad_mask(int64_t L, const std::vector<int64_t>& lens, bool left) {
  Tensor<int32_t> m({int64_t(lens.size()), L}, 0);
  for (size_t b = 0; b < lens.size(); ++b)
    for (int64_t l = 0; l < L; ++l) m[int64_t(b) * L + l] = left ? l >= L - lens[b] : l < lens[b];
  return m;
}

// The fused qkv rows [B, L, (H + 2G) D] of q [B, L, H, D], k and v [B, L, G, D].
inline Tensor<float> fuse_qkv(const Tensor<float>& q, const Tensor<float>& k, const Tensor<float>& v) {
  const int64_t N = q.dim(0) * q.dim(1), QD = q.dim(2) * q.dim(3), KD = k.dim(2) * k.dim(3), W = QD + 2 * KD;
  Tensor<float> out({q.dim(0), q.dim(1), W});
  for (int64_t n = 0; n < N; ++n) {
    std::copy(q.ptr() + n * QD, q.ptr() + (n + 1) * QD, out.ptr() + n * W);
    std::copy(k.ptr() + n * KD, k.ptr() + (n + 1) * KD, out.ptr() + n * W + QD);
    std::copy(v.ptr() + n * KD, v.ptr() + (n + 1) * KD, out.ptr() + n * W + QD + KD);
  }
  return out;
}
// Columns [c0, c0 + width) of rows [N, W] as [shape].
inline Tensor<float> columns(const Tensor<float>& rows, int64_t c0, int64_t width, Shape shape) {
  const int64_t W = rows.dim(-1), N = rows.numel() / W;
  Tensor<float> out(std::move(shape));
  for (int64_t n = 0; n < N; ++n) std::copy(rows.ptr() + n * W + c0, rows.ptr() + n * W + c0 + width, out.ptr() + n * width);
  return out;
}

inline Qwen3Config small_config() {
  Qwen3Config c;
  c.vocab_size = 300;
  c.hidden_size = 64;
  c.intermediate_size = 160;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  return c;
}

struct QkCase {
  DType dt;
  int64_t B, L, H, G, D;
};
inline std::string qk_name(const ::testing::TestParamInfo<QkCase>& i) {
  const QkCase& c = i.param;
  return testing::dtype_tag(c.dt) + "_B" + std::to_string(c.B) + "_L" + std::to_string(c.L) + "_H" + std::to_string(c.H) +
         "_G" + std::to_string(c.G) + "_D" + std::to_string(c.D);
}
inline std::vector<QkCase> qk_cases() {
  std::vector<QkCase> out;
  for (DType dt : {DType::F32, DType::BF16})
    for (auto [B, L, H, G, D] : std::vector<std::array<int64_t, 5>>{{1, 97, 32, 8, 128}, {2, 12, 8, 2, 16}, {2, 37, 4, 4, 64}})
      out.push_back({dt, B, L, H, G, D});
  return out;
}

struct AttnCase {
  DType dt;
  int64_t L, H, G, D;
  bool left;
};
inline std::string attn_name(const ::testing::TestParamInfo<AttnCase>& i) {
  const AttnCase& c = i.param;
  return testing::dtype_tag(c.dt) + "_L" + std::to_string(c.L) + "_H" + std::to_string(c.H) + "_G" + std::to_string(c.G) +
         "_D" + std::to_string(c.D) + (c.left ? "_left" : "_right");
}
inline std::vector<AttnCase> attn_cases() {
  std::vector<AttnCase> out;
  for (DType dt : {DType::F32, DType::BF16})
    for (bool left : {true, false})
      for (auto [L, H, G, D] : std::vector<std::array<int64_t, 4>>{{97, 32, 8, 128}, {512, 32, 8, 128}, {12, 8, 2, 16}, {70, 6, 3, 64}})
        out.push_back({dt, L, H, G, D, left});
  return out;
}

}  // namespace zimage::testing

// The Qwen3 kernel cases and host helpers that the Qwen3 CUDA tests (test_cuda_qwen3.cpp, against
// the shipped library) and their mutation tests (test_cuda_qwen3_mutations.cpp, against the
// mutants build) share.
#pragma once
#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "cuda_support.h"
#include "kernels/flash_attention.h"
#include "kernels/qwen3_qk_norm_rope.h"
#include "qwen3_rope_table.h"
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

// One qwen3_qk_norm_rope launch for case c (small_config with the case's heads and head_dim):
// q [B, L, H, D] and k [B, L, G, D] ~ N(0, 2^2), v [B, L, G, D] ~ N(0, 1), the norm weights 1 + N(0, 0.2^2), all rounded to
// the case's dtype, fused with v into qkv rows; `got` is those rows after the kernel (q and k
// normalized and rotated in place), the buffer's guards checked.
struct QkRun {
  Qwen3Config cfg;
  Tensor<float> q, k, v, wq, wk, got;
};
inline QkRun run_qk_norm_rope(const QkCase& c) {
  QkRun r;
  r.cfg = small_config();
  r.cfg.num_attention_heads = int(c.H), r.cfg.num_key_value_heads = int(c.G), r.cfg.head_dim = int(c.D);
  const uint64_t seed = test_seed();
  r.q = round_to(c.dt, randn<float>({c.B, c.L, c.H, c.D}, seed, 2.0));
  r.k = round_to(c.dt, randn<float>({c.B, c.L, c.G, c.D}, seed + 1, 2.0));
  r.v = round_to(c.dt, randn<float>({c.B, c.L, c.G, c.D}, seed + 2));
  r.wq = randn<float>({c.D}, seed + 3, 0.2), r.wk = randn<float>({c.D}, seed + 4, 0.2);
  for (auto* w : {&r.wq, &r.wk})
    for (auto& x : w->data) x += 1;
  r.wq = round_to(c.dt, r.wq), r.wk = round_to(c.dt, r.wk);

  const int64_t W = (c.H + 2 * c.G) * c.D;
  Guarded qkv(c.dt, {c.B, c.L, W});
  upload_into_guarded(fuse_qkv(r.q, r.k, r.v), c.dt, qkv);
  const auto wqd = to_device(r.wq, c.dt), wkd = to_device(r.wk, c.dt);
  const auto csd = to_device(gpu::qwen3_cos_sin_table(r.cfg, c.L), DType::F32);
  const gpu::DevRows q{qkv.data(), W, c.dt};
  gpu::qwen3_qk_norm_rope(q, q.from_col(c.H * c.D), {wqd.data(), wkd.data(), r.cfg.rms_norm_eps},
                          static_cast<const float*>(csd.data()), {c.B, c.L, c.H, c.D}, c.G, rt().stream());
  r.got = qkv.host();
  qkv.expect_guards_intact("qwen3_qk_norm_rope");
  return r;
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

// One grouped causal flash_attention launch for case c, as Qwen3 runs it (G key/value heads,
// causal, a query with no allowed key exactly 0): B = 3 items of lengths L, L/2 + 1 and 1, padded
// on the case's side (`mask`); q [B, L, H, D] and k [B, L, G, D] ~ N(0, 2^2), v [B, L, G, D] ~ N(0, 1),
// all rounded to the case's dtype; `got` [B, L, H, D], the output buffer's guards checked.
struct AttnRun {
  int64_t B = 3;
  Tensor<float> q, k, v, got;
  Tensor<int32_t> mask;
};
inline AttnRun run_grouped_attention(const AttnCase& c) {
  AttnRun r;
  const int64_t B = r.B;
  const uint64_t seed = test_seed();
  r.q = round_to(c.dt, randn<float>({B, c.L, c.H, c.D}, seed, 2.0));
  r.k = round_to(c.dt, randn<float>({B, c.L, c.G, c.D}, seed + 1, 2.0));
  r.v = round_to(c.dt, randn<float>({B, c.L, c.G, c.D}, seed + 2));
  r.mask = pad_mask(c.L, {c.L, c.L / 2 + 1, 1}, c.left);
  const int64_t W = (c.H + 2 * c.G) * c.D;
  const auto qkv = to_device(fuse_qkv(r.q, r.k, r.v), c.dt);
  gpu::DeviceBuffer mask_d(size_t(r.mask.numel()) * sizeof(int32_t));
  copy_to_device(mask_d.get(), r.mask.ptr(), size_t(r.mask.numel()) * sizeof(int32_t));
  gpu::AttentionVariant var;
  var.kv_heads = c.G, var.causal = true, var.zero_empty_rows = true;
  Guarded out(c.dt, {B, c.L, c.H, c.D});
  const gpu::ConstDevRows qkv_rows{qkv.data(), W, c.dt};
  gpu::flash_attention(qkv_rows, qkv_rows.from_col(c.H * c.D), qkv_rows.from_col((c.H + c.G) * c.D),
                       mask_d.as<const int32_t>(), {out.data(), c.H * c.D, c.dt}, {B, c.L, c.H, c.D}, rt().stream(),
                       gpu::AttentionVersion::automatic, nullptr, var);
  r.got = out.host();
  out.expect_guards_intact("qwen3 attention");
  return r;
}

}  // namespace zimage::testing

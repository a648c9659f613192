// flash_attention (every AttentionVersion) against scaled_dot_product_attention: fp32 T3 against
// the fp64 reference, bf16 T4 (absolute bound + peer rule against a host emulation of torch's
// bf16 math backend: scores, softmax and output each rounded to bf16). Reads q/k/v from the fused
// [L, 3C] layout (weight_layout.h). Key masks (batch 2, ragged lengths), real shapes (30 heads of
// 128 at 4096 + 32 and 4096 + 512 tokens: the fp64 reference is computed for heads 0 and 29) and
// ragged ones (97, 1025), every head_dim bucket (8 to 256). Guard bands on the output; two runs
// bitwise equal; mma_wide also bitwise mma. A version that cannot run a case here (cudnn without a
// loadable cuDNN, mma_wide past head_dim 128) skips with the reason. fp32 also gets the peer rule with torch's own fp32 SDPA as the peer
// (FlashAttentionFp32Peer: golden/sdpa_fp32_peer.safetensors, B 1, H 2, D 128, L 1025 / 4128 / 4608).
#include <algorithm>
#include <limits>

#include "cuda_support.h"
#include "weight_layout.h"
#include "kernels/flash_attention.h"
#include "kernels/flash_attention_mma.h"
#include "dit/attention.h"
#include "dit/patchify.h"
#include "support/expect_errors.h"
#include "support/sdpa_peer.h"

namespace zimage {
namespace {

using testing::DType;

struct AttnCase {
  DType dt;
  int64_t B, L, H, D;
  std::vector<int64_t> seqlens;  // empty: no mask
  gpu::AttentionVersion version;
};

std::string attn_name(const AttnCase& c) {
  std::string s = std::string(gpu::attention_version_name(c.version)) + "_" + testing::dtype_tag(c.dt) + "_B" +
                  std::to_string(c.B) + "_L" + std::to_string(c.L) + "_H" + std::to_string(c.H) + "_D" + std::to_string(c.D);
  for (auto l : c.seqlens) s += "_s" + std::to_string(l);
  return s;
}

// Every version on the dtypes it is built for (mma and cudnn: bf16 only): the real shapes, masked
// batches, and every head_dim bucket (8, 64, 96, 200, 256 besides 32 and 128), each plain and as a
// ragged masked batch.
std::vector<AttnCase> attn_cases() {
  std::vector<AttnCase> out;
  for (auto v : gpu::kAttentionVersions)
    for (DType dt : {DType::F32, DType::BF16}) {
      if (dt == DType::F32 && v != gpu::AttentionVersion::v1_simt) continue;
      out.push_back({dt, 1, 97, 30, 128, {}, v});
      out.push_back({dt, 1, 1025, 30, 128, {}, v});
      out.push_back({dt, 1, 4096 + 32, 30, 128, {}, v});
      out.push_back({dt, 1, 4096 + 512, 30, 128, {}, v});
      out.push_back({dt, 2, 1025, 4, 128, {1025, 97}, v});
      out.push_back({dt, 2, 97, 2, 32, {64, 97}, v});
      out.push_back({dt, 3, 67, 3, 32, {67, 1, 33}, v});
      for (int64_t D : {8, 64, 96, 200, 256}) {
        out.push_back({dt, 1, 300, 3, D, {}, v});
        out.push_back({dt, 2, 300, 2, D, {300, 131}, v});
      }
    }
  return out;
}

// Heads of [B, L, H, D] kept in `heads`, as [B, L, heads.size(), D].
template <class T>
Tensor<T> select_heads(const Tensor<T>& x, const std::vector<int64_t>& heads) {
  const int64_t B = x.dim(0), L = x.dim(1), H = x.dim(2), D = x.dim(3), K = int64_t(heads.size());
  Tensor<T> out({B, L, K, D});
  for (int64_t n = 0; n < B * L; ++n)
    for (int64_t k = 0; k < K; ++k)
      std::copy(x.ptr() + (n * H + heads[size_t(k)]) * D, x.ptr() + (n * H + heads[size_t(k)] + 1) * D,
                out.ptr() + (n * K + k) * D);
  return out;
}

// torch's math backend in bf16: S = bf16(q k^T), bf16(S * scale), P = bf16(softmax(S)), O = bf16(P v).
Tensor<float> peer_sdpa(DType dt, const Tensor<float>& q, const Tensor<float>& k, const Tensor<float>& v,
                        const KeyMask* mask) {
  const int64_t B = q.dim(0), L = q.dim(1), H = q.dim(2), D = q.dim(3);
  Tensor<float> out(q.shape);
  const float scale = 1.0f / std::sqrt(float(D));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      Tensor<float> S({L, L});
      for (int64_t i = 0; i < L; ++i)
        for (int64_t j = 0; j < L; ++j) {
          float s = 0;
          for (int64_t d = 0; d < D; ++d) s += q[((b * L + i) * H + h) * D + d] * k[((b * L + j) * H + h) * D + d];
          S[i * L + j] = s;
        }
      S = testing::round_to(dt, S);
      for (auto& s : S.data) s *= scale;
      S = testing::round_to(dt, S);
      for (int64_t i = 0; i < L; ++i) {
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < L; ++j) {
          if (mask && (*mask)[b * L + j] == 0) S[i * L + j] = -std::numeric_limits<float>::infinity();
          mx = std::max(mx, S[i * L + j]);
        }
        float sum = 0;
        for (int64_t j = 0; j < L; ++j) sum += (S[i * L + j] = std::exp(S[i * L + j] - mx));
        for (int64_t j = 0; j < L; ++j) S[i * L + j] /= sum;
      }
      S = testing::round_to(dt, S);
      for (int64_t i = 0; i < L; ++i)
        for (int64_t d = 0; d < D; ++d) {
          float o = 0;
          for (int64_t j = 0; j < L; ++j) o += S[i * L + j] * v[((b * L + j) * H + h) * D + d];
          out[((b * L + i) * H + h) * D + d] = o;
        }
    }
  return testing::round_to(dt, out);
}

class FlashAttention : public ::testing::TestWithParam<AttnCase> {};

TEST_P(FlashAttention, AgainstSdpa) {
  ZIMAGE_REQUIRE_CUDA();
  const AttnCase& c = GetParam();
  const int64_t B = c.B, L = c.L, H = c.H, D = c.D, C = H * D;
  std::string why;
  if (!gpu::attention_supports(c.version, c.dt, D, 3 * C, C, &why)) GTEST_SKIP() << attn_name(c) << ": " << why;
  const uint64_t seed = testing::test_seed();
  // q, k after qk-norm are O(1); a scale of 2 makes the softmax peaked enough to matter.
  const Tensor<float> qkv = testing::round_to(c.dt, testing::randn<float>({B * L, 3 * C}, seed, 2.0));
  const auto qkv_d = testing::to_device(qkv, c.dt);
  std::optional<KeyMask> mask;
  gpu::DeviceBuffer mask_d;
  if (!c.seqlens.empty()) {
    mask = key_mask(c.seqlens);
    ASSERT_TRUE(mask.has_value());
    mask_d = gpu::DeviceBuffer(size_t(mask->numel()) * sizeof(int32_t));
    testing::copy_to_device(mask_d.get(), mask->ptr(), size_t(mask->numel()) * sizeof(int32_t));
  }
  auto run = [&](testing::Guarded& out) {
    const gpu::ConstDevRows qkv{qkv_d.data(), 3 * C, c.dt};
    gpu::flash_attention(qkv, qkv.from_col(C), qkv.from_col(2 * C), mask ? mask_d.as<const int32_t>() : nullptr,
                         {out.data(), C, c.dt}, {B, L, H, D}, testing::rt().stream(), c.version,
                         c.seqlens.empty() ? nullptr : &c.seqlens);
  };
  testing::Guarded out(c.dt, {B, L, H, D}), again(c.dt, {B, L, H, D});
  run(out);
  run(again);
  const Tensor<float> got = out.host();
  testing::expect_exact("flash_attention run twice " + attn_name(c), numerics::compare(again.host(), got));
  out.expect_guards_intact("flash_attention " + attn_name(c));
  if (c.version == gpu::AttentionVersion::mma_wide) {
    // The same per-row arithmetic as mma in another tiling: bit for bit mma's output.
    testing::Guarded narrow(c.dt, {B, L, H, D});
    const gpu::ConstDevRows rows{qkv_d.data(), 3 * C, c.dt};
    gpu::flash_attention(rows, rows.from_col(C), rows.from_col(2 * C), mask ? mask_d.as<const int32_t>() : nullptr,
                         {narrow.data(), C, c.dt}, {B, L, H, D}, testing::rt().stream(), gpu::AttentionVersion::mma,
                         c.seqlens.empty() ? nullptr : &c.seqlens);
    testing::expect_exact("flash_attention mma_wide against mma " + attn_name(c), numerics::compare(got, narrow.host()));
    narrow.expect_guards_intact("flash_attention mma " + attn_name(c));
  }

  const Tensor<float> q = gpu::qkv_part(qkv, 0).reshaped({B, L, H, D}), k = gpu::qkv_part(qkv, 1).reshaped({B, L, H, D}),
                      v = gpu::qkv_part(qkv, 2).reshaped({B, L, H, D});
  std::vector<int64_t> heads;
  if (H > 4) heads = {0, H - 1};  // real size: the fp64 reference for two heads
  else
    for (int64_t h = 0; h < H; ++h) heads.push_back(h);
  const Tensor<float> qs = select_heads(q, heads), ks = select_heads(k, heads), vs = select_heads(v, heads);
  const Tensor<double> ref = scaled_dot_product_attention(qs.cast<double>(), ks.cast<double>(), vs.cast<double>(),
                                                          mask ? &*mask : nullptr);
  const Tensor<float> cand = select_heads(got, heads);
  const std::vector<numerics::Op> ops{{"q k^T", 1, double(D), false}, {"softmax", 2, double(L), true},
                                      {"p v", 1, double(L), false}};
  std::optional<Tensor<float>> peer;
  if (c.dt != DType::F32 && L <= 1100) peer = peer_sdpa(c.dt, qs, ks, vs, mask ? &*mask : nullptr);
  if (c.dt != DType::F32 && !peer) std::printf("  (peer emulation skipped at L %lld: O(L^2) on the host)\n", (long long)L);
  testing::expect_t3_or_t4("flash_attention " + attn_name(c), c.dt, cand, peer ? &*peer : nullptr, ref, ops);
}

INSTANTIATE_TEST_SUITE_P(Cuda, FlashAttention, ::testing::ValuesIn(attn_cases()),
                         [](const auto& i) { return attn_name(i.param); });

// ---------------------------------------------------------------- fp32 peer rule (docs/attention.md)

// The fp32 peer (the FlashAttention rule applied to fp32): torch's own fp32 SDPA error against its
// fp64 SDPA, recorded on the CPU at these shapes (golden/sdpa_fp32_peer.safetensors,
// tools/golden/dump_sdpa_peer.py), with the inputs regenerated bit for bit here (TorchCpuGenerator;
// tests/golden/test_sdpa_peer_golden.cpp proves that in CI). Every version that runs fp32:
// rel_rms and max_n against our fp64 reference (all rows of both heads) must be at most
// 2 x torch's fp32 math-backend figures + the chain's T3 rel_rms budget (numerics::passes_peer).
struct Fp32PeerCase {
  int64_t L;
  gpu::AttentionVersion version;
};

// Only the versions that run fp32 at head_dim 128 (today v1_simt): a version without an fp32
// path is not a skipped case on every GPU run. attention_supports answers the dtype question
// before it looks for a device or a library.
std::vector<Fp32PeerCase> fp32_peer_cases() {
  std::vector<Fp32PeerCase> out;
  for (auto v : gpu::kAttentionVersions) {
    if (!gpu::attention_supports(v, DType::F32, 128, 3 * 256, 256)) continue;
    for (int64_t L : {1025, 4128, 4608}) out.push_back({L, v});
  }
  return out;
}

class FlashAttentionFp32Peer : public ::testing::TestWithParam<Fp32PeerCase> {};

TEST_P(FlashAttentionFp32Peer, TorchFp32SdpaIsThePeer) {
  ZIMAGE_REQUIRE_CUDA();
  const Fp32PeerCase& c = GetParam();
  const nlohmann::json rec = testing::sdpa_peer_record(c.L);
  const Shape s = rec.at("shape").get<Shape>();
  ASSERT_EQ(s, (Shape{1, c.L, 2, 128}));
  const int64_t B = s[0], L = s[1], H = s[2], D = s[3], C = H * D;
  std::string why;
  if (!gpu::attention_supports(c.version, DType::F32, D, 3 * C, C, &why))
    GTEST_SKIP() << gpu::attention_version_name(c.version) << " fp32: " << why;
  const testing::SdpaPeerInputs in = testing::sdpa_peer_inputs(rec);
  // The comparison with torch's figures holds only on torch's own inputs.
  for (const auto& [name, t] : {std::pair<const char*, const Tensor<float>*>{"q", &in.q}, {"k", &in.k}, {"v", &in.v}})
    ASSERT_EQ(testing::fnv1a64_hex(*t), rec.at("inputs").at(name).at("fnv1a64").get<std::string>())
        << name << ": regenerated inputs differ from the golden's";
  // The fused [B*L, 3C] layout flash_attention reads: row n = q[n] | k[n] | v[n].
  Tensor<float> qkv({B * L, 3 * C});
  for (int64_t n = 0; n < B * L; ++n)
    for (int p = 0; p < 3; ++p) {
      const Tensor<float>& src = p == 0 ? in.q : p == 1 ? in.k : in.v;
      std::copy(src.ptr() + n * C, src.ptr() + (n + 1) * C, qkv.ptr() + n * 3 * C + p * C);
    }
  const auto qkv_d = testing::to_device(qkv, DType::F32);
  testing::Guarded out(DType::F32, {B, L, H, D});
  const gpu::ConstDevRows qkv_rows{qkv_d.data(), 3 * C, DType::F32};
  gpu::flash_attention(qkv_rows, qkv_rows.from_col(C), qkv_rows.from_col(2 * C), nullptr, {out.data(), C, DType::F32},
                       {B, L, H, D}, testing::rt().stream(), c.version);
  const std::string what = std::string("flash_attention ") + gpu::attention_version_name(c.version) + " f32 L" +
                           std::to_string(L) + " H2 D128";
  out.expect_guards_intact(what);
  const Tensor<double> ref =
      scaled_dot_product_attention(in.q.cast<double>(), in.k.cast<double>(), in.v.cast<double>(), nullptr);
  const numerics::Comparison cand = numerics::compare(out.host(), ref);
  const numerics::Comparison peer = testing::recorded_comparison(rec.at("fp32_math"));
  const auto ops = testing::sdpa_ops(L, D);
  const double floor = numerics::budget_for(numerics::Tier::T3, ops).rel_rms;
  const std::string line = what + " fp32 peer (torch " +
                           testing::sdpa_peer_golden()->metadata().at("torch_version") + " CPU math SDPA): " +
                           numerics::describe_peer(cand, peer, floor);
  std::printf("  %s\n", line.c_str());
  const numerics::Comparison dflt = testing::recorded_comparison(rec.at("fp32_default"));
  std::printf("  (torch's default CPU backend %s: rel_rms %.3e max_n %.3e; ours / it: %.2f, %.2f)\n",
              rec.at("fp32_default").at("backend").get<std::string>().c_str(), dflt.rel_rms, dflt.max_n,
              cand.rel_rms / dflt.rel_rms, cand.max_n / dflt.max_n);
  EXPECT_TRUE(numerics::passes_peer(cand, peer, floor)) << line;
  testing::expect_within(what + " T3", cand, numerics::budget_for(numerics::Tier::T3, ops));
}

INSTANTIATE_TEST_SUITE_P(Cuda, FlashAttentionFp32Peer, ::testing::ValuesIn(fp32_peer_cases()),
                         [](const auto& i) {
                           return std::string(gpu::attention_version_name(i.param.version)) + "_f32_L" +
                                  std::to_string(i.param.L) + "_H2_D128";
                         });

// head_dim 12 and 264 run on no version: one line naming the head_dim, before any device work
// (null pointers: nothing may be read). The same refusal when a model with such a config is built.
TEST(CudaFlashAttention, HeadDimNoVersionRunsIsAnError_D12_D264) {
  for (int64_t D : {12, 264})
    for (auto v : {gpu::AttentionVersion::automatic, gpu::AttentionVersion::v1_simt}) {
      try {
        const gpu::ConstDevRows none{nullptr, 3 * D, DType::F32};
        gpu::flash_attention(none, none, none, nullptr, {nullptr, D, DType::F32}, {1, 4, 1, D}, nullptr, v);
        ADD_FAILURE() << "head_dim " << D << " was not refused";
      } catch (const Error& e) {
        const std::string msg = e.what();
        std::printf("  head_dim %lld, %s: %s\n", (long long)D, gpu::attention_version_name(v), msg.c_str());
        EXPECT_NE(msg.find(std::to_string(D)), std::string::npos) << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
      }
    }
}

// The row views (cuda/common.h): an operand in another dtype than q, or q, k, v with different row
// strides (they must be parts of one fused buffer), is one line naming the operand, before any
// device work (null pointers: nothing may be read). Runs without a GPU.
TEST(CudaFlashAttention, ViewsOfAnotherDtypeOrStrideAreAnError) {
  const int64_t D = 64, C = 2 * D;
  const gpu::ConstDevRows q{nullptr, 3 * C, DType::BF16};
  const gpu::DevRows out{nullptr, C, DType::BF16};
  struct Case {
    const char* what;
    gpu::ConstDevRows k, v;
    gpu::DevRows out;
    std::vector<std::string> named;
  };
  const std::vector<Case> cases = {
      {"k in float32", {nullptr, 3 * C, DType::F32}, q, out, {"k is float32", "bfloat16"}},
      {"out in float32", q, q, {nullptr, C, DType::F32}, {"out is float32"}},
      {"v with another row stride", q, {nullptr, C, DType::BF16}, out, {"one row stride", std::to_string(C)}},
  };
  for (const Case& c : cases) {
    try {
      gpu::flash_attention(q, c.k, c.v, nullptr, c.out, {1, 4, 2, D}, nullptr, gpu::AttentionVersion::v1_simt);
      ADD_FAILURE() << c.what << ": not refused";
    } catch (const Error& e) {
      const std::string msg = e.what();
      std::printf("  %s: %s\n", c.what, msg.c_str());
      for (const std::string& n : c.named) EXPECT_NE(msg.find(n), std::string::npos) << c.what << ": " << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
}

// The tensor-core versions' shared memory a block, by head-dim bucket (MmaConfig: (rows + 4 x 64 keys)
// rows of Dp + 8 bf16, plus two int32 mask tiles), against NVIDIA's documented opt-in limits: a GPU with 99 KiB
// a block (sm_86, sm_89) refuses mma above head_dim 128 and mma_wide above 64 with one line naming the
// bytes, so that the dispatcher runs another version there; sm_80 (163 KiB) and sm_90 (227 KiB) run
// them all. Host only.
TEST(CudaFlashAttention, MmaSharedMemoryWithinTheDevicesLimitOrRefused) {
  EXPECT_EQ(gpu::mma_attention_smem_bytes(32, false), 26112u);
  EXPECT_EQ(gpu::mma_attention_smem_bytes(64, false), 46592u);
  EXPECT_EQ(gpu::mma_attention_smem_bytes(128, false), 87552u);   // 85.5 KiB
  EXPECT_EQ(gpu::mma_attention_smem_bytes(256, false), 101632u);  // 99.25 KiB: 256 bytes over sm_86's 99 KiB
  EXPECT_EQ(gpu::mma_attention_smem_bytes(32, true), 31232u);
  EXPECT_EQ(gpu::mma_attention_smem_bytes(64, true), 55808u);
  EXPECT_EQ(gpu::mma_attention_smem_bytes(128, true), 104960u);  // 102.5 KiB
  constexpr int64_t kSm86 = 101376, kSm80 = 166912, kSm90 = 232448;
  std::string why;
  for (const int64_t limit : {int64_t(0), kSm80, kSm90})
    for (const int64_t D : {8, 64, 128, 256}) {
      EXPECT_TRUE(gpu::mma_attention_supports(DType::BF16, D, 3 * D, D, &why, limit))
          << limit << " " << D << ": " << why;
      if (D <= 128) {
        EXPECT_TRUE(gpu::mma_wide_attention_supports(DType::BF16, D, 3 * D, D, &why, limit))
            << limit << " " << D << ": " << why;
      }
    }
  for (const int64_t D : {8, 64, 128}) EXPECT_TRUE(gpu::mma_attention_supports(DType::BF16, D, 3 * D, D, &why, kSm86));
  EXPECT_FALSE(gpu::mma_attention_supports(DType::BF16, 256, 3 * 256, 256, &why, kSm86));
  std::printf("  sm_86, mma, head_dim 256: %s\n", why.c_str());
  EXPECT_EQ(why, "mma needs 101632 bytes of shared memory a block at head_dim 256; this GPU allows 101376");
  EXPECT_TRUE(gpu::mma_wide_attention_supports(DType::BF16, 64, 3 * 64, 64, &why, kSm86)) << why;
  EXPECT_FALSE(gpu::mma_wide_attention_supports(DType::BF16, 72, 3 * 72, 72, &why, kSm86));
  std::printf("  sm_86, mma_wide, head_dim 72: %s\n", why.c_str());
  EXPECT_EQ(why, "mma_wide needs 104960 bytes of shared memory a block at head_dim 72; this GPU allows 101376");
}

// The dispatcher: a forced version it cannot run is one line naming it; fp32 never goes to the
// bf16-only versions; ZIMAGE_ATTENTION forces a version for `automatic`; bad names are refused.
TEST(CudaFlashAttention, DispatcherRefusesAndResolves) {
  EXPECT_EQ(gpu::resolve_attention(gpu::AttentionVersion::automatic, DType::F32, 128, 3 * 3840, 3840),
            gpu::AttentionVersion::v1_simt);
  EXPECT_EQ(gpu::resolve_attention(gpu::AttentionVersion::automatic, DType::F32, 64, 3 * 64, 64),
            gpu::AttentionVersion::v1_simt);
  for (auto v : {gpu::AttentionVersion::mma, gpu::AttentionVersion::cudnn, gpu::AttentionVersion::mma_wide}) {
    try {
      gpu::resolve_attention(v, DType::F32, 128, 3 * 3840, 3840);
      ADD_FAILURE() << gpu::attention_version_name(v) << " accepted float32";
    } catch (const Error& e) {
      std::printf("  %s float32: %s\n", gpu::attention_version_name(v), e.what());
      EXPECT_NE(std::string(e.what()).find(gpu::attention_version_name(v)), std::string::npos);
    }
  }
  EXPECT_EQ(gpu::parse_attention_version("mma"), gpu::AttentionVersion::mma);
  EXPECT_EQ(gpu::parse_attention_version("mma_wide"), gpu::AttentionVersion::mma_wide);
  EXPECT_EQ(testing::error_of([] { gpu::parse_attention_version("flash3"); }),
            "--attention must be auto, v1_simt, mma, mma_wide or cudnn, not 'flash3'");
  // mma_wide: bf16 head_dim 8..128; past 128 one line that names mma_wide and sends to mma, which runs it.
  std::string why;
  EXPECT_TRUE(gpu::attention_supports(gpu::AttentionVersion::mma_wide, DType::BF16, 128, 3 * 3840, 3840, &why)) << why;
  EXPECT_TRUE(gpu::attention_supports(gpu::AttentionVersion::mma_wide, DType::BF16, 8, 3 * 8, 8, &why)) << why;
  for (const int64_t D : {136, 256}) {
    EXPECT_FALSE(gpu::attention_supports(gpu::AttentionVersion::mma_wide, DType::BF16, D, 3 * D, D, &why));
    std::printf("  mma_wide head_dim %lld: %s\n", (long long)D, why.c_str());
    EXPECT_EQ(why.rfind("mma_wide runs head_dim 8..128", 0), 0u) << why;
    EXPECT_NE(why.find("mma runs it"), std::string::npos) << why;
    EXPECT_TRUE(gpu::attention_supports(gpu::AttentionVersion::mma, DType::BF16, D, 3 * D, D));
  }
  EXPECT_FALSE(gpu::attention_supports(gpu::AttentionVersion::mma_wide, DType::BF16, 12, 3 * 12, 12, &why));
  EXPECT_EQ(why, "mma_wide runs head_dim 8..128 in steps of 8, not 12");
  EXPECT_FALSE(gpu::attention_supports(gpu::AttentionVersion::mma_wide, DType::BF16, 128, 3 * 3840 + 4, 3840, &why));
  EXPECT_EQ(why.rfind("mma_wide needs row strides", 0), 0u) << why;
  // Not timed on a GPU yet: behind mma, which runs every shape it runs, so auto never picks it.
  const auto& pref = gpu::kAttentionPreference;
  const auto at = [&](gpu::AttentionVersion v) { return std::find(std::begin(pref), std::end(pref), v) - std::begin(pref); };
  EXPECT_LT(at(gpu::AttentionVersion::mma), at(gpu::AttentionVersion::mma_wide));
  ::setenv("ZIMAGE_ATTENTION", "v1_simt", 1);
  EXPECT_EQ(gpu::resolve_attention(gpu::AttentionVersion::automatic, DType::BF16, 128, 3 * 3840, 3840),
            gpu::AttentionVersion::v1_simt);
  // A bad word in the variable is refused naming the variable, not the option.
  ::setenv("ZIMAGE_ATTENTION", "flash3", 1);
  EXPECT_EQ(testing::error_of(
                [] { gpu::resolve_attention(gpu::AttentionVersion::automatic, DType::BF16, 128, 3 * 3840, 3840); }),
            "ZIMAGE_ATTENTION must be auto, v1_simt, mma, mma_wide or cudnn, not 'flash3'");
  ::unsetenv("ZIMAGE_ATTENTION");
  // A key mask without item lengths never goes to cudnn.
  EXPECT_NE(gpu::resolve_attention(gpu::AttentionVersion::automatic, DType::BF16, 128, 3 * 3840, 3840, true),
            gpu::AttentionVersion::cudnn);
}

}  // namespace
}  // namespace zimage

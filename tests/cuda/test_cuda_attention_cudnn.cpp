// cuda/attention_cudnn.h on its own: the plan-cache key, the shape checks (host only), the one-line
// "unavailable" reason without a GPU, and with one a bf16 call (B 1, L 256, H 2, D 64) and a ragged
// batch (seqlens {256, 100}: per-item calls with a shorter key sequence) against the fp64
// scaled_dot_product_attention (T4 absolute bound). Skips with cuDNN's reason when it cannot run.
// The full version matrix runs in test_cuda_attention.cpp.
#include <optional>
#include <set>

#include "attention_cudnn.h"
#include "cuda_support.h"
#include "weight_layout.h"
#include "dit/attention.h"
#include "dit/patchify.h"

namespace zimage {
namespace {

using testing::DType;

TEST(CudnnAttention, PlanKeyDistinctPerShape) {
  EXPECT_EQ(gpu::cudnn_attention_plan_key(DType::BF16, 1, 256, 100, 2, 64, 384, 128),
            "bfloat16 B1 Sq256 Skv100 H2 D64 ld384 ldo128");
  const std::vector<std::string> keys{
      gpu::cudnn_attention_plan_key(DType::BF16, 1, 256, 256, 2, 64, 384, 128),
      gpu::cudnn_attention_plan_key(DType::F16, 1, 256, 256, 2, 64, 384, 128),
      gpu::cudnn_attention_plan_key(DType::BF16, 2, 256, 256, 2, 64, 384, 128),
      gpu::cudnn_attention_plan_key(DType::BF16, 1, 255, 256, 2, 64, 384, 128),
      gpu::cudnn_attention_plan_key(DType::BF16, 1, 256, 100, 2, 64, 384, 128),
      gpu::cudnn_attention_plan_key(DType::BF16, 1, 256, 256, 3, 64, 384, 128),
      gpu::cudnn_attention_plan_key(DType::BF16, 1, 256, 256, 2, 128, 384, 128),
      gpu::cudnn_attention_plan_key(DType::BF16, 1, 256, 256, 2, 64, 392, 128),
      gpu::cudnn_attention_plan_key(DType::BF16, 1, 256, 256, 2, 64, 384, 136),
      // digits must not run together: B1 Sq12 vs B11 Sq2
      gpu::cudnn_attention_plan_key(DType::BF16, 1, 12, 256, 2, 64, 384, 128),
      gpu::cudnn_attention_plan_key(DType::BF16, 11, 2, 256, 2, 64, 384, 128),
  };
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), keys.size());
}

TEST(CudnnAttention, SupportsShapes) {
  std::string why;
  EXPECT_FALSE(gpu::cudnn_attention_supports(DType::F32, 64, 384, 128, &why));
  EXPECT_NE(why.find("cuDNN"), std::string::npos) << why;
  EXPECT_NE(why.find("bfloat16"), std::string::npos) << why;
  for (int64_t D : {12, 264, 0}) {
    why.clear();
    EXPECT_FALSE(gpu::cudnn_attention_supports(DType::BF16, D, 3 * 2 * 264, 2 * 264, &why)) << "D " << D;
    EXPECT_NE(why.find("cuDNN"), std::string::npos) << why;
    EXPECT_NE(why.find("head_dim"), std::string::npos) << why;
    EXPECT_NE(why.find(std::to_string(D)), std::string::npos) << why;
  }
  why.clear();
  EXPECT_FALSE(gpu::cudnn_attention_supports(DType::BF16, 64, 3 * 64 + 4, 64, &why));
  EXPECT_NE(why.find("multiples of 8"), std::string::npos) << why;
  for (int64_t D : {64, 128}) {
    EXPECT_TRUE(gpu::cudnn_attention_supports(DType::BF16, D, 3 * 30 * D, 30 * D, &why)) << why;
    EXPECT_TRUE(gpu::cudnn_attention_supports(DType::BF16, D, 3 * 30 * D, 30 * D)) << "no why";
  }
}

TEST(CudnnAttention, UnavailableWithoutGpuSaysWhyOnOneLine) {
  if (gpu::device_available()) GTEST_SKIP() << "a CUDA device is present";
  std::string why;
  EXPECT_FALSE(gpu::cudnn_attention_available(&why));
  std::printf("  cudnn_attention_available: %s\n", why.c_str());
  EXPECT_FALSE(why.empty());
  EXPECT_EQ(why.find('\n'), std::string::npos) << why;
  EXPECT_TRUE(gpu::cudnn_attention_available() == false);
  // A call throws that same kind of line (the pointers are never touched).
  try {
    gpu::cudnn_attention(DType::BF16, nullptr, nullptr, nullptr, 384, nullptr, nullptr, 128, 1, 16, 2, 64, nullptr);
    ADD_FAILURE() << "cudnn_attention did not throw without a GPU";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuDNN"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
}

TEST(CudnnAttention, ZeroLengthItemIsAnError) {
  const std::vector<int64_t> seqlens{16, 0};
  try {
    gpu::cudnn_attention(DType::BF16, nullptr, nullptr, nullptr, 384, &seqlens, nullptr, 128, 2, 16, 2, 64, nullptr);
    ADD_FAILURE() << "a zero-length item did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("item 1"), std::string::npos) << e.what();
  }
}

// bf16 q/k/v in the fused [B L, 3 H D] layout, out [B, L, H, D]; against the fp64 reference.
void check_against_reference(int64_t B, int64_t L, int64_t H, int64_t D, const std::vector<int64_t>& seqlens) {
  const DType dt = DType::BF16;
  const int64_t C = H * D;
  const std::string name = "cudnn_attention B" + std::to_string(B) + " L" + std::to_string(L) + " H" +
                           std::to_string(H) + " D" + std::to_string(D) +
                           (seqlens.empty() ? "" : " seqlens " + std::to_string(seqlens.back()));
  const Tensor<float> qkv = testing::round_to(dt, testing::randn<float>({B * L, 3 * C}, testing::test_seed(), 2.0));
  const auto qkv_d = testing::to_device(qkv, dt);
  const size_t plans_before = gpu::cudnn_attention_cached_plans();
  testing::Guarded out(dt, {B, L, H, D});
  gpu::cudnn_attention(dt, qkv_d.data(), gpu::offset(qkv_d.data(), C, dt), gpu::offset(qkv_d.data(), 2 * C, dt),
                       3 * C, seqlens.empty() ? nullptr : &seqlens, out.data(), C, B, L, H, D, testing::rt().stream());
  const Tensor<float> got = out.host();
  out.expect_guards_intact(name);
  EXPECT_GT(gpu::cudnn_attention_cached_plans(), plans_before) << "a new shape builds a plan";

  std::optional<KeyMask> mask;
  if (!seqlens.empty()) mask = key_mask(seqlens);
  const Tensor<double> q = gpu::qkv_part(qkv, 0).reshaped({B, L, H, D}).cast<double>(),
                       k = gpu::qkv_part(qkv, 1).reshaped({B, L, H, D}).cast<double>(),
                       v = gpu::qkv_part(qkv, 2).reshaped({B, L, H, D}).cast<double>();
  const Tensor<double> ref = scaled_dot_product_attention(q, k, v, mask ? &*mask : nullptr);
  const std::vector<numerics::Op> ops{{"q k^T", 1, double(D), false}, {"softmax", 2, double(L), true},
                                      {"p v", 1, double(L), false}};
  testing::expect_t3_or_t4(name, dt, got, nullptr, ref, ops);
}

#define ZIMAGE_REQUIRE_CUDNN()                                                              \
  do {                                                                                      \
    ZIMAGE_REQUIRE_CUDA();                                                                  \
    std::string why_cudnn_;                                                                 \
    if (!gpu::cudnn_attention_available(&why_cudnn_)) GTEST_SKIP() << why_cudnn_;           \
  } while (0)

TEST(CudnnAttention, Bf16AgainstSdpa) {
  ZIMAGE_REQUIRE_CUDNN();
  check_against_reference(1, 256, 2, 64, {});
}

TEST(CudnnAttention, RaggedBatchAgainstMaskedSdpa) {
  ZIMAGE_REQUIRE_CUDNN();
  check_against_reference(2, 256, 2, 64, {256, 100});
}

}  // namespace
}  // namespace zimage

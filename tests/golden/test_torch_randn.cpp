// torch's CPU randn, bit for bit (T0): TorchCpuGenerator / randn_latents against
// golden/torch_randn.safetensors (torch.randn and diffusers' randn_tensor,
// tools/golden/dump_pipeline_parts.py). Every comparison counts mismatching
// elements and prints the largest ulp distance; the gate is 0 mismatches.
#include <cstring>
#include <nlohmann/json.hpp>
#include <string_view>

#include "numerics/tolerance.h"
#include "pipeline/torch_generator.h"
#include "support/golden_values.h"
#include "support/goldens.h"
#include "support/test_support.h"
#include "validation/golden_file.h"

namespace zimage {
namespace {

using json = nlohmann::json;

const std::shared_ptr<SafetensorsFile>& golden() {
  static const auto f = open_pipeline_part_golden(testing::golden_path("torch_randn"), "torch_randn");
  return f;
}

json meta_json(const std::string& key) { return json::parse(golden()->metadata().at(key)); }

std::string shape_name(const Shape& s) {
  std::string r;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) r.push_back('x');
    r.append(std::to_string(s[i]));
  }
  return r;
}

// Equality of `got` with a stored tensor: prints mismatches and max ulp, returns whether equal.
bool expect_bitwise(const std::string& what, const Tensor<float>& got, const Tensor<float>& ref) {
  EXPECT_EQ(got.numel(), ref.numel()) << what;
  if (got.numel() != ref.numel()) return false;
  const Tensor<float> g(ref.shape, got.data);
  const auto u = numerics::ulp_distance(g, ref);
  std::printf("  %s: %lld of %lld elements differ, max ulp %lld\n", what.c_str(), (long long)u.differ,
              (long long)ref.numel(), (long long)u.max_ulp);
  EXPECT_EQ(u.differ, 0) << what << ": max ulp " << u.max_ulp << " at [" << u.worst << "]";
  return u.differ == 0;
}

// A stored tensor, or (large ones) its digest and three slices.
void check_stored(const std::string& name, const Tensor<float>& got) {
  const auto digests = meta_json("digests");
  if (golden()->contains(name)) {
    expect_bitwise(name, got, golden()->get<float>(name));
    return;
  }
  ASSERT_TRUE(digests.contains(name)) << "golden has neither " << name << " nor its digest";
  const auto& d = digests[name];
  EXPECT_EQ(d["shape"].get<Shape>(), got.shape) << name;
  for (const char* s : {"head", "mid", "tail"}) {
    const int64_t a = d["slices"][s][0], b = d["slices"][s][1];
    Tensor<float> part({b - a}, std::vector<float>(got.data.begin() + a, got.data.begin() + b));
    expect_bitwise(name + "." + s, part, golden()->get<float>(name + "." + s));
  }
  const std::string ours = testing::fnv1a64_hex(got);
  std::printf("  %s: fnv1a64 %s (golden %s)\n", name.c_str(), ours.c_str(), d["fnv1a64"].get<std::string>().c_str());
  EXPECT_EQ(ours, d["fnv1a64"].get<std::string>()) << name << ": digest of all " << got.numel() << " values";
}

struct RandnCase {
  uint64_t seed;
  Shape shape;
};
void PrintTo(const RandnCase& c, std::ostream* os) { *os << "seed " << c.seed << " " << shape_name(c.shape); }

std::vector<RandnCase> randn_cases() {
  std::vector<RandnCase> out;
  const auto f = SafetensorsFile::open(testing::golden_path("torch_randn"));
  const auto seeds = json::parse(f->metadata().at("seeds"));
  const auto shapes = json::parse(f->metadata().at("shapes"));
  for (const auto& s : seeds)
    for (const auto& sh : shapes) out.push_back({std::stoull(s.get<std::string>()), sh.get<Shape>()});
  return out;
}

class TorchRandn : public ::testing::TestWithParam<RandnCase> {};

TEST_P(TorchRandn, BitExactWithTorch) {
  const auto& [seed, shape] = GetParam();
  check_stored("randn.s" + std::to_string(seed) + "." + shape_name(shape), randn_latents(seed, shape));
}

INSTANTIATE_TEST_SUITE_P(Golden, TorchRandn, ::testing::ValuesIn(randn_cases()), [](const auto& info) {
  return testing::test_name("seed" + std::to_string(info.param.seed) + "_" + shape_name(info.param.shape));
});

TEST(TorchRandn, FullLatentStoredWhole) {
  check_stored("randn.s42.1x16x64x64.full", randn_latents(42, {1, 16, 64, 64}));
}

// Consecutive randn calls on one generator: the stream (and the cached second
// Box-Muller sample of the numel < 16 path) carries over from call to call.
TEST(TorchRandn, ConsecutiveCallsContinueTheStream) {
  const auto seqs = meta_json("sequences");
  const uint64_t seed = meta_json("sequence_seed").get<uint64_t>();
  ASSERT_FALSE(seqs.empty());
  for (const auto& seq : seqs) {
    std::string tag;
    for (const auto& n : seq) {
      if (!tag.empty()) tag.push_back('_');
      tag.append(std::to_string(n.get<int>()));
    }
    TorchCpuGenerator g(seed);
    int j = 0;
    for (const auto& n : seq) {
      Tensor<float> t({n.get<int64_t>()});
      g.randn(t.ptr(), t.numel());
      check_stored("seq." + tag + ".call" + std::to_string(j++), t);
    }
  }
}

// diffusers randn_tensor with a list of generators: one stream per batch item.
TEST(TorchRandn, RandnTensorWithAGeneratorPerItem) {
  const auto seeds = meta_json("randn_tensor_list_seeds").get<std::vector<uint64_t>>();
  check_stored("randn_tensor.list.s7_s8.2x16x8x8", randn_latents_per_item(seeds, {2, 16, 8, 8}));
}

// ATEN_CPU_CAPABILITY=default: the scalar normal_fill with libm logf/cosf/sinf.
TEST(TorchRandn, DefaultCapabilityBitExact) {
  int checked = 0;
  for (uint64_t seed : {0ull, 42ull})
    for (const Shape& shape : {Shape{7}, Shape{16}, Shape{37}, Shape{2, 3, 5, 7}, Shape{1, 16, 64, 64}}) {
      check_stored("default_cap.randn.s" + std::to_string(seed) + "." + shape_name(shape),
                   randn_latents(seed, shape, TorchCpuCapability::Default));
      ++checked;
    }
  EXPECT_EQ(checked, 10);
}

// The gate tells the two kernels apart, and a wrong seed apart: each negative
// control must fail the bit-exact comparison the tests above pass.
TEST(TorchRandn, GateCatchesWrongKernelAndWrongSeed) {
  const Tensor<float> ref = golden()->get<float>("randn.s42.37");
  const Tensor<float> other_kernel = randn_latents(42, {37}, TorchCpuCapability::Default);
  const Tensor<float> other_seed = randn_latents(43, {37});
  const auto u1 = numerics::ulp_distance(Tensor<float>(ref.shape, other_kernel.data), ref);
  const auto u2 = numerics::ulp_distance(Tensor<float>(ref.shape, other_seed.data), ref);
  std::printf("  DEFAULT kernel vs AVX2 golden: %lld of 37 differ (max ulp %lld); seed 43 vs 42: %lld differ\n",
              (long long)u1.differ, (long long)u1.max_ulp, (long long)u2.differ);
  EXPECT_GT(u1.differ, 0);
  EXPECT_GT(u2.differ, 0);
  // And the AVX2 kernel against the DEFAULT golden over 65536 values.
  const Tensor<float> big = randn_latents(0, {1, 16, 64, 64}, TorchCpuCapability::Avx2);
  const auto d = meta_json("digests")["default_cap.randn.s0.1x16x64x64"];
  EXPECT_NE(testing::fnv1a64_hex(big), d["fnv1a64"].get<std::string>());
}

// The seed's low 32 bits seed mt19937 (at::mt19937 keeps the 64-bit seed only as a label).
TEST(TorchRandn, SeedIsTruncatedTo32Bits) {
  EXPECT_EQ(randn_latents((1ull << 32) + 5, {37}).data, randn_latents(5, {37}).data);
}

}  // namespace
}  // namespace zimage

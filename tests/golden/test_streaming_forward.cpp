// Memory-bounded forward (zimage_forward_streaming: one block in memory,
// mapped pages released) is the same computation as the all-in-memory
// zimage_forward: bitwise equal samples and activations on every shipped
// tiny model golden, in float and double; also from the ComfyUI layout and
// from a bf16-held copy (reference/io/held_bf16.h).
#include <gtest/gtest.h>

#include <cstring>

#include "dit/comfy_layout.h"
#include "dit/transformer.h"
#include "io/held_bf16.h"
#include "support/golden_values.h"
#include "support/goldens.h"
#include "validation/golden_inputs.h"

namespace zimage {
namespace {

template <class T>
bool bitwise_equal(const Tensor<T>& a, const Tensor<T>& b) {
  return a.shape == b.shape && std::memcmp(a.ptr(), b.ptr(), sizeof(T) * size_t(a.numel())) == 0;
}

// Both forwards, with every activation recorded; counts what was compared.
template <class T>
void expect_same_forward(const ZImageConfig& cfg, const ParamSource& src, const DitInputs<T>& in, const std::string& what) {
  Activations<T> a, b;
  a.store = b.store = true;
  const auto ref = zimage_forward(load_weights<T>(cfg, src), in, &a);
  int blocks = 0;
  const auto got = zimage_forward_streaming(cfg, src, in, &b, {}, [&](const std::string&) { ++blocks; });
  EXPECT_EQ(blocks, 2 * cfg.n_refiner_layers + cfg.n_layers) << what;
  ASSERT_EQ(ref.size(), got.size());
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_TRUE(bitwise_equal(ref[i], got[i])) << what << ": sample." << i;
  size_t n = 0;
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    ASSERT_NE(it, b.end()) << what << ": streaming forward did not record " << name;
    EXPECT_TRUE(bitwise_equal(t, it->second)) << what << ": " << name;
    ++n;
  }
  EXPECT_EQ(a.size(), b.size());
  std::printf("%s: %zu samples, %zu activations, %d blocks streamed: bitwise equal\n", what.c_str(), ref.size(), n, blocks);
}

class StreamingForward : public ::testing::TestWithParam<std::string> {};

TEST_P(StreamingForward, BitwiseEqualToAllInMemory) {
  const GoldenFile g = open_golden(testing::golden_path(GetParam()));
  ASSERT_EQ(g.kind, "model");
  expect_same_forward(g.config, *g.params, golden_dit_inputs<float>(g), GetParam() + "/float");
  expect_same_forward(g.config, *g.params, golden_dit_inputs<double>(g), GetParam() + "/double");
}

std::vector<std::string> shipped_model_cases() {
  std::vector<std::string> out;
  for (const auto& c : testing::golden_cases_of_kind("model"))
    if (c.rfind("tiny_", 0) == 0) out.push_back(c);
  return out;
}

INSTANTIATE_TEST_SUITE_P(Goldens, StreamingForward, ::testing::ValuesIn(shipped_model_cases()),
                         [](const auto& info) { return info.param; });

TEST(StreamingForward, FromComfyLayout) {
  const std::string path = std::string(ZIMAGE_GOLDEN_DIR) + "/comfy/comfy_tiny.safetensors";
  const auto f = SafetensorsFile::open(path);
  const ZImageConfig cfg = ZImageConfig::from_json(nlohmann::json::parse(f->metadata().at("config")), path);
  DitInputs<float> in;
  in.x.push_back(Tensor<float>({16, 1, 4, 6}, 0.25f));
  for (int64_t i = 0; i < in.x[0].numel(); ++i) in.x[0][i] = float(i % 7) / 7.0f - 0.5f;
  in.cap_feats.push_back(Tensor<float>({5, cfg.cap_feat_dim}));
  for (int64_t i = 0; i < in.cap_feats[0].numel(); ++i) in.cap_feats[0][i] = float(i % 5) / 5.0f - 0.4f;
  in.t = Tensor<float>({1}, 0.3f);
  expect_same_forward(cfg, *open_comfy_single_file(path), in, "comfy_tiny/float");
}

TEST(HeldBf16, ForwardUnchangedAndHalfTheBytes) {
  const GoldenFile g = open_golden(testing::golden_path("tiny_single"));
  // Rounded to bf16: a stand-in for Turbo's bf16-exact fp32 shards.
  const auto rounded = std::make_shared<testing::Bf16Rounded>(g.params);
  const auto held = hold_as_bf16(rounded);
  const DitInputs<float> in = golden_dit_inputs<float>(g);
  const auto a = zimage_forward(load_weights<float>(g.config, *rounded), in);
  const auto b = zimage_forward_streaming(g.config, *held, in);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(bitwise_equal(a[i], b[i])) << "sample." << i;
  std::printf("tiny_single from a bf16-held copy: bitwise equal to the fp32 source\n");
}

TEST(HeldBf16, ValueNotBf16ExactIsAnErrorNamingTheTensor) {
  const GoldenFile g = open_golden(testing::golden_path("tiny_single"));  // synthetic fp32 values: not bf16-exact
  try {
    hold_as_bf16(g.params);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    std::printf("%s\n", m.c_str());
    EXPECT_NE(m.find("is not bf16-exact"), std::string::npos) << m;
    EXPECT_NE(m.find("tensor '"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos);
  }
}

TEST(HeldBf16, ExactnessPredicate) {
  const float ok[3] = {1.0f, -0.5f, bf16_to_float(float_to_bf16(0.1f))};
  EXPECT_EQ(first_non_bf16_exact(ok, 3), -1);
  const float bad[3] = {1.0f, 0.1f, 2.0f};
  EXPECT_EQ(first_non_bf16_exact(bad, 3), 1);
}

}  // namespace
}  // namespace zimage

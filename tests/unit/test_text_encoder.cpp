// Qwen3 text encoder and tokenizer, no data files:
//   T1: the float path against the double truth on a synthetic KV-ratio-4
//       model, per hidden state, with left and right padding;
//   config.json forms (transformers 4.x rope_theta, 5.x rope_parameters) and
//   refusals; hidden-state indexing; a layer past the requested one is never
//   loaded; padding does not change a real token's output (left or right);
//   the pre-tokenizer split and NFC on hand-checked cases; bitwise the same
//   result for any thread count.
#include <omp.h>

#include <nlohmann/json.hpp>

#include "support/test_support.h"
#include "text_encoder/qwen3_model.h"
#include "text_encoder/tokenizer.h"
#include "text_encoder/module_table.h"

namespace zimage {
namespace {

Qwen3Config tiny() {
  Qwen3Config c;
  c.vocab_size = 97, c.hidden_size = 48, c.intermediate_size = 80, c.num_hidden_layers = 3;
  c.num_attention_heads = 8, c.num_key_value_heads = 2, c.head_dim = 12;
  return c;
}

std::string spec(const Qwen3Config& c, uint64_t seed) {
  nlohmann::json t = nlohmann::json::object();
  for (const auto& [name, shape] : qwen3_parameter_shapes(c)) {
    const bool norm = name.find("norm") != std::string::npos;
    const double scale = norm ? 0.2 : name == "embed_tokens.weight" ? 1.0 : 1.0 / std::sqrt(double(shape.back()));
    t[name] = {{"shape", shape}, {"offset", norm ? 1.0 : 0.0}, {"scale", scale}};
  }
  return nlohmann::json{{"seed", seed}, {"tensors", t}}.dump();
}

// Counts loads per tensor name (to prove unneeded layers are never read).
class CountingSource : public ParamSource {
 public:
  explicit CountingSource(std::shared_ptr<ParamSource> in) : in_(std::move(in)) {}
  std::map<std::string, Shape> shapes() const override { return in_->shapes(); }
  Tensor<double> load(const std::string& n) const override { ++loads[n]; return in_->load(n); }
  std::string describe() const override { return "counting"; }
  mutable std::map<std::string, int> loads;
 private:
  std::shared_ptr<ParamSource> in_;
};

struct Batch {
  Tensor<int32_t> ids, mask;
};
Batch batch(int64_t L, const std::vector<int64_t>& lengths, bool left, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Batch b{Tensor<int32_t>({int64_t(lengths.size()), L}, 96), Tensor<int32_t>({int64_t(lengths.size()), L}, 0)};
  for (size_t i = 0; i < lengths.size(); ++i)
    for (int64_t k = 0; k < lengths[i]; ++k) {
      const int64_t pos = left ? L - lengths[i] + k : k;
      b.ids[int64_t(i) * L + pos] = int32_t(rng() % 96);
      b.mask[int64_t(i) * L + pos] = 1;
    }
  return b;
}

struct T1Case {
  bool left;
  int k;
};
class TextEncoderT1 : public ::testing::TestWithParam<T1Case> {};

TEST_P(TextEncoderT1, FloatWithinBudgetOfDouble) {
  const auto [left, k] = GetParam();
  const Qwen3Config c = tiny();
  const Qwen3TextEncoder te(c, synthetic_param_source(spec(c, testing::test_seed())));
  const Batch b = batch(17, {17, 9, 4}, left, testing::test_seed() + 1);
  const auto f = te.hidden_state<float>(b.ids, b.mask, k);
  const auto d = te.hidden_state<double>(b.ids, b.mask, k);
  const auto budget = text_encoder_module_budget(numerics::Tier::T1, "hidden_states." + std::to_string(qwen3_hidden_index(c, k)), c, 17);
  testing::expect_within(std::string(left ? "left" : "right") + " hidden_states[" + std::to_string(k) + "]", numerics::compare(f, d), budget);
}

INSTANTIATE_TEST_SUITE_P(Synthetic, TextEncoderT1,
                         ::testing::Values(T1Case{true, -2}, T1Case{false, -2}, T1Case{true, -1}, T1Case{false, 1}),
                         [](const auto& info) {
                           const int k = info.param.k;
                           return std::string(info.param.left ? "left" : "right") + "_k" + (k < 0 ? "m" : "") + std::to_string(std::abs(k));
                         });

TEST(TextEncoder, PaddingDoesNotChangeRealTokens) {
  // A real token's hidden state is the same whether the row is padded left, right or not at all.
  const Qwen3Config c = tiny();
  const Qwen3TextEncoder te(c, synthetic_param_source(spec(c, 5)));
  const Batch full = batch(6, {6}, false, 9);
  Batch left{Tensor<int32_t>({1, 10}, 96), Tensor<int32_t>({1, 10}, 0)}, right = left;
  for (int k = 0; k < 6; ++k) {
    left.ids[4 + k] = right.ids[k] = full.ids[k];
    left.mask[4 + k] = right.mask[k] = 1;
  }
  const auto h = te.hidden_state<double>(full.ids, full.mask, -2);
  const auto hl = te.hidden_state<double>(left.ids, left.mask, -2);
  const auto hr = te.hidden_state<double>(right.ids, right.mask, -2);
  const int64_t C = c.hidden_size;
  Tensor<double> l({6, C}), r({6, C});
  std::copy(hl.ptr() + 4 * C, hl.ptr() + 10 * C, l.ptr());
  std::copy(hr.ptr(), hr.ptr() + 6 * C, r.ptr());
  const auto b = text_encoder_module_budget(numerics::Tier::T1, "hidden_states.2", c, 10);
  testing::expect_within("right-padded vs unpadded", numerics::compare(r, h.reshaped({6, C})), b);
  // Left padding shifts positions (transformers uses arange(L), not the mask): RoPE angles differ,
  // but attention depends only on relative positions, so the values agree up to rounding.
  testing::expect_within("left-padded vs unpadded", numerics::compare(l, h.reshaped({6, C})), b);
}

TEST(TextEncoder, LayersPastTheRequestedOneAreNotLoaded) {
  const Qwen3Config c = tiny();
  auto src = std::make_shared<CountingSource>(synthetic_param_source(spec(c, 3)));
  const Qwen3TextEncoder te(c, src);
  const Batch b = batch(5, {5}, false, 1);
  (void)te.hidden_state<double>(b.ids, b.mask, -2);  // layers 0, 1 of 3
  EXPECT_EQ(src->loads.count("layers.2.mlp.down_proj.weight"), 0u);
  EXPECT_EQ(src->loads.count("norm.weight"), 0u);
  EXPECT_EQ(src->loads["layers.1.mlp.down_proj.weight"], 1);
  EXPECT_EQ(qwen3_hidden_index(c, -2), 2);
  EXPECT_EQ(qwen3_hidden_index(c, -4), 0);
  EXPECT_THROW(qwen3_hidden_index(c, 4), Error);
  EXPECT_THROW(qwen3_hidden_index(c, -5), Error);
}

TEST(TextEncoder, BitwiseSameForAnyThreadCount) {
  const Qwen3Config c = tiny();
  const Qwen3TextEncoder te(c, synthetic_param_source(spec(c, 11)));
  const Batch b = batch(33, {33, 20, 7}, true, 2);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto one = te.hidden_state<float>(b.ids, b.mask, -2);
  omp_set_num_threads(3);
  const auto three = te.hidden_state<float>(b.ids, b.mask, -2);
  omp_set_num_threads(saved);
  testing::expect_exact("1 vs 3 threads", numerics::compare(three, one));
}

TEST(TextEncoder, ConfigForms) {
  nlohmann::json j = nlohmann::json::parse(R"({"model_type":"qwen3","vocab_size":10,"hidden_size":8,"intermediate_size":16,
    "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":1,"rms_norm_eps":1e-6,"rope_theta":1000000})");
  const Qwen3Config a = Qwen3Config::from_json(j, "v4");
  EXPECT_EQ(a.head_dim, 2);  // hidden / heads when absent
  EXPECT_EQ(a.rope_theta, 1e6);
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 5e5}};
  j["head_dim"] = 4;
  EXPECT_EQ(Qwen3Config::from_json(j, "v5").rope_theta, 5e5);
  auto refuses = [&](nlohmann::json bad, const std::string& needle) {
    try {
      (void)Qwen3Config::from_json(bad, "cfg.json");
      ADD_FAILURE() << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto b = j; b["model_type"] = "llama"; refuses(b, "model_type");
  b = j; b["use_sliding_window"] = true; refuses(b, "use_sliding_window");
  b = j; b["rope_parameters"]["rope_type"] = "yarn"; refuses(b, "rope_type");
  b = j; b["num_key_value_heads"] = 3; refuses(b, "not a multiple");
  b = j; b.erase("hidden_size"); refuses(b, "hidden_size");
  // No head_dim and hidden_size / num_attention_heads = 2 / 4 = 0: refused, not a model of empty heads.
  b = j;
  b.erase("head_dim");
  b["hidden_size"] = 2;
  refuses(b, "head_dim 0 must be positive");
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  for (const auto& p : Qwen2Tokenizer::split_qwen2(utf8_to_u32(s, "t"))) out.push_back(u32_to_utf8(p));
  return out;
}

TEST(Tokenizer, Qwen2SplitByHand) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split("Hello world"), (V{"Hello", " world"}));
  EXPECT_EQ(split("it's THEY'RE"), (V{"it", "'s", " THEY", "'RE"}));
  EXPECT_EQ(split("abc123"), (V{"abc", "1", "2", "3"}));
  EXPECT_EQ(split("a   b"), (V{"a", "  ", " b"}));          // \s+(?!\S) leaves one space for " b"
  EXPECT_EQ(split("x \n\n y"), (V{"x", " \n\n", " y"}));    // \s*[\r\n]+
  EXPECT_EQ(split("hi!!\n"), (V{"hi", "!!\n"}));            // punctuation takes trailing newlines
  EXPECT_EQ(split("end   "), (V{"end", "   "}));
  EXPECT_EQ(split("東京タワー"), (V{"東京タワー"}));
}

TEST(Tokenizer, NfcComposesAndReorders) {
  auto nfc = [](const std::string& s) { return u32_to_utf8(Qwen2Tokenizer::nfc(utf8_to_u32(s, "t"))); };
  EXPECT_EQ(nfc("e\u0301"), "\u00e9");
  EXPECT_EQ(nfc("o\u0323\u0302"), "\u1ed9");             // ccc 220 then 230: composes fully
  EXPECT_EQ(nfc("o\u0302\u0323"), "\u1ed9");             // reordered first
  EXPECT_EQ(nfc("\u212b"), "\u00c5");                     // singleton decomposition (Angstrom)
  EXPECT_EQ(nfc("\u1100\u1161\u11a8"), "\uac01");         // Hangul LVT
  EXPECT_EQ(nfc("plain ascii"), "plain ascii");
  EXPECT_THROW(utf8_to_u32("\xff", "t"), Error);
  EXPECT_THROW(utf8_to_u32("\xc0\xaf", "t"), Error);  // overlong
}

TEST(Tokenizer, ChatPrompt) {
  EXPECT_EQ(qwen3_chat_prompt("cat"), "<|im_start|>user\ncat<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(qwen3_chat_prompt("cat", std::string()), "<|im_start|>user\ncat<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

}  // namespace
}  // namespace zimage

// T1 at Qwen3-4B's layer size (C 2560, 32 query heads on 8 KV heads, D 128,
// F 9728): one decoder layer in float vs double with synthetic weights, at a
// ragged length with left padding (L 97) and at a long one (L 1025).
#include <nlohmann/json.hpp>

#include "support/test_support.h"
#include "text_encoder/qwen3_model.h"
#include "text_encoder/module_table.h"

namespace zimage {
namespace {

std::shared_ptr<ParamSource> layer0_params(const Qwen3Config& c) {
  nlohmann::json t = nlohmann::json::object();
  for (const auto& [name, shape] : qwen3_parameter_shapes(c)) {
    if (name.rfind("layers.0.", 0) != 0) continue;
    const bool norm = name.find("norm") != std::string::npos;
    t[name] = {{"shape", shape}, {"offset", norm ? 1.0 : 0.0}, {"scale", norm ? 0.2 : 1.0 / std::sqrt(double(shape.back()))}};
  }
  return synthetic_param_source(nlohmann::json{{"seed", 77}, {"tensors", t}}.dump());
}

class TextEncoderRealT1 : public ::testing::TestWithParam<int64_t> {};

TEST_P(TextEncoderRealT1, DecoderLayerFloatWithinBudgetOfDouble) {
  const int64_t L = GetParam();
  const Qwen3Config c = qwen3_4b_config();
  const auto src = layer0_params(c);
  // Only layers.0 is generated: build the layer weights straight from the source.
  auto load = [&](auto tag) {
    using T = decltype(tag);
    auto P = [&](const std::string& n) { return src->load("layers.0." + n).template cast<T>(); };
    auto lin = [&](const std::string& n) { return LinearW<T>{P(n + ".weight"), {}}; };
    return Qwen3LayerW<T>{P("input_layernorm.weight"), P("post_attention_layernorm.weight"),
                          {lin("self_attn.q_proj"), lin("self_attn.k_proj"), lin("self_attn.v_proj"), lin("self_attn.o_proj"),
                           P("self_attn.q_norm.weight"), P("self_attn.k_norm.weight")},
                          {lin("mlp.gate_proj"), lin("mlp.up_proj"), lin("mlp.down_proj")}};
  };
  const auto wf = load(float{});
  const auto wd = load(double{});
  const Tensor<double> x = testing::randn<double>({1, L, int64_t(c.hidden_size)}, testing::test_seed());
  Tensor<int32_t> mask({1, L}, 1);
  for (int64_t i = 0; i < L / 10; ++i) mask[i] = 0;  // left padding on the first tenth
  const auto [cf, sf] = qwen3_rotary_embedding<float>(c, L);
  const auto [cd, sd] = qwen3_rotary_embedding<double>(c, L);
  const auto f = qwen3_decoder_layer(x.cast<float>(), wf, mask, cf, sf, c);
  const auto d = qwen3_decoder_layer(x, wd, mask, cd, sd, c);
  const auto b = text_encoder_module_budget(numerics::Tier::T1, "layers.0", c, L);
  testing::expect_within("layers.0 L" + std::to_string(L), numerics::compare(f, d), b);
}

INSTANTIATE_TEST_SUITE_P(Qwen3_4B, TextEncoderRealT1, ::testing::Values(97, 1025),
                         [](const auto& info) { return "L" + std::to_string(info.param); });

}  // namespace
}  // namespace zimage

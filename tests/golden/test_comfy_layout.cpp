// ComfyUI single-file layout (reference/dit/comfy_layout.h) against
// diffusers' converter: golden/comfy/comfy_tiny.safetensors is a ComfyUI-
// layout file; tools/golden/dump_comfy.py ran diffusers'
// convert_z_image_transformer_checkpoint_to_diffusers on it and recorded what
// came out (name, shape, fnv1a64 of the float32 bytes). Our reader must
// present exactly those tensors, bit for bit.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "dit/comfy_layout.h"
#include "dit/model_folder.h"
#include "dit/transformer.h"
#include "io/synthetic.h"
#include "support/golden_values.h"

namespace zimage {
namespace {

const std::string kComfy = std::string(ZIMAGE_GOLDEN_DIR) + "/comfy/comfy_tiny.safetensors";

nlohmann::json converted_record() {
  const auto f = SafetensorsFile::open(kComfy);
  EXPECT_EQ(f->metadata().at("kind"), "comfy_single_file");
  return nlohmann::json::parse(f->metadata().at("converted"));
}

// The gate: every name diffusers' converter produced, with its shape and
// bits, and no other name. Returns the mismatches (empty = agree).
std::vector<std::string> mismatches(const ParamSource& src, const nlohmann::json& record) {
  std::vector<std::string> bad;
  const auto shapes = src.shapes();
  for (const auto& [name, r] : record.items()) {
    auto it = shapes.find(name);
    if (it == shapes.end()) {
      bad.push_back("missing " + name);
      continue;
    }
    if (it->second != r["shape"].get<Shape>()) bad.push_back("shape of " + name);
    else if (testing::fnv1a64_hex(src.load_float(name)) != r["fnv1a64"].get<std::string>())
      bad.push_back("bits of " + name);
  }
  for (const auto& [name, s] : shapes)
    if (!record.contains(name)) bad.push_back("unexpected " + name);
  return bad;
}

TEST(ComfyLayout, MatchesDiffusersConverterBitForBit) {
  const auto record = converted_record();
  const auto src = open_comfy_single_file(kComfy);
  const auto bad = mismatches(*src, record);
  std::printf("comfy_tiny: %zu diffusers tensors compared with the converter's output, %zu mismatches\n", record.size(),
              bad.size());
  EXPECT_TRUE(bad.empty()) << bad.front();
  EXPECT_GT(record.size(), 60u);
}

TEST(ComfyLayout, DetectedAndCompleteForItsConfig) {
  const auto f = SafetensorsFile::open(kComfy);
  EXPECT_TRUE(is_comfy_zimage_file(*f));
  const ZImageConfig cfg = ZImageConfig::from_json(nlohmann::json::parse(f->metadata().at("config")), kComfy);
  const auto src = open_comfy_single_file(kComfy);
  EXPECT_NO_THROW(check_complete(*src, expected_parameter_shapes(cfg)));
  // A diffusers-layout file is not mistaken for a ComfyUI one.
  const auto diffusers_file =
      SafetensorsFile::open(std::string(ZIMAGE_GOLDEN_DIR) + "/models/tiny_single/diffusion_pytorch_model.safetensors");
  EXPECT_FALSE(is_comfy_zimage_file(*diffusers_file));
}

TEST(ComfyLayout, RenameFollowsTheConvertersOrder) {
  EXPECT_EQ(comfy_rename("model.diffusion_model.final_layer.linear.weight"), "all_final_layer.2-1.linear.weight");
  EXPECT_EQ(comfy_rename("model.diffusion_model.x_embedder.bias"), "all_x_embedder.2-1.bias");
  EXPECT_EQ(comfy_rename("model.diffusion_model.layers.3.attention.out.weight"), "layers.3.attention.to_out.0.weight");
  EXPECT_EQ(comfy_rename("layers.3.attention.q_norm.weight"), "layers.3.attention.norm_q.weight");
  EXPECT_EQ(comfy_rename("cap_embedder.1.weight"), "cap_embedder.1.weight");
}

// Mutation: a reader that splits qkv in the wrong order (k, q, v) must fail the gate.
class SwapQK : public ParamSource {
 public:
  explicit SwapQK(std::shared_ptr<ParamSource> s) : s_(std::move(s)) {}
  std::map<std::string, Shape> shapes() const override { return s_->shapes(); }
  Tensor<double> load(const std::string& n) const override { return s_->load(swap(n)); }
  Tensor<float> load_float(const std::string& n) const override { return s_->load_float(swap(n)); }
  std::string describe() const override { return "swapped"; }

 private:
  static std::string swap(std::string n) {
    auto p = n.find(".to_q.");
    if (p != std::string::npos) return n.replace(p, 6, ".to_k.");
    p = n.find(".to_k.");
    if (p != std::string::npos) return n.replace(p, 6, ".to_q.");
    return n;
  }
  std::shared_ptr<ParamSource> s_;
};

TEST(ComfyLayoutMutation, QkvSplitOrderIsCaught) {
  const SwapQK mutant(open_comfy_single_file(kComfy));
  const auto bad = mismatches(mutant, converted_record());
  std::printf("qkv split as (k, q, v): %zu mismatches (first: %s)\n", bad.size(), bad.empty() ? "-" : bad[0].c_str());
  EXPECT_GE(bad.size(), 6u);  // to_q and to_k of each of the 4 blocks
}

TEST(ComfyLayout, BadFusedShapeNamesTheKey) {
  SafetensorsWriter w;
  w.add("model.diffusion_model.layers.0.attention.qkv.weight", Tensor<float>({4, 2}, 1.0f));
  w.add("model.diffusion_model.layers.0.adaLN_modulation.0.weight", Tensor<float>({2, 2}, 1.0f));
  const std::string path = ::testing::TempDir() + "/bad_qkv.safetensors";
  w.write(path);
  try {
    open_comfy_single_file(path);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layers.0.attention.qkv.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[4, 2]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace zimage

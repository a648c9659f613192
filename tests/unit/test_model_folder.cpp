// Model folders: the parameter list against diffusers, single-file and
// sharded folders, and the errors for missing / unexpected / misshapen
// tensors and broken indexes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "io/safetensors.h"
#include "dit/model_folder.h"
#include "io/synthetic.h"
#include "support/expect_errors.h"

namespace zimage {
namespace {

using testing::error_of;

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;

// state_dict() shapes of diffusers' ZImageTransformer2DModel(all_patch_size=[2],
// all_f_patch_size=[1], in_channels=4, dim=64, n_layers=2, n_refiner_layers=1,
// n_heads=2, n_kv_heads=2, qk_norm=True, cap_feat_dim=32, axes_dims=[8,12,12],
// axes_lens=[64,32,32]), dumped from diffusers 0.40.0.dev0 with
// json.dumps({k: list(v.shape) for k, v in model.state_dict().items()}).
const char* kDiffusersTinyShapes = R"(
{"all_final_layer.2-1.adaLN_modulation.1.bias":[64]
,"all_final_layer.2-1.adaLN_modulation.1.weight":[64,64],"all_final_layer.2-1.linear.bias":[16]
,"all_final_layer.2-1.linear.weight":[16,64],"all_x_embedder.2-1.bias":[64]
,"all_x_embedder.2-1.weight":[64,16],"cap_embedder.0.weight":[32],"cap_embedder.1.bias":[64]
,"cap_embedder.1.weight":[64,32],"cap_pad_token":[1,64],"context_refiner.0.attention.norm_k.weight":[32]
,"context_refiner.0.attention.norm_q.weight":[32],"context_refiner.0.attention.to_k.weight":[64,64]
,"context_refiner.0.attention.to_out.0.weight":[64,64],"context_refiner.0.attention.to_q.weight":[64,64]
,"context_refiner.0.attention.to_v.weight":[64,64],"context_refiner.0.attention_norm1.weight":[64]
,"context_refiner.0.attention_norm2.weight":[64],"context_refiner.0.feed_forward.w1.weight":[170,64]
,"context_refiner.0.feed_forward.w2.weight":[64,170],"context_refiner.0.feed_forward.w3.weight":[170,64]
,"context_refiner.0.ffn_norm1.weight":[64],"context_refiner.0.ffn_norm2.weight":[64]
,"layers.0.adaLN_modulation.0.bias":[256],"layers.0.adaLN_modulation.0.weight":[256,64]
,"layers.0.attention.norm_k.weight":[32],"layers.0.attention.norm_q.weight":[32]
,"layers.0.attention.to_k.weight":[64,64],"layers.0.attention.to_out.0.weight":[64,64]
,"layers.0.attention.to_q.weight":[64,64],"layers.0.attention.to_v.weight":[64,64]
,"layers.0.attention_norm1.weight":[64],"layers.0.attention_norm2.weight":[64]
,"layers.0.feed_forward.w1.weight":[170,64],"layers.0.feed_forward.w2.weight":[64,170]
,"layers.0.feed_forward.w3.weight":[170,64],"layers.0.ffn_norm1.weight":[64]
,"layers.0.ffn_norm2.weight":[64],"layers.1.adaLN_modulation.0.bias":[256]
,"layers.1.adaLN_modulation.0.weight":[256,64],"layers.1.attention.norm_k.weight":[32]
,"layers.1.attention.norm_q.weight":[32],"layers.1.attention.to_k.weight":[64,64]
,"layers.1.attention.to_out.0.weight":[64,64],"layers.1.attention.to_q.weight":[64,64]
,"layers.1.attention.to_v.weight":[64,64],"layers.1.attention_norm1.weight":[64]
,"layers.1.attention_norm2.weight":[64],"layers.1.feed_forward.w1.weight":[170,64]
,"layers.1.feed_forward.w2.weight":[64,170],"layers.1.feed_forward.w3.weight":[170,64]
,"layers.1.ffn_norm1.weight":[64],"layers.1.ffn_norm2.weight":[64]
,"noise_refiner.0.adaLN_modulation.0.bias":[256],"noise_refiner.0.adaLN_modulation.0.weight":[256,64]
,"noise_refiner.0.attention.norm_k.weight":[32],"noise_refiner.0.attention.norm_q.weight":[32]
,"noise_refiner.0.attention.to_k.weight":[64,64],"noise_refiner.0.attention.to_out.0.weight":[64,64]
,"noise_refiner.0.attention.to_q.weight":[64,64],"noise_refiner.0.attention.to_v.weight":[64,64]
,"noise_refiner.0.attention_norm1.weight":[64],"noise_refiner.0.attention_norm2.weight":[64]
,"noise_refiner.0.feed_forward.w1.weight":[170,64],"noise_refiner.0.feed_forward.w2.weight":[64,170]
,"noise_refiner.0.feed_forward.w3.weight":[170,64],"noise_refiner.0.ffn_norm1.weight":[64]
,"noise_refiner.0.ffn_norm2.weight":[64],"t_embedder.mlp.0.bias":[1024]
,"t_embedder.mlp.0.weight":[1024,256],"t_embedder.mlp.2.bias":[64],"t_embedder.mlp.2.weight":[64,1024]
,"x_pad_token":[1,64]}
)";

ZImageConfig tiny_config() {
  ZImageConfig c;
  c.all_patch_size = {2};
  c.all_f_patch_size = {1};
  c.in_channels = 4;
  c.dim = 64;
  c.n_layers = 2;
  c.n_refiner_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 2;
  c.qk_norm = true;
  c.cap_feat_dim = 32;
  c.axes_dims = {8, 12, 12};
  c.axes_lens = {64, 32, 32};
  c.validate("tiny");
  return c;
}

TEST(ExpectedShapes, MatchDiffusersStateDictOfTinyModel) {
  std::map<std::string, Shape> diffusers;
  const json dumped = json::parse(kDiffusersTinyShapes);
  for (const auto& [name, shape] : dumped.items()) diffusers[name] = shape.get<Shape>();
  EXPECT_EQ(expected_parameter_shapes(tiny_config()), diffusers);
}

TEST(ExpectedShapes, WithoutQkNormThereAreNoNormQK) {
  ZImageConfig c = tiny_config();
  c.qk_norm = false;
  const auto shapes = expected_parameter_shapes(c);
  EXPECT_EQ(shapes.size(), 73u - 8u);
  for (const auto& [name, shape] : shapes) EXPECT_EQ(name.find("norm_q"), std::string::npos) << name;
}

// The model card's parameter count (also diffusers on the meta device: 521 tensors).
TEST(ExpectedShapes, TurboHasExactly6154908736Parameters) {
  ZImageConfig c;  // the struct defaults are Turbo's
  c.dim = 3840;
  c.n_heads = c.n_kv_heads = 30;
  c.n_layers = 30;
  c.n_refiner_layers = 2;
  c.cap_feat_dim = 2560;
  c.in_channels = 16;
  c.validate("turbo");
  const auto shapes = expected_parameter_shapes(c);
  int64_t total = 0;
  for (const auto& [name, shape] : shapes) total += shape_numel(shape);
  EXPECT_EQ(total, 6'154'908'736);
  EXPECT_EQ(shapes.size(), 521u);
  EXPECT_EQ(shapes.at("layers.29.feed_forward.w2.weight"), (Shape{3840, 10240}));
  EXPECT_EQ(shapes.at("t_embedder.mlp.2.weight"), (Shape{256, 1024}));
  EXPECT_EQ(shapes.at("all_final_layer.2-1.linear.weight"), (Shape{64, 3840}));
}

// A fresh directory holding a tiny model folder.
class ModelFolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "zimage_folder_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    cfg_ = tiny_config();
    std::ofstream(dir_ / "config.json") << cfg_.to_json().dump(2);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Deterministic values per tensor so loads can be checked.
  static Tensor<float> values(const std::string& name, const Shape& shape) {
    Tensor<float> t(shape);
    synthetic_fill(7, name, 0.0, 1.0, t.ptr(), t.numel());
    return t;
  }

  // Every expected parameter, optionally edited, split over `shards` files.
  // Returns the file names (a single file is diffusion_pytorch_model.safetensors).
  std::vector<std::string> write_weights(std::map<std::string, Shape> shapes, int shards = 1, DType as = DType::F32) {
    std::vector<SafetensorsWriter> writers(static_cast<size_t>(shards));
    std::vector<std::string> files;
    json weight_map = json::object();
    for (int s = 0; s < shards; ++s)
      files.push_back(shards == 1 ? "diffusion_pytorch_model.safetensors"
                                  : "diffusion_pytorch_model-0000" + std::to_string(s + 1) + "-of-0000" +
                                        std::to_string(shards) + ".safetensors");
    int i = 0;
    for (const auto& [name, shape] : shapes) {
      const int s = i++ % shards;
      writers[size_t(s)].add(name, values(name, shape), as);
      weight_map[name] = files[size_t(s)];
    }
    for (int s = 0; s < shards; ++s) writers[size_t(s)].write((dir_ / files[size_t(s)]).string());
    if (shards > 1) write_index(weight_map);
    return files;
  }

  void write_index(const json& weight_map) {
    std::ofstream(dir_ / "diffusion_pytorch_model.safetensors.index.json")
        << json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump(2);
  }
  std::string index_path() const { return (dir_ / "diffusion_pytorch_model.safetensors.index.json").string(); }
  json read_index() const { return json::parse(std::ifstream(index_path())); }

  fs::path dir_;
  ZImageConfig cfg_;
};

TEST_F(ModelFolderTest, SingleFile) {
  write_weights(expected_parameter_shapes(cfg_));
  const ModelFolder mf = open_model_folder(dir_.string());
  EXPECT_EQ(mf.config.to_json(), cfg_.to_json());
  EXPECT_EQ(mf.params->shapes(), expected_parameter_shapes(cfg_));
  EXPECT_THAT(mf.params->describe(), HasSubstr("diffusion_pytorch_model.safetensors"));
  const std::string name = "layers.1.feed_forward.w1.weight";
  const Tensor<double> t = mf.params->load(name);
  EXPECT_EQ(t.shape, (Shape{170, 64}));
  EXPECT_EQ(t.data, values(name, t.shape).cast<double>().data);
  EXPECT_THAT(error_of([&] { mf.params->load("nope"); }), HasSubstr("'nope'"));
}

TEST_F(ModelFolderTest, Bf16WeightsWidenExactly) {
  write_weights(expected_parameter_shapes(cfg_), 1, DType::BF16);
  const ModelFolder mf = open_model_folder(dir_.string());
  const std::string name = "cap_embedder.1.weight";
  const Tensor<double> t = mf.params->load(name);
  const Tensor<float> v = values(name, t.shape);
  for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(t[i], double(bf16_to_float(float_to_bf16(v[i]))));
}

TEST_F(ModelFolderTest, Sharded) {
  write_weights(expected_parameter_shapes(cfg_), 3);
  const ModelFolder mf = open_model_folder(dir_.string());
  EXPECT_EQ(mf.params->shapes(), expected_parameter_shapes(cfg_));
  EXPECT_THAT(mf.params->describe(), HasSubstr("index.json"));
  const std::string name = "x_pad_token";
  EXPECT_EQ(mf.params->load(name).data, values(name, {1, 64}).cast<double>().data);
}

TEST_F(ModelFolderTest, MissingTensor) {
  auto shapes = expected_parameter_shapes(cfg_);
  shapes.erase("noise_refiner.0.attention.norm_k.weight");
  write_weights(shapes);
  const std::string msg = error_of([&] { open_model_folder(dir_.string()); });
  EXPECT_THAT(msg, HasSubstr("diffusion_pytorch_model.safetensors"));
  EXPECT_THAT(msg, HasSubstr("missing tensor 'noise_refiner.0.attention.norm_k.weight'"));
}

TEST_F(ModelFolderTest, UnexpectedTensor) {
  auto shapes = expected_parameter_shapes(cfg_);
  shapes["siglip_pad_token"] = {1, 64};
  write_weights(shapes, 2);
  const std::string msg = error_of([&] { open_model_folder(dir_.string()); });
  EXPECT_THAT(msg, HasSubstr(index_path()));
  EXPECT_THAT(msg, HasSubstr("unexpected tensor 'siglip_pad_token'"));
}

TEST_F(ModelFolderTest, WrongShape) {
  auto shapes = expected_parameter_shapes(cfg_);
  shapes["layers.0.adaLN_modulation.0.weight"] = {256, 256};
  write_weights(shapes);
  const std::string msg = error_of([&] { open_model_folder(dir_.string()); });
  EXPECT_THAT(msg, HasSubstr("diffusion_pytorch_model.safetensors"));
  EXPECT_THAT(msg, HasSubstr("'layers.0.adaLN_modulation.0.weight' has shape [256, 256], the config implies [256, 64]"));
}

TEST_F(ModelFolderTest, IndexPointsToMissingShard) {
  const auto files = write_weights(expected_parameter_shapes(cfg_), 2);
  fs::remove(dir_ / files[1]);
  const std::string msg = error_of([&] { open_model_folder(dir_.string()); });
  EXPECT_THAT(msg, HasSubstr(index_path()));
  EXPECT_THAT(msg, HasSubstr(files[1]));
}

TEST_F(ModelFolderTest, IndexMapsTensorToShardThatLacksIt) {
  const auto files = write_weights(expected_parameter_shapes(cfg_), 2);
  json index = read_index();
  const std::string name = "cap_pad_token";
  const std::string other = index["weight_map"][name] == files[0] ? files[1] : files[0];
  index["weight_map"][name] = other;
  write_index(index["weight_map"]);
  const std::string msg = error_of([&] { open_model_folder(dir_.string()); });
  EXPECT_THAT(msg, HasSubstr(index_path()));
  EXPECT_THAT(msg, HasSubstr("'" + name + "'"));
  EXPECT_THAT(msg, HasSubstr(other));
}

TEST_F(ModelFolderTest, ShardHoldsTensorTheIndexDoesNotList) {
  write_weights(expected_parameter_shapes(cfg_), 2);
  json index = read_index();
  index["weight_map"].erase("t_embedder.mlp.0.bias");
  write_index(index["weight_map"]);
  const std::string msg = error_of([&] { open_model_folder(dir_.string()); });
  EXPECT_THAT(msg, HasSubstr("'t_embedder.mlp.0.bias' is not listed in " + index_path()));
}

TEST_F(ModelFolderTest, NoWeights) {
  const std::string msg = error_of([&] { open_model_folder(dir_.string()); });
  EXPECT_EQ(msg, dir_.string() + ": no diffusion_pytorch_model.safetensors or "
                                 "diffusion_pytorch_model.safetensors.index.json");
}

TEST_F(ModelFolderTest, BadConfigIsReportedFirst) {
  write_weights(expected_parameter_shapes(cfg_));
  json j = cfg_.to_json();
  j.erase("axes_lens");
  std::ofstream(dir_ / "config.json") << j.dump();
  const std::string msg = error_of([&] { open_model_folder(dir_.string()); });
  EXPECT_THAT(msg, HasSubstr((dir_ / "config.json").string()));
  EXPECT_THAT(msg, HasSubstr("'axes_lens'"));
}

TEST_F(ModelFolderTest, IntegerTensorIsRefused) {
  auto shapes = expected_parameter_shapes(cfg_);
  write_weights(shapes);
  SafetensorsWriter w;
  for (const auto& [name, shape] : shapes) {
    if (name == "x_pad_token") w.add(name, Tensor<int32_t>(shape));
    else w.add(name, values(name, shape));
  }
  w.write((dir_ / "diffusion_pytorch_model.safetensors").string());
  const std::string msg = error_of([&] { open_model_folder(dir_.string()); });
  EXPECT_THAT(msg, HasSubstr("'x_pad_token'"));
  EXPECT_THAT(msg, HasSubstr("I32"));
}

TEST(CheckComplete, WorksOnSyntheticSources) {
  const ZImageConfig cfg = tiny_config();
  json tensors = json::object();
  for (const auto& [name, shape] : expected_parameter_shapes(cfg))
    tensors[name] = {{"shape", shape}, {"offset", 0.0}, {"scale", 0.02}};
  auto src = synthetic_param_source(json{{"seed", 3}, {"tensors", tensors}}.dump());
  EXPECT_NO_THROW(check_complete(*src, expected_parameter_shapes(cfg)));
  tensors.erase("cap_pad_token");
  src = synthetic_param_source(json{{"seed", 3}, {"tensors", tensors}}.dump());
  const std::string msg = error_of([&] { check_complete(*src, expected_parameter_shapes(cfg)); });
  EXPECT_THAT(msg, HasSubstr("synthetic(seed=3)"));
  EXPECT_THAT(msg, HasSubstr("missing tensor 'cap_pad_token'"));
}

// ---------------------------------------------------------------- found with fuzz/fuzz_shard_index

// Tensor and shard names come from the index and the shards; a newline in one
// must not break the one-line message (fuzz finding: a shard name with "\n").
TEST_F(ModelFolderTest, NamesWithNewlinesStillGiveOneLineMessages) {
  const auto files = write_weights(expected_parameter_shapes(cfg_), 2);
  const json good = read_index()["weight_map"];
  const std::pair<std::string, std::string> bad[] = {
      {"cap_pad_token", files[0] + "\n"},                  // shard that does not exist
      {"cap_pad_token", "a\r\nb/c"},                      // not a file in the folder
      {"no\nsuch", files[0]},                              // shard that does not hold it
  };
  for (const auto& [name, file] : bad) {
    json weight_map = good;
    weight_map[name] = file;
    write_index(weight_map);
    const std::string msg = error_of([&] { open_model_folder(dir_.string()); });  // checks: one line
    EXPECT_THAT(msg, HasSubstr(index_path())) << name << " -> " << file;
  }
  json weight_map = good;
  weight_map["x_pad_token"] = 3;
  weight_map["a\nb"] = 3;
  write_index(weight_map);
  EXPECT_THAT(error_of([&] { open_model_folder(dir_.string()); }), HasSubstr("is not a file name"));

  // An unexpected tensor in a shard, named with a newline.
  auto shapes = expected_parameter_shapes(cfg_);
  shapes["extra\ntensor"] = {1};
  write_weights(shapes, 2);
  EXPECT_THAT(error_of([&] { open_model_folder(dir_.string()); }), HasSubstr("unexpected tensor 'extra tensor'"));
}

// A shard name with a NUL byte reached the file system as the folder itself
// ("dir/" once the C string ends) and failed as "cannot mmap"; it is refused
// as not a file in the folder, and the NUL does not cut the message short.
TEST_F(ModelFolderTest, ShardNameWithNulIsRefused) {
  write_weights(expected_parameter_shapes(cfg_), 2);
  json weight_map = read_index()["weight_map"];
  weight_map["x_pad_token"] = std::string("\0", 1);
  write_index(weight_map);
  const std::string msg = error_of([&] { open_model_folder(dir_.string()); });
  EXPECT_EQ(msg, index_path() + ": weight_map entry for 'x_pad_token' names ' ', not a file in " + dir_.string());
}

// fs::exists() threw std::filesystem::filesystem_error ("File name too long")
// for a shard name over NAME_MAX instead of a zimage::Error (fuzz finding).
TEST_F(ModelFolderTest, OverlongShardNameIsAnError) {
  write_weights(expected_parameter_shapes(cfg_), 2);
  json weight_map = read_index()["weight_map"];
  const std::string longname(300, 'x');
  weight_map["x_pad_token"] = longname;
  write_index(weight_map);
  const std::string msg = error_of([&] { open_model_folder(dir_.string()); });
  EXPECT_THAT(msg, HasSubstr(index_path() + ": shard '" + longname + "' (holding tensor 'x_pad_token') does not exist"));
}

}  // namespace
}  // namespace zimage

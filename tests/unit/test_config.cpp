// ZImageConfig: parsing a Turbo config.json, required keys, and validation
// messages that name the source and the key.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "dit/config.h"
#include "core/error.h"
#include "support/expect_errors.h"

namespace zimage {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;

// Z-Image-Turbo's transformer/config.json, as diffusers writes it.
const char* kTurbo = R"({
  "_class_name": "ZImageTransformer2DModel",
  "_diffusers_version": "0.36.0.dev0",
  "all_f_patch_size": [1],
  "all_patch_size": [2],
  "axes_dims": [32, 48, 48],
  "axes_lens": [1536, 512, 512],
  "cap_feat_dim": 2560,
  "dim": 3840,
  "in_channels": 16,
  "n_heads": 30,
  "n_kv_heads": 30,
  "n_layers": 30,
  "n_refiner_layers": 2,
  "norm_eps": 1e-05,
  "qk_norm": true,
  "rope_theta": 256.0,
  "t_scale": 1000.0
})";

const char* kRequired[] = {"all_patch_size", "all_f_patch_size", "in_channels", "dim",         "n_layers",
                           "n_refiner_layers", "n_heads",        "n_kv_heads",  "norm_eps",    "qk_norm",
                           "cap_feat_dim",    "rope_theta",      "t_scale",     "axes_dims",   "axes_lens"};

std::string parse_error(const json& j, const std::string& source = "src/config.json") {
  return testing::error_of([&] { ZImageConfig::from_json(j, source); });
}

TEST(Config, ParsesTurbo) {
  const ZImageConfig c = ZImageConfig::from_json(json::parse(kTurbo), "turbo/config.json");
  EXPECT_EQ(c.all_patch_size, std::vector<int>{2});
  EXPECT_EQ(c.all_f_patch_size, std::vector<int>{1});
  EXPECT_EQ(c.in_channels, 16);
  EXPECT_EQ(c.dim, 3840);
  EXPECT_EQ(c.n_layers, 30);
  EXPECT_EQ(c.n_refiner_layers, 2);
  EXPECT_EQ(c.n_heads, 30);
  EXPECT_EQ(c.n_kv_heads, 30);
  EXPECT_EQ(c.norm_eps, 1e-5);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_EQ(c.cap_feat_dim, 2560);
  EXPECT_EQ(c.rope_theta, 256.0);
  EXPECT_EQ(c.t_scale, 1000.0);
  EXPECT_EQ(c.axes_dims, (std::vector<int>{32, 48, 48}));
  EXPECT_EQ(c.axes_lens, (std::vector<int>{1536, 512, 512}));
  EXPECT_EQ(c.head_dim(), 128);
  EXPECT_EQ(c.ffn_hidden(), 10240);
  EXPECT_EQ(c.adaln_dim(), 256);
  EXPECT_EQ(c.patch_dim(), 64);
  EXPECT_EQ(c.embedder_key(), "2-1");
}

TEST(Config, ToJsonRoundTrips) {
  const ZImageConfig c = ZImageConfig::from_json(json::parse(kTurbo), "turbo");
  const json j = c.to_json();
  EXPECT_TRUE(j.contains("siglip_feat_dim") && j["siglip_feat_dim"].is_null());
  const ZImageConfig back = ZImageConfig::from_json(j, "round trip");
  EXPECT_EQ(back.to_json(), j);
  for (const char* key : kRequired) EXPECT_EQ(j[key], json::parse(kTurbo)[key]) << key;
}

TEST(Config, FromFile) {
  std::string tmpl = ::testing::TempDir() + "zimage_cfg_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  const fs::path dir = tmpl;
  const std::string path = (dir / "config.json").string();
  std::ofstream(path) << kTurbo;
  EXPECT_EQ(ZImageConfig::from_file(path).dim, 3840);

  std::ofstream(path) << "{\"dim\": ";
  std::string msg = testing::error_of([&] { ZImageConfig::from_file(path); });
  EXPECT_THAT(msg, HasSubstr(path));
  EXPECT_THAT(msg, HasSubstr("JSON"));

  const std::string absent = (dir / "absent.json").string();
  EXPECT_THAT(testing::error_of([&] { ZImageConfig::from_file(absent); }), HasSubstr(absent));
  fs::remove_all(dir);
}

TEST(Config, EveryKeyIsRequired) {
  for (const char* key : kRequired) {
    json j = json::parse(kTurbo);
    j.erase(key);
    const std::string msg = parse_error(j);
    EXPECT_THAT(msg, HasSubstr("src/config.json")) << key;
    EXPECT_THAT(msg, HasSubstr(std::string("missing key '") + key + "'")) << key;
  }
}

TEST(Config, WrongJsonTypes) {
  const std::pair<const char*, json> cases[] = {
      {"dim", "3840"}, {"qk_norm", 1}, {"norm_eps", "1e-5"}, {"axes_dims", 32}, {"axes_lens", json{1536, 512.5, 512}},
      {"n_layers", 30.5}, {"in_channels", 1ll << 40}};
  for (const auto& [key, value] : cases) {
    json j = json::parse(kTurbo);
    j[key] = value;
    const std::string msg = parse_error(j);
    EXPECT_THAT(msg, HasSubstr("src/config.json")) << key;
    EXPECT_THAT(msg, HasSubstr(std::string("'") + key + "'")) << key;
  }
}

TEST(Config, HeadDimMustEqualSumOfAxesDims) {
  json j = json::parse(kTurbo);
  j["dim"] = 64;
  j["n_heads"] = 2;
  j["n_kv_heads"] = 2;
  j["axes_dims"] = {12, 12, 12};
  EXPECT_EQ(parse_error(j, "tiny/config.json"), "tiny/config.json: head_dim 32 (dim 64 / n_heads 2) != sum(axes_dims) 36");
}

TEST(Config, SiglipIsOutOfScope) {
  json j = json::parse(kTurbo);
  j["siglip_feat_dim"] = nullptr;
  EXPECT_NO_THROW(ZImageConfig::from_json(j, "x"));
  j["siglip_feat_dim"] = 1152;
  const std::string msg = parse_error(j);
  EXPECT_THAT(msg, HasSubstr("src/config.json"));
  EXPECT_THAT(msg, HasSubstr("siglip_feat_dim"));
  EXPECT_THAT(msg, HasSubstr("out of scope"));
}

TEST(Config, KvHeadsMustEqualHeads) {
  json j = json::parse(kTurbo);
  j["n_kv_heads"] = 10;
  const std::string msg = parse_error(j);
  EXPECT_THAT(msg, HasSubstr("n_kv_heads 10 != n_heads 30"));
  EXPECT_THAT(msg, HasSubstr("diffusers ignores n_kv_heads"));
}

TEST(Config, ValidationErrorsNameTheKey) {
  const std::pair<const char*, json> cases[] = {
      {"all_patch_size", json{2, 4}},      {"all_f_patch_size", json::array()}, {"all_patch_size", json{0}},
      {"dim", 0},                          {"n_heads", 0},                       {"in_channels", -1},
      {"cap_feat_dim", 0},                 {"n_layers", 0},                      {"norm_eps", 0.0},
      {"rope_theta", -1.0},                {"t_scale", 0},                       {"axes_dims", json{32, 47, 49}},
      {"axes_dims", json{64, 64}},         {"axes_lens", json{1536, 0, 512}},    {"axes_lens", json{1536, 512}},
      {"n_refiner_layers", -1}};
  for (const auto& [key, value] : cases) {
    json j = json::parse(kTurbo);
    j[key] = value;
    const std::string msg = parse_error(j);
    EXPECT_THAT(msg, HasSubstr("src/config.json: ")) << key << " = " << value;
    EXPECT_THAT(msg, HasSubstr(key)) << key << " = " << value;
  }
}

TEST(Config, DimMustBeAMultipleOfHeads) {
  json j = json::parse(kTurbo);
  j["dim"] = 3841;
  EXPECT_THAT(parse_error(j), HasSubstr("dim 3841 is not a multiple of n_heads 30"));
}

TEST(Config, ExtraKeysAreIgnoredAndZeroRefinersAllowed) {
  json j = json::parse(kTurbo);
  j["something_new"] = {1, 2};
  j["n_refiner_layers"] = 0;
  EXPECT_EQ(ZImageConfig::from_json(j, "x").n_refiner_layers, 0);
}

// ---------------------------------------------------------------- found with fuzz/fuzz_config

// sum(axes_dims) was an int: three large even entries overflowed it (signed: UB).
TEST(Config, HugeAxesDimsDoNotOverflowTheSum) {
  json j = json::parse(kTurbo);
  j["axes_dims"] = {2147483646, 2147483646, 2147483646};
  EXPECT_THAT(parse_error(j), HasSubstr("!= sum(axes_dims) 6442450938"));
}

// ffn_hidden() and patch_dim() are ints derived from the config: a config they
// overflow passed validate() and then overflowed there (float->int and signed
// overflow: UB).
TEST(Config, DerivedSizesMustFitAnInt) {
  json j = json::parse(kTurbo);
  j["dim"] = 1073741824;
  j["n_heads"] = j["n_kv_heads"] = 8388608;  // head_dim 128 = sum(axes_dims)
  std::string msg = parse_error(j);
  EXPECT_THAT(msg, HasSubstr("src/config.json: dim 1073741824"));
  EXPECT_THAT(msg, HasSubstr("does not fit an int"));
  j["dim"] = 805306368;  // int(dim / 3 * 8) = 2147483648
  j["n_heads"] = j["n_kv_heads"] = 6291456;
  EXPECT_THAT(parse_error(j), HasSubstr("feed-forward width"));
  j = json::parse(kTurbo);
  j["in_channels"] = 2147483647;
  msg = parse_error(j);
  EXPECT_THAT(msg, HasSubstr("in_channels 2147483647"));
  EXPECT_THAT(msg, HasSubstr("patch width"));
  j["in_channels"] = 536870911;  // 4 * 536870911 = 2147483644 fits
  EXPECT_EQ(ZImageConfig::from_json(j, "x").patch_dim(), 2147483644);
}

// A deeply nested value used to be dumped whole into the message: json::dump()
// recursed a million frames deep and overflowed the stack.
TEST(Config, DeeplyNestedValueIsAnErrorNotAStackOverflow) {
  const size_t depth = 1'000'000;
  const std::string nested = std::string(depth, '[') + std::string(depth, ']');
  for (const char* key : {"dim", "norm_eps", "qk_norm", "axes_dims", "siglip_feat_dim"}) {
    std::string text = kTurbo;
    text.replace(text.size() - 2, 1, std::string(",\n  \"") + key + "\": " + nested + "\n");
    json j = json::parse(text);  // the last duplicate key wins
    const std::string msg = parse_error(j);
    EXPECT_THAT(msg, HasSubstr("[[...]]")) << key;
    EXPECT_THAT(msg, HasSubstr(key)) << key;
  }
  std::string tmpl = ::testing::TempDir() + "zimage_cfg_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  const std::string path = (fs::path(tmpl) / "config.json").string();
  std::ofstream(path) << R"({"all_patch_size": )" << nested << "}";
  EXPECT_THAT(testing::error_of([&] { ZImageConfig::from_file(path); }), HasSubstr(path + ": key 'all_patch_size' must be a list of integers, got [[...]]"));
  fs::remove_all(tmpl);
}

}  // namespace
}  // namespace zimage

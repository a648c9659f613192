// T2 for the VAE (docs/vae.md): every AutoencoderKL module recorded in the
// VAE goldens (tools/golden/dump_vae.py), teacher forced on its golden inputs
// in float and double, within the T2 budget of its op chain; the whole-model
// rows (decode, encode.mean, encode.logvar, tiled_decode, unscale) on the
// chained budget. Every comparison prints rel_rms, max_n and the share of
// the budget used.
#include <map>
#include <mutex>

#include "support/goldens.h"
#include "support/test_support.h"
#include "vae/synthetic_vae.h"
#include "vae/vae_golden.h"
#include "vae/module_table.h"

namespace zimage {
namespace {

const std::vector<std::string> kVaeGoldens = {"vae_tiny", "vae_flux_like", "vae_real_blocks"};

const VaeGolden& golden(const std::string& c) {
  return testing::open_once<VaeGolden>(testing::golden_path(c), [](const std::string& p) { return open_vae_golden(p); });
}

// One test per block: a row "decoder.up_blocks.1.resnets.0.conv1" is checked
// in the test of "decoder.up_blocks.1" (one process per block keeps the
// suite fast); whole-model rows and real-size modules are tests of their own.
std::string group_of(const VaeGolden& g, const std::string& row) {
  if (g.kind == "vae_modules") return row;
  if (row.rfind("encode.", 0) == 0) return "encode";
  const size_t a = row.find('.');
  if (a == std::string::npos) return row;
  const size_t b = row.find('.', a + 1);
  const std::string second = row.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
  if ((second == "down_blocks" || second == "up_blocks") && b != std::string::npos) {
    const size_t c = row.find('.', b + 1);
    return row.substr(0, c);
  }
  return b == std::string::npos ? row : row.substr(0, b);
}

struct Group {
  std::string golden, group;
};
void PrintTo(const Group& r, std::ostream* os) { *os << r.golden << " " << r.group; }

std::vector<Group> groups() {
  std::vector<Group> out;
  for (const auto& c : kVaeGoldens) {
    const VaeGolden& g = golden(c);
    for (const auto& n : g.outputs()) {
      if (!vae_input_name(g, n)) continue;
      const std::string grp = group_of(g, n);
      if (out.empty() || out.back().golden != c || out.back().group != grp) out.push_back({c, grp});
    }
  }
  return out;
}

class VaeGoldenT2 : public ::testing::TestWithParam<Group> {};

TEST_P(VaeGoldenT2, TeacherForcedWithinBudget) {
  const auto& [c, grp] = GetParam();
  const VaeGolden& g = golden(c);
  int checked = 0;
  for (const auto& module : g.outputs()) {
    if (group_of(g, module) != grp || !vae_input_name(g, module)) continue;
    const Tensor<double> ref = g.get<double>(module);
    const numerics::Budget b = vae_row_budget(g, module);
    const auto f = run_vae_module<float>(g, module);
    const auto d = run_vae_module<double>(g, module);
    ASSERT_TRUE(f && d) << module;
    testing::expect_within(c + " " + module + " float", numerics::compare(*f, ref), b);
    testing::expect_within(c + " " + module + " double", numerics::compare(*d, ref), b);
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

INSTANTIATE_TEST_SUITE_P(VaeGoldens, VaeGoldenT2, ::testing::ValuesIn(groups()), [](const auto& info) {
  return testing::test_name(info.param.golden + "__" + info.param.group);
});

// What docs/vae.md promises the goldens hold.
TEST(VaeGoldenInventory, CasesAndRowsPresent) {
  for (const char* c : {"vae_tiny", "vae_flux_like"}) {
    const VaeGolden& g = golden(c);
    EXPECT_EQ(g.kind, "vae");
    for (const char* r : {"decode", "encode.mean", "encode.logvar", "tiled_decode", "unscale", "decoder", "encoder",
                          "decoder.mid_block.attentions.0", "decoder.up_blocks.0.upsamplers.0",
                          "encoder.down_blocks.0.downsamplers.0"}) {
      EXPECT_TRUE(g.has(r)) << c << " lacks " << r;
      EXPECT_TRUE(vae_input_name(g, r)) << c << " lacks the input of " << r;
    }
  }
  EXPECT_TRUE(golden("vae_tiny").has("post_quant_conv"));
  EXPECT_TRUE(golden("vae_tiny").has("quant_conv"));
  EXPECT_TRUE(golden("vae_tiny").has("decoder.up_blocks.1.resnets.0.conv_shortcut"));
  const VaeGolden& r = golden("vae_real_blocks");
  EXPECT_EQ(r.kind, "vae_modules");
  EXPECT_EQ(r.config.to_json(), flux_vae_config().to_json()) << "vae_real_blocks must carry the real Flux VAE config";
  for (const char* m : {"decoder.mid_block.resnets.0", "decoder.mid_block.attentions.0", "decoder.up_blocks.0.upsamplers.0",
                        "decoder.up_blocks.3.resnets.0", "encoder.down_blocks.0.downsamplers.0"})
    EXPECT_TRUE(r.has(m) && vae_input_name(r, m)) << "vae_real_blocks lacks " << m;
}

// vae_flux_1024 (kind vae_sampled): diffusers' whole decode at the Flux config and full size,
// latents [1, 16, 128, 128] -> [1, 3, 1024, 1024], 64 sampled rows from the first to the last; its
// synthetic spec is exactly vae_synthetic_spec's for the Flux config (every parameter). The GPU
// decode is compared with it in tests/cuda/test_cuda_vae.cpp (VaeCudaFullSize).
TEST(VaeGoldenInventory, FullSizeDecodeIsSampledRowsOfTheFluxVae) {
  const VaeGolden& g = golden("vae_flux_1024");
  EXPECT_EQ(g.kind, "vae_sampled");
  EXPECT_EQ(g.config.to_json(), flux_vae_config().to_json());
  const VaeSampledDecode d = vae_sampled_decode(g);
  EXPECT_EQ(d.z.shape, (Shape{1, 16, 128, 128}));
  EXPECT_EQ(d.image, (Shape{1, 3, 1024, 1024}));
  ASSERT_EQ(d.rows.size(), 64u);
  EXPECT_EQ(d.rows.front(), 0);
  EXPECT_EQ(d.rows.back(), 3 * 1024 - 1);
  const nlohmann::json dumped = nlohmann::json::parse(g.file->metadata().at("synthetic_weights"));
  const nlohmann::json ours =
      nlohmann::json::parse(vae_synthetic_spec(g.config, dumped.at("seed").get<uint64_t>())).at("tensors");
  EXPECT_EQ(dumped.at("tensors"), ours) << "the dumper's spec is not vae_synthetic_spec's";
  std::printf("  %zu sampled rows of %s, %zu synthetic specs agree\n", d.rows.size(), shape_str(d.image).c_str(),
              ours.size());
}

// The tiled golden crosses tiles, and in vae_flux_like its last tile column
// is narrower than the blend extent (diffusers clips the extent): docs/vae.md.
TEST(VaeGoldenInventory, TiledInputsSpanSeveralTiles) {
  for (const char* c : {"vae_tiny", "vae_flux_like"}) {
    const VaeGolden& g = golden(c);
    const Shape z = g.shape("tiled_decode:in.z");
    EXPECT_TRUE(z[2] > g.tiles.tile_latent || z[3] > g.tiles.tile_latent) << c << " tiled input " << shape_str(z);
    EXPECT_EQ(g.tiles.tile_latent, g.config.tile_latent_min_size());
    EXPECT_EQ(g.tiles.tile_sample, g.config.tile_sample_min_size());
  }
}

// A golden's aliases (tensors stored once) resolve to tensors of the shape the
// aliased input must have: a block's input is the previous block's output.
TEST(VaeGoldenFormat, AliasesResolve) {
  const VaeGolden& g = golden("vae_tiny");
  EXPECT_FALSE(g.aliases.empty());
  for (const auto& [name, target] : g.aliases) EXPECT_TRUE(g.file->contains(target)) << name;
  EXPECT_EQ(g.stored("decoder.up_blocks.1:in.hidden_states"), g.stored("decoder.up_blocks.0"));
}

// Activations<T> records module outputs under diffusers' named_modules()
// paths: a whole decode and encode of vae_tiny (every submodule hooked in
// diffusers) record exactly the hooked paths, with diffusers' shapes (the
// attention's group_norm as [B, C, L], its Linears as [B, L, C]).
TEST(VaeActivations, RecordedPathsAndShapesAreDiffusers) {
  const VaeGolden& g = golden("vae_tiny");
  const VaeWeights<float> w = load_vae_weights<float>(g.config, *g.params);
  Activations<float> acts;
  vae_decode(g.config, w, g.get<float>("decode:in.z"), &acts);
  vae_encode(g.config, w, g.get<float>("encode:in.x"), &acts);
  const auto fired = nlohmann::json::parse(g.file->metadata().at("modules")).get<std::vector<std::string>>();
  for (const auto& m : fired) {
    auto it = acts.find(m);
    ASSERT_NE(it, acts.end()) << "no activation recorded for diffusers module " << m;
    EXPECT_EQ(it->second.shape, g.shape(m)) << m;
  }
  for (const auto& [name, t] : acts)
    EXPECT_NE(std::find(fired.begin(), fired.end(), name), fired.end()) << "recorded " << name << " is not a diffusers module";
  std::printf("  %zu recorded activations = the %zu modules diffusers' hooks saw\n", acts.size(), fired.size());
}

// The C++ VAE synthetic rule (vae/synthetic_vae.cpp) writes the same spec as
// the dumper's vae_rule, and the generator gives the weights diffusers saved:
// the shipped folders hold exactly the synthetic tensors, bit for bit.
TEST(VaeGoldenSynthetic, SpecAndWeightsMatchTheDumper) {
  for (const auto& c : kVaeGoldens) {
    const VaeGolden& g = golden(c);
    const nlohmann::json dumped = nlohmann::json::parse(g.file->metadata().at("synthetic_weights"));
    const uint64_t seed = dumped.at("seed").get<uint64_t>();
    const nlohmann::json ours = nlohmann::json::parse(vae_synthetic_spec(g.config, seed));
    int n = 0;
    for (const auto& [name, t] : dumped.at("tensors").items()) {
      ASSERT_TRUE(ours.at("tensors").contains(name)) << c << ": " << name << " is not a parameter of the config";
      EXPECT_EQ(ours.at("tensors").at(name), t) << c << ": " << name;
      ++n;
    }
    if (g.kind == "vae") {
      EXPECT_EQ(dumped.at("tensors").size(), ours.at("tensors").size()) << c;
      const auto synth = synthetic_param_source(vae_synthetic_spec(g.config, seed));
      for (const auto& [name, shape] : g.params->shapes()) {
        const Tensor<double> a = g.params->load(name), b = synth->load(name);
        ASSERT_EQ(a.data, b.data) << c << ": shipped " << name << " differs from the generator";
      }
    }
    std::printf("  %s: %d synthetic specs agree%s\n", c.c_str(), n, g.kind == "vae" ? ", shipped weights bitwise equal" : "");
  }
}

}  // namespace
}  // namespace zimage

// The DiT-side knobs against diffusers / torch goldens (tools/golden/dump_knobs.py,
// docs/experiments.md):
//  - --skip-context-refiner against diffusers with transformer.context_refiner =
//    nn.ModuleList([]) (golden/skip_context_refiner, tiny_single's model), T2;
//    the same gate fails on the normal forward (the knob is what makes it pass);
//  - interpolate and pool against torch's F.interpolate(linear, align_corners=False)
//    and adaptive_avg_pool1d, attention_pool against the definition written in torch;
//  - zimage generate with the knobs: defaults and no-op settings give the same PNG,
//    the knobs change it; bad values are one line, exit 2, before any file is read.
// (--rope-scaling extrapolate against diffusers' longer table: RopeExtend.* in
// test_rope_goldens.cpp runs through RopeScaling::Extrapolate.)
#include <filesystem>

#include "io/png.h"
#include "pipeline/generate.h"
#include "pipeline/pipeline_files.h"
#include "io/safetensors.h"
#include "dit/dit_knobs.h"
#include "dit/transformer.h"
#include "support/expect_errors.h"
#include "support/cli_runner.h"
#include "support/goldens.h"
#include "support/test_support.h"
#include "validation/golden_file.h"
#include "dit/model_folder.h"
#include "dit/module_table.h"

namespace zimage {
namespace {

namespace fs = std::filesystem;
using testing::run_zimage;

const GoldenFile& skip_golden() {
  static const GoldenFile g = open_golden(testing::golden_path("skip_context_refiner"));
  return g;
}

template <class T>
DitInputs<T> golden_inputs(const GoldenFile& g) {
  DitInputs<T> in;
  in.x.push_back(g.get<T>("x.0"));
  in.cap_feats.push_back(g.get<T>("cap_feats.0"));
  in.t = g.get<T>("t");
  return in;
}

// 10x10 latent, patch 2: 25 image tokens padded to 32; caption 7 padded to 32.
constexpr int64_t kSeq = 64;

template <class T>
void skip_matches_diffusers() {
  const GoldenFile& g = skip_golden();
  const ZImageWeights<T> w = load_weights<T>(g.config, *g.params);
  ForwardOptions o;
  o.skip_context_refiner = true;
  const auto out = zimage_forward<T>(w, golden_inputs<T>(g), nullptr, o);
  testing::expect_within("sample.0 (skip_context_refiner)", numerics::compare(out[0], g.get<double>("sample.0")),
                         dit_module_budget(numerics::Tier::T2, "sample.0", g.config, kSeq));
}
TEST(SkipContextRefinerGolden, MatchesDiffusersWithRefinerEmptied_float) { skip_matches_diffusers<float>(); }
TEST(SkipContextRefinerGolden, MatchesDiffusersWithRefinerEmptied_double) { skip_matches_diffusers<double>(); }

// The gate can fail: the normal forward against the skip golden is far outside it, and
// passes against the golden's own normal forward.
TEST(SkipContextRefinerGolden, GateFailsWithoutTheKnob) {
  const GoldenFile& g = skip_golden();
  const ZImageWeights<double> w = load_weights<double>(g.config, *g.params);
  const auto normal = zimage_forward<double>(w, golden_inputs<double>(g));
  const numerics::Budget b = dit_module_budget(numerics::Tier::T2, "sample.0", g.config, kSeq);
  const numerics::Comparison wrong = numerics::compare(normal[0], g.get<double>("sample.0"));
  std::printf("  normal forward vs the skip golden: %s\n", numerics::describe(wrong, b).c_str());
  EXPECT_FALSE(numerics::passes(wrong, b));
  testing::expect_within("normal forward vs sample_with_refiner.0",
                         numerics::compare(normal[0], g.get<double>("sample_with_refiner.0")), b);
}

// The streamed forward skips the same blocks (bitwise the in-memory one).
TEST(SkipContextRefinerGolden, StreamedIsBitwiseInMemory) {
  const GoldenFile& g = skip_golden();
  ForwardOptions o;
  o.skip_context_refiner = true;
  const auto in = golden_inputs<float>(g);
  const auto a = zimage_forward<float>(load_weights<float>(g.config, *g.params), in, nullptr, o);
  const auto b = zimage_forward_streaming<float>(g.config, *g.params, in, nullptr, o);
  testing::expect_exact("streamed vs in memory", numerics::compare(b[0], a[0]));
}

// ---- long prompts against torch ----

struct LongCase {
  int64_t L, N;
};
void PrintTo(const LongCase& c, std::ostream* os) { *os << c.L << " -> " << c.N; }

std::vector<LongCase> long_cases() {
  const auto f = SafetensorsFile::open(testing::golden_path("long_prompt"));
  std::vector<LongCase> out;
  for (const auto& s : nlohmann::json::parse(f->metadata().at("sizes"))) out.push_back({s[0].get<int64_t>(), s[1].get<int64_t>()});
  return out;
}

class LongPromptGolden : public ::testing::TestWithParam<LongCase> {};

// One output element of each mode is a short fp32 sum in torch (interpolate: 2 products and a
// sum; pool / attention_pool: a mean over at most ceil(L/N) + 1 rows); ours is fp64 rounded once.
// torch also computes interpolate's source index in fp32 (the scale L/N, times j + 0.5, minus
// 0.5: 3 roundings of a number up to L, which move the weight a by about 3 u src): 3 more
// roundings in the lerp's n_r.
TEST_P(LongPromptGolden, MatchesTorch) {
  const auto [L, N] = GetParam();
  const auto f = SafetensorsFile::open(testing::golden_path("long_prompt"));
  const std::string k = std::to_string(L) + "_" + std::to_string(N);
  const Tensor<float> e = f->get<float>("embeds." + k);
  const int64_t group = (L + N - 1) / N + 1;
  const struct {
    LongPromptMode mode;
    const char* name;
    numerics::Op op;
  } modes[] = {{LongPromptMode::Interpolate, "interpolate", {"lerp with an fp32 source index", 5, 2}},
               {LongPromptMode::Pool, "pool", {"mean", 2, double(group)}},
               {LongPromptMode::AttentionPool, "attention_pool", {"weighted mean", 2, double(group)}}};
  for (const auto& m : modes) {
    const Tensor<float> got = fit_long_prompt(e, m.mode, N);
    const Tensor<float> want = f->get<float>(std::string(m.name) + "." + k);
    testing::expect_within(std::string(m.name) + " " + k, numerics::compare(got, want),
                           numerics::budget_for(numerics::Tier::T2, {m.op}));
  }
  // The gate can fail: pool is not interpolate (they agree by construction only at L = 2N).
  if (L != 2 * N) {
    const numerics::Comparison c =
        numerics::compare(fit_long_prompt(e, LongPromptMode::Pool, N), f->get<float>("interpolate." + k));
    EXPECT_FALSE(numerics::passes(c, numerics::budget_for(numerics::Tier::T2, {{"lerp with an fp32 source index", 5, 2}})))
        << "pool passes the interpolate gate at " << k;
  }
}
INSTANTIATE_TEST_SUITE_P(Torch, LongPromptGolden, ::testing::ValuesIn(long_cases()), [](const auto& info) {
  return "L" + std::to_string(info.param.L) + "_N" + std::to_string(info.param.N);
});

// ---- zimage generate with the knobs (golden/models/pipeline_tiny, the pipeline_turbo prompt: 9 tokens) ----

const std::string kPipeline = std::string(ZIMAGE_GOLDEN_DIR) + "/models/pipeline_tiny";
std::string turbo_args() {
  return "generate --model " + kPipeline + " --prompt-embeds " + testing::golden_path("pipeline_turbo") +
         " --height 64 --width 96 --steps 2 --seed 42";
}

class CliGenerateKnobs : public ::testing::Test {
 protected:
  fs::path dir = testing::scratch_dir("gen_knobs");
  void TearDown() override { fs::remove_all(dir); }
  Tensor<float> image(const std::string& tag, const std::string& knobs) {
    const fs::path png = dir / (tag + ".png");
    const auto r = run_zimage(turbo_args() + " " + knobs + " --out " + png.string());
    EXPECT_EQ(r.status, 0) << knobs << ": " << r.err;
    if (r.status != 0) return {};
    const Image8 im = read_png(png.string());
    return Tensor<float>({im.height, im.width, im.channels}, std::vector<float>(im.pixels.begin(), im.pixels.end()));
  }
};

TEST_F(CliGenerateKnobs, NoOpSettingsGiveTheDefaultImageAndKnobsChangeIt) {
  const Tensor<float> base = image("base", "");
  ASSERT_GT(base.numel(), 0);
  // Within the limit / at or above the length, every knob but the refiner changes nothing.
  for (const std::string k : {"--rope-scaling linear", "--rope-scaling ntk", "--rope-extend", "--long-prompt-mode pool",
                              "--long-prompt-mode interpolate --long-prompt-target 9"}) {
    const Tensor<float> img = image("noop", k);
    testing::expect_exact(k, numerics::compare(img, base));
  }
  for (const std::string k : {"--skip-context-refiner", "--long-prompt-mode pool --long-prompt-target 4",
                              "--long-prompt-mode truncate --long-prompt-target 8"}) {
    const Tensor<float> img = image("knob", k);
    ASSERT_EQ(img.shape, base.shape) << k;
    const numerics::Comparison c = numerics::compare(img, base);
    std::printf("  %s: %lld of %lld values differ from the default image\n", k.c_str(), (long long)c.mismatches,
                (long long)c.n);
    EXPECT_GT(c.mismatches, 0) << k << " changed nothing";
  }
}

// ---- generate() with the knobs: the embeddings the model sees, a model that cannot run them ----

// A DitModel that records the caption lengths it gets and, like the CUDA model, does not
// override set_forward_options (so it refuses anything but the default forward).
struct RecordingDit final : DitModel<float> {
  std::unique_ptr<DitModel<float>> inner;
  std::vector<int64_t>* caption_lens = nullptr;  // outlives the model (generate() frees it)
  const ZImageConfig& config() const override { return inner->config(); }
  std::string weights() const override { return "recording"; }
  std::vector<Tensor<float>> forward(const DitInputs<float>& in, Activations<float>* a) const override {
    if (caption_lens)
      for (const auto& c : in.cap_feats) caption_lens->push_back(c.dim(0));
    return inner->forward(in, a);
  }
};

GenerateRequest cfg_request_one_step() {  // golden/pipeline_cfg: prompts of 5 and 12 tokens, negatives of 3 and 7
  const std::string g = testing::golden_path("pipeline_cfg");
  GenerateRequest r;
  r.opt.height = 48;
  r.opt.width = 64;
  r.opt.steps = 1;
  r.opt.cfg.guidance_scale = 4;
  r.prompt_embeds = read_prompt_embeds(g, false);
  r.negative_prompt_embeds = read_prompt_embeds(g, true);
  return r;
}

TEST(GenerateKnobs, LongPromptModeResamplesEveryEmbeddingBeforeTheModel) {
  const PipelineFolder pipe = open_pipeline_folder(kPipeline);
  std::vector<int64_t> lens;
  GenerateHooks<float> hooks;
  hooks.open_dit = [&](const ModelFolder& f, DitWeights how) -> std::unique_ptr<DitModel<float>> {
    auto m = std::make_unique<RecordingDit>();
    m->inner = open_dit_model<float>(f, how);
    m->caption_lens = &lens;
    return m;
  };
  GenerateRequest r = cfg_request_one_step();
  r.opt.long_prompt = {LongPromptMode::Pool, 6};
  const Generated<float> g = generate<float>(pipe, r, hooks);
  EXPECT_EQ(lens, (std::vector<int64_t>{5, 6, 3, 6}));  // positives, then negatives: min(L, 6)
  EXPECT_EQ(g.images.size(), 2u);
}

TEST(GenerateKnobs, AModelThatCannotRunAKnobRefusesIt) {
  const PipelineFolder pipe = open_pipeline_folder(kPipeline);
  GenerateHooks<float> hooks;
  hooks.open_dit = [&](const ModelFolder& f, DitWeights how) -> std::unique_ptr<DitModel<float>> {
    auto m = std::make_unique<RecordingDit>();
    m->inner = open_dit_model<float>(f, how);
    return m;
  };
  GenerateRequest r = cfg_request_one_step();
  r.opt.dit.skip_context_refiner = true;
  EXPECT_THROW_MSG_HAS(generate<float>(pipe, r, hooks), "--skip-context-refiner");
  r.opt.dit = {};
  EXPECT_EQ(generate<float>(pipe, r, hooks).images.size(), 2u);  // the default forward runs
}

TEST(GenerateKnobs, BadTargetRefusedBeforeAnyModelOpens) {
  const PipelineFolder pipe = open_pipeline_folder(kPipeline);
  bool opened = false;
  GenerateHooks<float> hooks;
  hooks.open_dit = [&](const ModelFolder& f, DitWeights how) {
    opened = true;
    return open_dit_model<float>(f, how);
  };
  GenerateRequest r = cfg_request_one_step();
  r.opt.long_prompt = {LongPromptMode::Truncate, -1};
  EXPECT_THROW_MSG_HAS(generate<float>(pipe, r, hooks), "--long-prompt-target");
  EXPECT_FALSE(opened);
}

// ---- zimage dit with the knobs (golden/models/tiny_single: longest caption 32) ----

class CliDitKnobs : public ::testing::Test {
 protected:
  fs::path dir = testing::scratch_dir("dit_knobs");
  const std::string model = std::string(ZIMAGE_GOLDEN_DIR) + "/models/tiny_single";
  void TearDown() override { fs::remove_all(dir); }
  Tensor<float> run_dit(const std::string& inputs, const std::string& knobs, int want_status = 0) {
    const fs::path out = dir / "out.safetensors";
    const auto r = run_zimage("dit --model " + model + " --inputs " + inputs + " --output " + out.string() + " " + knobs);
    EXPECT_EQ(r.status, want_status) << knobs << ": " << r.err;
    if (r.status != 0) return {};
    return SafetensorsFile::open(out.string())->get<float>("sample.0");
  }
  // x.0 of the skip golden with a caption of `n` tokens.
  std::string long_inputs(int64_t n, DitInputs<float>* in) {
    const GoldenFile& g = skip_golden();
    *in = golden_inputs<float>(g);
    in->cap_feats[0] = testing::randn<float>({n, g.config.cap_feat_dim}, 23);
    SafetensorsWriter w;
    w.add("x.0", in->x[0], DType::F32);
    w.add("cap_feats.0", in->cap_feats[0], DType::F32);
    w.add("t", in->t, DType::F32);
    const std::string p = (dir / "in.safetensors").string();
    w.write(p);
    return p;
  }
};

TEST_F(CliDitKnobs, SkipContextRefinerMatchesTheGolden) {
  const GoldenFile& g = skip_golden();
  const Tensor<float> out = run_dit(testing::golden_path("skip_context_refiner"), "--skip-context-refiner");
  ASSERT_GT(out.numel(), 0);
  testing::expect_within("zimage dit --skip-context-refiner", numerics::compare(out, g.get<double>("sample.0")),
                         dit_module_budget(numerics::Tier::T2, "sample.0", g.config, kSeq));
}

// A 40-token caption (pads to 64 > 32): refused without a knob; each knob runs what the library runs.
TEST_F(CliDitKnobs, LongCaptionKnobsRunWhatTheLibraryRuns) {
  DitInputs<float> in;
  const std::string inputs = long_inputs(40, &in);
  run_dit(inputs, "", 2);
  const GoldenFile& g = skip_golden();
  const ZImageWeights<float> w = load_weights<float>(g.config, *g.params);
  for (const std::string mode : {"truncate", "interpolate", "pool", "attention_pool"}) {
    DitInputs<float> fitted = in;
    fitted.cap_feats[0] = fit_long_prompt(in.cap_feats[0], parse_long_prompt_mode(mode), 32);
    testing::expect_exact("--long-prompt-mode " + mode, numerics::compare(run_dit(inputs, "--long-prompt-mode " + mode),
                                                                           zimage_forward<float>(w, fitted)[0]));
  }
  for (const std::string s : {"extrapolate", "linear", "ntk"}) {
    ForwardOptions o;
    o.rope_scaling = parse_rope_scaling(s);
    testing::expect_exact("--rope-scaling " + s, numerics::compare(run_dit(inputs, "--rope-scaling " + s),
                                                                    zimage_forward<float>(w, in, nullptr, o)[0]));
  }
}

// ---- bad values: one line naming the flag, exit 2, before any file is read ----

class CliKnobsBadInput : public ::testing::TestWithParam<std::tuple<std::string, std::string, std::string>> {};

TEST_P(CliKnobsBadInput, OneLineExit2BeforeAnyFile) {
  const auto& [cmd, flags, must_name] = GetParam();
  const fs::path dir = testing::scratch_dir("knobs_bad");
  const std::string missing = (dir / "no_such_model").string();  // a file read would name this instead
  const std::string args = cmd == "generate"
                               ? "generate --model " + missing + " --prompt-embeds " + missing + " --out " + (dir / "o.png").string()
                               : "dit --model " + missing + " --inputs " + missing + " --output " + (dir / "o.safetensors").string();
  const auto r = run_zimage(args + " " + flags);
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "not one line: " << r.err;
  EXPECT_NE(r.err.find(must_name), std::string::npos) << "error does not name '" << must_name << "': " << r.err;
  EXPECT_EQ(r.err.find("no_such_model"), std::string::npos) << "a file was read first: " << r.err;
  EXPECT_FALSE(fs::exists(dir / "o.png"));
  fs::remove_all(dir);
}

std::vector<std::tuple<std::string, std::string, std::string>> bad_knobs() {
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"--long-prompt-mode average", "--long-prompt-mode must be truncate, interpolate, pool or attention_pool"},
      {"--long-prompt-mode pool --long-prompt-target 0", "--long-prompt-target must be a positive"},
      {"--long-prompt-mode pool --long-prompt-target -5", "--long-prompt-target must be a positive"},
      {"--long-prompt-mode pool --long-prompt-target ten", "--long-prompt-target must be an integer"},
      {"--long-prompt-mode pool --long-prompt-target 1.5", "--long-prompt-target must be an integer"},
      {"--long-prompt-target 100", "--long-prompt-target needs --long-prompt-mode"},
      {"--rope-scaling yarn", "--rope-scaling must be extrapolate, linear or ntk"},
      {"--rope-scaling 2", "--rope-scaling must be extrapolate, linear or ntk"},
      {"--rope-extend --rope-scaling ntk", "--rope-extend is --rope-scaling extrapolate"},
      {"--rope-scaling linear --device cuda", "CPU reference only"},
      {"--rope-scaling ntk --device cuda", "CPU reference only"},
  };
  std::vector<std::tuple<std::string, std::string, std::string>> out;
  for (const char* cmd : {"generate", "dit"})
    for (const auto& [f, m] : rows) out.emplace_back(cmd, f, m);
  return out;
}
INSTANTIATE_TEST_SUITE_P(Knobs, CliKnobsBadInput, ::testing::ValuesIn(bad_knobs()), [](const auto& info) {
  return std::get<0>(info.param) + "_" + testing::test_name(std::get<1>(info.param));
});

}  // namespace
}  // namespace zimage

// The text-encoder backend hook (PromptEncoder::set_hidden_states_backend, encode_prompts'
// backend, GenerateHooks::text_encoder) that the CUDA text encoder plugs into: a backend's hidden
// states are what the embeddings come from; a backend that is the CPU encoder itself gives the
// default path bit for bit; generate() makes the backend once for the prompts and the negatives;
// float64 refuses a backend. On the tiny pipeline with the tiny text encoder (golden/text_encoder).
// Also the trailing padding columns (PromptEncoder::encode does not run the columns that are
// padding in every item): which columns go, and that the real tokens' embeddings are those of the
// whole max_sequence_length run.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "pipeline/generate.h"
#include "text_encoder/prompt_encoder.h"
#include "support/cli_runner.h"
#include "support/test_support.h"

namespace zimage {
namespace {

namespace fs = std::filesystem;

// A backend that runs the CPU encoder (as the CUDA one runs CudaQwen3), scaled by `factor`,
// counting how often it is made and called.
struct CountingBackend {
  int made = 0, calls = 0;
  float factor = 1.f;
  TextEncoderBackend factory() {
    return [this](const Qwen3TextEncoder& te, const std::vector<int>&) -> PromptEncoder::HiddenStatesFn {
      ++made;
      // A copy of the encoder (its config and a shared weight source): the backend outlives the
      // PromptEncoder it was made from (generate() reuses it for the negatives).
      return [this, te](const Tensor<int32_t>& ids, const Tensor<int32_t>& mask, const std::vector<int>& ks) {
        ++calls;
        std::vector<Tensor<float>> hs = te.hidden_states<float>(ids, mask, ks);
        for (auto& h : hs)
          for (auto& v : h.data) v *= factor;
        return hs;
      };
    };
  }
};

PromptOptions mix_options() {
  PromptOptions o;
  o.hidden_layers = {-2, -1};  // two hidden states through the backend, and the mix after it
  o.hidden_layer_weights = {0.75, 0.25};
  return o;
}

TEST(TextEncoderBackend, CpuBackendIsBitwiseTheDefaultAndItsOutputIsUsed) {
  const fs::path d = testing::tiny_text_pipeline("te_backend");
  const std::vector<std::string> prompts = {"a red fox", "a cat in the snow"};
  for (const PromptOptions& opt : {PromptOptions{}, mix_options()}) {
    const EncodedPrompts ref = encode_prompts<float>(d.string(), prompts, opt, false);
    CountingBackend same;
    const EncodedPrompts got = encode_prompts<float>(d.string(), prompts, opt, false, {}, same.factory());
    EXPECT_EQ(same.made, 1);
    EXPECT_EQ(same.calls, 1);
    ASSERT_EQ(got.embeds.size(), ref.embeds.size());
    for (size_t i = 0; i < ref.embeds.size(); ++i) {
      ASSERT_EQ(got.embeds[i].shape, ref.embeds[i].shape);
      EXPECT_TRUE(got.embeds[i].data == ref.embeds[i].data) << "prompt " << i << ": a CPU backend must be bitwise the default";
    }
    // A backend whose hidden states are doubled doubles the embeddings (exact in binary floating point):
    // encode takes its values, and the mask drop and the mix still apply after it.
    CountingBackend twice;
    twice.factor = 2.f;
    const EncodedPrompts two = encode_prompts<float>(d.string(), prompts, opt, false, {}, twice.factory());
    for (size_t i = 0; i < ref.embeds.size(); ++i) {
      ASSERT_EQ(two.embeds[i].shape, ref.embeds[i].shape);
      int64_t off = 0;
      for (int64_t j = 0; j < ref.embeds[i].numel(); ++j) off += two.embeds[i][j] != 2.f * ref.embeds[i][j];
      EXPECT_EQ(off, 0) << "prompt " << i;
    }
  }
}

Tensor<int32_t> mask_of(int64_t B, int64_t L, const std::vector<int32_t>& v) { return Tensor<int32_t>({B, L}, v); }

TEST(TrailingPadColumns, CountsTheColumnsThatArePaddingInEveryItem) {
  EXPECT_EQ(trailing_pad_columns(mask_of(2, 6, {1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0})), 3);  // right padding
  EXPECT_EQ(trailing_pad_columns(mask_of(2, 4, {0, 0, 1, 1, 0, 1, 1, 1})), 0);              // left padding
  EXPECT_EQ(trailing_pad_columns(mask_of(1, 4, {1, 1, 1, 1})), 0);                          // no padding
  EXPECT_EQ(trailing_pad_columns(mask_of(1, 5, {1, 0, 1, 0, 0})), 2);                       // a hole is kept
  EXPECT_EQ(trailing_pad_columns(mask_of(2, 3, {0, 0, 0, 0, 0, 0})), 2);                    // all padding: one column stays
  EXPECT_EQ(trailing_pad_columns(mask_of(1, 0, {})), 0);
  EXPECT_THROW(trailing_pad_columns(Tensor<int32_t>({4}, std::vector<int32_t>{1, 1, 0, 0})), Error);

  TokenizedBatch tb;
  tb.input_ids = Tensor<int32_t>({2, 4}, std::vector<int32_t>{10, 11, 12, 0, 20, 21, 0, 0});
  tb.attention_mask = mask_of(2, 4, {1, 1, 1, 0, 1, 1, 0, 0});
  tb.dropped = {0, 5};
  const TokenizedBatch cut = drop_last_columns(tb, trailing_pad_columns(tb.attention_mask));
  EXPECT_EQ(cut.input_ids.shape, (Shape{2, 3}));
  EXPECT_EQ(cut.input_ids.data, (std::vector<int32_t>{10, 11, 12, 20, 21, 0}));
  EXPECT_EQ(cut.attention_mask.data, (std::vector<int32_t>{1, 1, 1, 1, 1, 0}));
  EXPECT_EQ(cut.dropped, tb.dropped);
  EXPECT_EQ(drop_last_columns(tb, 0).input_ids.data, tb.input_ids.data);
  EXPECT_THROW(drop_last_columns(tb, 5), Error);
}

// The embeddings with the trailing padding columns left out are those of the whole
// max_sequence_length run (what diffusers computes; encode runs every column when it records
// activations): in float64 within 1e-12 of the largest value (the real tokens read nothing of
// those columns; only summation order may differ), and the text encoder is handed the real
// columns only with right padding, every column with left padding.
TEST(TrailingPadColumns, TheRealTokensEmbeddingsAreTheWholeRunsAndOnlyRealColumnsRun) {
  const fs::path d = testing::tiny_text_pipeline("te_trailing");
  const PromptEncoder enc = PromptEncoder::open_pipeline(d.string());
  const std::vector<std::string> prompts = {"a red fox", "a cat in the snow under a tree"};
  for (const char* side : {"right", "left"}) {
    EncodeOptions opt;
    opt.max_sequence_length = 96;
    opt.padding_side = side;
    const std::vector<Tensor<double>> cut = enc.encode<double>(prompts, opt);
    Activations<double> acts;
    const std::vector<Tensor<double>> whole = enc.encode<double>(prompts, opt, {}, &acts);
    ASSERT_EQ(cut.size(), whole.size());
    double worst = 0;
    for (size_t i = 0; i < cut.size(); ++i) {
      ASSERT_EQ(cut[i].shape, whole[i].shape) << side << " prompt " << i;
      double big = 0, diff = 0;
      for (int64_t j = 0; j < whole[i].numel(); ++j) {
        big = std::max(big, std::abs(whole[i][j]));
        diff = std::max(diff, std::abs(cut[i][j] - whole[i][j]));
      }
      worst = std::max(worst, diff / big);
    }
    std::printf("  %s padding: max |cut - whole| / max |whole| = %.3g (bound 1e-12: %.2g %% of it)\n", side, worst,
                100 * worst / 1e-12);
    EXPECT_LE(worst, 1e-12) << side;

    // The columns the text encoder is handed.
    PromptEncoder counted = enc;
    int64_t columns = -1;
    counted.set_hidden_states_backend([&](const Tensor<int32_t>& ids, const Tensor<int32_t>& mask,
                                          const std::vector<int>& ks) {
      columns = ids.dim(1);
      (void)mask, (void)ks;
      return std::vector<Tensor<float>>{Tensor<float>({ids.dim(0), ids.dim(1), whole[0].dim(1)})};
    });
    (void)counted.encode<float>(prompts, opt);
    const int64_t longest = std::max(whole[0].dim(0), whole[1].dim(0));
    EXPECT_EQ(columns, std::string(side) == "right" ? longest : opt.max_sequence_length) << side;
    std::printf("  %s padding: %lld of %d columns run (longest prompt %lld tokens)\n", side, (long long)columns,
                opt.max_sequence_length, (long long)longest);
  }
}

TEST(TextEncoderBackend, Float64RefusesABackend) {
  const fs::path d = testing::tiny_text_pipeline("te_backend");
  CountingBackend b;
  try {
    (void)encode_prompts<double>(d.string(), {"a fox"}, PromptOptions{}, false, {}, b.factory());
    ADD_FAILURE() << "encode_prompts<double> with a backend must refuse";
  } catch (const Error& e) {
    std::printf("  %s\n", e.what());
    EXPECT_NE(std::string(e.what()).find("float32 only"), std::string::npos) << e.what();
  }
}

// One prompt at 32x32, one step, under CFG (guidance 3).
GenerateRequest cfg_request(uint64_t seed) {
  GenerateRequest r;
  r.opt.height = 32;
  r.opt.width = 32;
  r.opt.steps = 1;
  r.opt.cfg.guidance_scale = 3;
  r.seed = seed;
  r.prompts = {"a red fox"};
  return r;
}

// Under CFG generate() encodes the prompts and the negatives with one backend, made once; the
// images equal the default run's bit for bit.
TEST(TextEncoderBackend, GenerateMakesTheBackendOnceForPromptsAndNegatives) {
  const fs::path d = testing::tiny_text_pipeline("te_backend");
  const PipelineFolder pipe = open_pipeline_folder(d.string());
  GenerateRequest req = cfg_request(4);
  req.negative_prompts = {"blurry"};
  const Generated<float> ref = generate<float>(pipe, req);
  CountingBackend b;
  GenerateHooks<float> hooks;
  hooks.text_encoder = b.factory();
  const Generated<float> got = generate<float>(pipe, req, hooks);
  EXPECT_EQ(b.made, 1) << "one backend for the prompts and the negatives";
  EXPECT_EQ(b.calls, 2);
  ASSERT_EQ(got.images.size(), ref.images.size());
  for (size_t i = 0; i < ref.images.size(); ++i) EXPECT_TRUE(got.images[i].pixels == ref.images[i].pixels) << i;
}

// A pipeline whose encoder is held in memory (PipelineFolder::prompt_encoder, as synthetic_pipeline
// makes it) gives the folder's images bit for bit, and the encoder keeps no copy of the backend once
// generate() returns: what the backend holds (the GPU text encoder's memory) is released before the
// transformer loads and stays released. Checked with a token only the backend holds.
TEST(TextEncoderBackend, EncoderInMemoryIsTheFoldersAndKeepsNoBackend) {
  const fs::path d = testing::tiny_text_pipeline("te_backend");
  const PipelineFolder pipe = open_pipeline_folder(d.string());
  PipelineFolder held = pipe;
  held.prompt_encoder = std::make_shared<PromptEncoder>(PromptEncoder::open_pipeline(d.string()));
  const GenerateRequest req = cfg_request(5);  // the negative is "" (two encodings)
  const Generated<float> ref = generate<float>(pipe, req);
  std::weak_ptr<int> alive;
  CountingBackend b;
  GenerateHooks<float> hooks;
  hooks.text_encoder = [&](const Qwen3TextEncoder& te, const std::vector<int>& ks) {
    auto token = std::make_shared<int>(1);
    alive = token;
    auto fn = b.factory()(te, ks);
    return PromptEncoder::HiddenStatesFn([token, fn](const Tensor<int32_t>& ids, const Tensor<int32_t>& mask,
                                                     const std::vector<int>& k) { return fn(ids, mask, k); });
  };
  bool released_before_load = false;
  hooks.on_stage = [&](const std::string& stage, const std::string&) {
    if (stage == "load") released_before_load = alive.expired();
  };
  const Generated<float> got = generate<float>(held, req, hooks);
  EXPECT_EQ(b.made, 1);
  EXPECT_EQ(b.calls, 2) << "the prompt and the empty negative";
  EXPECT_TRUE(released_before_load) << "the in-memory encoder still held the backend when the transformer loaded";
  EXPECT_TRUE(alive.expired()) << "the in-memory encoder still holds the backend after generate()";
  ASSERT_EQ(got.images.size(), ref.images.size());
  for (size_t i = 0; i < ref.images.size(); ++i) EXPECT_TRUE(got.images[i].pixels == ref.images[i].pixels) << i;
  EXPECT_TRUE(got.latents.data == ref.latents.data);
}

// zimage encode --device: refused before any file is read (the --model folder does not exist).
TEST(CliEncodeDevice, RefusedBeforeAnyFileIsRead) {
  const fs::path d = testing::scratch_dir("te_backend_cli");
  const std::string out = (d / "e.safetensors").string();
  const std::string base = "encode --model " + (d / "absent").string() + " --prompt cat --out " + out;
  auto expect = [&](const std::string& extra, const std::string& needle) {
    const testing::CliResult r = testing::run_zimage(base + extra);
    std::printf("  %s -> %d: %s", extra.c_str(), r.status, r.err.c_str());
    EXPECT_EQ(r.status, 2);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out));
  };
  expect(" --device tpu", "--device must be cpu or cuda, not 'tpu'");
  expect(" --dtype bfloat16", "--dtype must be float32 or float64 with --device cpu");
#ifdef ZIMAGE_CLI_HAS_CUDA
  expect(" --device cuda --dtype float64", "--dtype must be float32 or bfloat16 with --device cuda");
  const testing::CliResult r = testing::run_zimage(base + " --device cuda");
  std::printf("  --device cuda -> %d: %s", r.status, r.err.c_str());
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(r.err.find("--device cuda: no CUDA device") != std::string::npos || r.err.find("absent") != std::string::npos)
      << r.err;
#else
  expect(" --device cuda", "--device cuda: this zimage was built without the CUDA path");
#endif
}

}  // namespace
}  // namespace zimage

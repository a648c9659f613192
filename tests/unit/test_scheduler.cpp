// Scheduler, CFG and generator facts derived by hand from the diffusers / torch
// source (no data files): config loading and its errors, the shift formula,
// n = 1, the Euler step, the model timestep, CFG scale rules and batch order,
// the vector norm, and properties of torch's generator.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "pipeline/cfg.h"
#include "pipeline/scheduler.h"
#include "pipeline/torch_generator.h"

namespace zimage {
namespace {

// Runs f and returns its zimage::Error message ("" if it did not throw one).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

FlowMatchSchedulerConfig parse(const std::string& text) { return scheduler_config_from_json_text(text, "sched.json"); }

// ------------------------------------------------------------------ config

TEST(SchedulerConfig, SavePretrainedFileLoads) {
  // What FlowMatchEulerDiscreteScheduler(shift=3.0).save_pretrained writes (diffusers 0.40).
  const auto c = parse(R"({"_class_name": "FlowMatchEulerDiscreteScheduler", "_diffusers_version": "0.40.0.dev0",
    "base_image_seq_len": 256, "base_shift": 0.5, "invert_sigmas": false, "max_image_seq_len": 4096,
    "max_shift": 1.15, "num_train_timesteps": 1000, "shift": 3.0, "shift_terminal": null,
    "stochastic_sampling": false, "time_shift_type": "exponential", "use_beta_sigmas": false,
    "use_dynamic_shifting": false, "use_exponential_sigmas": false, "use_karras_sigmas": false})");
  EXPECT_EQ(c.shift, 3.0);
  EXPECT_EQ(c.num_train_timesteps, 1000);
  EXPECT_FALSE(c.use_dynamic_shifting);
  EXPECT_EQ(c.time_shift_type, "exponential");
}

TEST(SchedulerConfig, MissingKeysTakeDiffusersDefaults) {
  const auto c = parse(R"({"shift": 3})");
  EXPECT_EQ(c.shift, 3.0);
  EXPECT_EQ(c.num_train_timesteps, 1000);
  EXPECT_EQ(c.base_shift, 0.5);
  EXPECT_EQ(c.max_shift, 1.15);
  EXPECT_EQ(c.base_image_seq_len, 256);
  EXPECT_EQ(c.max_image_seq_len, 4096);
  EXPECT_EQ(parse("{}").shift, 1.0);
}

TEST(SchedulerConfig, UnsupportedFeaturesAreRefusedByName) {
  for (const char* key : {"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "invert_sigmas",
                          "stochastic_sampling"}) {
    const std::string msg = error_of([&] { parse(std::string("{\"") + key + "\": true}"); });
    EXPECT_NE(msg.find(key), std::string::npos) << msg;
    EXPECT_NE(msg.find("sched.json"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
    EXPECT_NO_THROW(parse(std::string("{\"") + key + "\": false}"));
  }
  EXPECT_NE(error_of([] { parse(R"({"shift_terminal": 0.02})"); }).find("shift_terminal"), std::string::npos);
  EXPECT_NO_THROW(parse(R"({"shift_terminal": null})"));
  EXPECT_NO_THROW(parse(R"({"shift_terminal": 0})"));  // diffusers: `if self.config.shift_terminal:`
}

TEST(SchedulerConfig, BadValuesNameTheKey) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"shift": "3"})", "shift"},
      {R"({"shift": -1})", "shift"},
      {R"({"shift": 0})", "shift"},
      {R"({"num_train_timesteps": 0})", "num_train_timesteps"},
      {R"({"num_train_timesteps": 1.5})", "num_train_timesteps"},
      {R"({"num_train_timesteps": 99999999999})", "num_train_timesteps"},
      {R"({"use_dynamic_shifting": 1})", "use_dynamic_shifting"},
      {R"({"time_shift_type": "cosine"})", "time_shift_type"},
      {R"({"time_shift_type": 3})", "time_shift_type"},
      {R"({"base_shift": null})", "base_shift"},
      {R"({"max_shift": [1]})", "max_shift"},
      {R"({"base_image_seq_len": 4096})", "max_image_seq_len"},
      {R"({"frobnicate": 1})", "frobnicate"},
      {R"({"_class_name": "EulerDiscreteScheduler"})", "_class_name"},
  };
  for (const auto& [text, key] : cases) {
    const std::string& json = text;  // a lambda captures a variable, not a structured binding (clang 14)
    const std::string msg = error_of([&] { parse(json); });
    EXPECT_NE(msg.find(key), std::string::npos) << text << " -> '" << msg << "'";
    EXPECT_NE(msg.find("sched.json"), std::string::npos) << msg;
  }
}

TEST(SchedulerConfig, BadJsonAndMissingFileNameTheFile) {
  EXPECT_NE(error_of([] { parse("{\"shift\": "); }).find("sched.json: not valid JSON"), std::string::npos);
  EXPECT_NE(error_of([] { parse("[1, 2]"); }).find("JSON object"), std::string::npos);
  const std::string missing = "/nonexistent/dir/scheduler_config.json";
  EXPECT_NE(error_of([&] { load_scheduler_config(missing); }).find(missing), std::string::npos);
  const auto path = std::filesystem::temp_directory_path() / "zimage_test_scheduler_config.json";
  {
    std::ofstream(path) << R"({"shift": 3.0, "use_dynamic_shifting": false})";
  }
  EXPECT_EQ(load_scheduler_config(path.string()).shift, 3.0);
  {
    std::ofstream(path) << R"({"shift": 3.0, "use_karras_sigmas": true})";
  }
  const std::string msg = error_of([&] { load_scheduler_config(path.string()); });
  EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("use_karras_sigmas"), std::string::npos) << msg;
  std::filesystem::remove(path);
}

// ------------------------------------------------------------------ schedule facts

const FlowMatchSchedulerConfig kTurbo{.shift = 3.0};

TEST(SchedulerFacts, OneStepGivesSigmas1And0) {
  for (double shift : {1.0, 3.0, 5.0}) {
    const Schedule s = zimage_pipeline_schedule(FlowMatchSchedulerConfig{.shift = shift}, 1, 4096);
    EXPECT_EQ(s.sigmas, (std::vector<float>{1.0f, 0.0f})) << "shift " << shift;
    EXPECT_EQ(s.timesteps, (std::vector<float>{1000.0f}));
    EXPECT_EQ(zimage_model_timestep(s, 0), 0.0f);
  }
  EXPECT_EQ(default_zimage_sigmas(1), (std::vector<double>{1.0}));
}

TEST(SchedulerFacts, ShiftFormulaOnHandValues) {
  // n = 2: linspace(1, 1/2, 2) = [1, 0.5]; 3 * 0.5 / (1 + 2 * 0.5) = 0.75, all exact in float32.
  EXPECT_EQ(default_zimage_sigmas(2), (std::vector<double>{1.0, 0.5}));
  const Schedule s = zimage_pipeline_schedule(kTurbo, 2, 4096);
  EXPECT_EQ(s.sigmas, (std::vector<float>{1.0f, 0.75f, 0.0f}));
  EXPECT_EQ(s.timesteps, (std::vector<float>{1000.0f, 750.0f}));
  EXPECT_EQ(zimage_model_timestep(s, 1), 0.25f);
  // n = 4, sigma 0.25: 0.75 / 1.5 = 0.5.
  const Schedule s4 = zimage_pipeline_schedule(kTurbo, 4, 4096);
  EXPECT_EQ(s4.sigmas.back(), 0.0f);
  EXPECT_EQ(s4.sigmas[3], 0.5f);
  ASSERT_EQ(s4.sigmas.size(), 5u);
  ASSERT_EQ(s4.timesteps.size(), 4u);
  // shift 1 is the identity.
  const Schedule s1 = flow_match_set_timesteps(FlowMatchSchedulerConfig{}, 0, std::vector<double>{0.8, 0.3}, std::nullopt);
  EXPECT_EQ(s1.sigmas, (std::vector<float>{0.8f, 0.3f, 0.0f}));
  // Dynamic exponential shift: e^mu / (e^mu + (1/s - 1)); s = 0.5 gives e^mu / (e^mu + 1); mu = 0 gives 0.5.
  FlowMatchSchedulerConfig dyn;
  dyn.use_dynamic_shifting = true;
  EXPECT_EQ(flow_match_set_timesteps(dyn, 0, std::vector<double>{0.5}, 0.0).sigmas[0], 0.5f);
  dyn.time_shift_type = "linear";
  EXPECT_EQ(flow_match_set_timesteps(dyn, 0, std::vector<double>{0.5}, 3.0).sigmas[0], 0.75f);  // 3 / (3 + 1)
}

TEST(SchedulerFacts, CalculateShiftEndpoints) {
  // mu is linear in the image sequence length: base_shift at 256, max_shift at 4096.
  EXPECT_DOUBLE_EQ(calculate_shift(256, kTurbo), 0.5);
  EXPECT_NEAR(calculate_shift(4096, kTurbo), 1.15, 1e-15);
  EXPECT_EQ(zimage_image_seq_len(128, 128), 4096);  // 1024 x 1024 pixels
  EXPECT_EQ(zimage_image_seq_len(7, 9), 12);       // floor division, as the pipeline
}

TEST(SchedulerFacts, MuIsIgnoredWithoutDynamicShifting) {
  const Schedule a = flow_match_set_timesteps(kTurbo, 0, std::vector<double>{1.0, 0.6, 0.2}, 0.3);
  const Schedule b = flow_match_set_timesteps(kTurbo, 0, std::vector<double>{1.0, 0.6, 0.2}, 2.9);
  EXPECT_EQ(a.sigmas, b.sigmas);
}

TEST(SchedulerFacts, EulerStepOnHandValues) {
  const Schedule s = zimage_pipeline_schedule(kTurbo, 2, 4096);  // sigmas [1, 0.75, 0]
  std::vector<float> x = {2.0f, -1.0f}, v = {4.0f, 8.0f};
  flow_match_step(s, 0, v.data(), x.data(), 2);  // dt = -0.25
  EXPECT_EQ(x, (std::vector<float>{1.0f, -3.0f}));
  flow_match_step(s, 1, v.data(), x.data(), 2);  // dt = -0.75
  EXPECT_EQ(x, (std::vector<float>{-2.0f, -9.0f}));
}

TEST(SchedulerErrors, BadArgumentsAreOneLineErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {error_of([] { default_zimage_sigmas(0); }), "num_inference_steps"},
      {error_of([] { default_zimage_sigmas(-3); }), "num_inference_steps"},
      {error_of([] { flow_match_set_timesteps(kTurbo, -1, std::nullopt, std::nullopt); }), "num_inference_steps"},
      {error_of([] { flow_match_set_timesteps(kTurbo, 0, std::nullopt, std::nullopt); }), "num_inference_steps"},
      {error_of([] { flow_match_set_timesteps(kTurbo, 3, std::vector<double>{1, 0.5}, std::nullopt); }), "sigmas"},
      {error_of([] { flow_match_set_timesteps(kTurbo, 0, std::vector<double>{}, std::nullopt); }), "empty"},
      {error_of([] { flow_match_set_timesteps(kTurbo, 0, std::vector<double>{1, NAN}, std::nullopt); }), "sigmas[1]"},
      {error_of([] {
         flow_match_set_timesteps(kTurbo, 0, std::vector<double>{1, 0.5}, std::nullopt, std::vector<double>{900});
       }),
       "same length"},
      {error_of([] {
         FlowMatchSchedulerConfig d;
         d.use_dynamic_shifting = true;
         flow_match_set_timesteps(d, 4, std::nullopt, std::nullopt);
       }),
       "mu"},
      {error_of([] { flow_match_step(zimage_pipeline_schedule(kTurbo, 2, 4096), 2, nullptr, nullptr, 0); }), "step index 2"},
      {error_of([] { zimage_model_timestep(zimage_pipeline_schedule(kTurbo, 2, 4096), -1); }), "step index -1"},
      {error_of([] { zimage_transformer_batch(0, 1, true); }), "num_prompts"},
      {error_of([] { zimage_transformer_batch(1, 0, true); }), "num_images_per_prompt"},
      {error_of([] { randn_latents(0, {2, -1}); }), "negative dimension"},
      {error_of([] { randn_latents_per_item({1, 2, 3}, {2, 4}); }), "3 generators for a batch of 2"},
  };
  for (const auto& [msg, want] : cases) {
    EXPECT_NE(msg.find(want), std::string::npos) << "'" << msg << "' lacks '" << want << "'";
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

// ------------------------------------------------------------------ CFG facts

TEST(CfgFacts, ScaleRules) {
  const Schedule s = zimage_pipeline_schedule(kTurbo, 4, 4096);  // t_norm = 1 - sigma: 0, ., ., 0.5
  EXPECT_EQ(cfg_scale_at_step({0.0, 0, 1.0}, s, 0), 0.0);          // guidance 0: no CFG
  EXPECT_EQ(cfg_scale_at_step({-2.0, 0, 1.0}, s, 0), 0.0);         // negative: do_classifier_free_guidance False
  for (int i = 0; i < 4; ++i) EXPECT_EQ(cfg_scale_at_step({4.0, 0, 1.0}, s, i), 4.0);  // truncation 1 never fires
  // cfg_truncation 0.4: step 3 has t_norm 0.5 > 0.4 -> off; step 0 has 0 -> on.
  EXPECT_EQ(cfg_scale_at_step({4.0, 0, 0.4}, s, 0), 4.0);
  EXPECT_EQ(cfg_scale_at_step({4.0, 0, 0.4}, s, 3), 0.0);
  // t_norm == cfg_truncation stays on (strict >), values > 1 never truncate.
  EXPECT_EQ(cfg_scale_at_step({4.0, 0, 0.5}, s, 3), 4.0);
  EXPECT_EQ(cfg_scale_at_step({4.0, 0, 1.5}, s, 3), 4.0);
  EXPECT_EQ(cfg_scale_at_step({4.0, 0, -1.0}, s, 0), 0.0);  // t_norm 0 > -1
}

TEST(CfgFacts, CombineOnHandValues) {
  const float pos[2] = {1.0f, 2.0f}, neg[2] = {0.0f, 0.0f};
  float out[2];
  EXPECT_FALSE(cfg_combine(pos, neg, 2, 1.0, 0.0, out));  // pos + 1 * (pos - neg)
  EXPECT_EQ(out[0], 2.0f);
  EXPECT_EQ(out[1], 4.0f);
  // Cap at 1 x ||pos||: ||pred|| = sqrtf(20) = 2 sqrtf(5) exactly, ratio 0.5 exactly.
  EXPECT_TRUE(cfg_combine(pos, neg, 2, 1.0, 1.0, out));
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 2.0f);
  // Cap factor 3: 2 sqrt5 <= 3 sqrt5, untouched.
  EXPECT_FALSE(cfg_combine(pos, neg, 2, 1.0, 3.0, out));
  EXPECT_EQ(out[1], 4.0f);
  // out may alias pos.
  float p[2] = {1.0f, 2.0f};
  cfg_combine(p, neg, 2, 1.0, 1.0, p);
  EXPECT_EQ(p[1], 2.0f);
}

TEST(CfgFacts, VectorNormOnHandValues) {
  const float x[2] = {3.0f, 4.0f};
  EXPECT_EQ(torch_vector_norm(x, 2), 5.0f);
  std::vector<float> ones(1000, 1.0f);  // 8 lanes of 125, exact
  EXPECT_EQ(torch_vector_norm(ones.data(), 1000), std::sqrt(1000.0f));
}

TEST(CfgFacts, BatchOrderFromThePipelineCode) {
  // latents.repeat(2, 1, 1, 1); prompt_embeds + negative_prompt_embeds, each
  // repeated per prompt consecutively ([pe for pe in prompt_embeds for _ in range(k)]).
  using E = CfgBatchEntry;
  EXPECT_EQ(zimage_transformer_batch(2, 2, true),
            (std::vector<E>{{0, 0, false}, {1, 0, false}, {2, 1, false}, {3, 1, false},
                            {0, 0, true}, {1, 0, true}, {2, 1, true}, {3, 1, true}}));
  EXPECT_EQ(zimage_transformer_batch(2, 2, false),
            (std::vector<E>{{0, 0, false}, {1, 0, false}, {2, 1, false}, {3, 1, false}}));
  EXPECT_EQ(zimage_transformer_batch(3, 1, true).size(), 6u);
}

// ------------------------------------------------------------------ generator properties

TEST(TorchGenerator, EngineIsMt19937OfTheLow32Bits) {
  TorchCpuGenerator g(5489), h((uint64_t(7) << 32) + 5489);
  EXPECT_EQ(g.random(), 3499211612u);  // std::mt19937's first output for its default seed 5489
  EXPECT_EQ(h.random(), 3499211612u);
  TorchCpuGenerator a(1), b(1);
  const uint64_t r64 = a.random64();
  const uint64_t hi = b.random(), lo = b.random();
  EXPECT_EQ(r64, (hi << 32) | lo);
}

TEST(TorchGenerator, SmallCallsContinueOneStreamOfPairs) {
  // numel < 16: one normal_distribution<double> draw per element, pairs cached
  // in the generator, so randn(3) + randn(2) == randn(5).
  std::vector<float> five(5), a(3), b(2);
  TorchCpuGenerator g(42), h(42);
  g.randn(five.data(), 5);
  h.randn(a.data(), 3);
  h.randn(b.data(), 2);
  EXPECT_EQ(std::vector<float>(five.begin(), five.begin() + 3), a);
  EXPECT_EQ(std::vector<float>(five.begin() + 3, five.end()), b);
}

TEST(TorchGenerator, BlocksOf16DrawTheirUniformsFirst) {
  // numel >= 16 draws all uniforms first and transforms whole blocks, so two
  // calls of 16 equal one call of 32; a tail is redrawn, so 20 + 12 != 32.
  std::vector<float> whole(32), p(16), q(16);
  TorchCpuGenerator g(3), h(3);
  g.randn(whole.data(), 32);
  h.randn(p.data(), 16);
  h.randn(q.data(), 16);
  EXPECT_EQ(std::vector<float>(whole.begin(), whole.begin() + 16), p);
  EXPECT_EQ(std::vector<float>(whole.begin() + 16, whole.end()), q);
  std::vector<float> r(20);
  TorchCpuGenerator k(3);
  k.randn(r.data(), 20);
  EXPECT_EQ(std::vector<float>(r.begin(), r.begin() + 4), std::vector<float>(whole.begin(), whole.begin() + 4));
  EXPECT_NE(std::vector<float>(r.begin() + 4, r.end()), std::vector<float>(whole.begin() + 4, whole.begin() + 20));
}

TEST(TorchGenerator, OutputIsStandardNormal) {
  const Tensor<float> t = randn_latents(42, {1, 16, 64, 64});
  double s = 0, s2 = 0;
  for (float v : t.data) s += v, s2 += double(v) * v;
  const double mean = s / t.numel(), var = s2 / t.numel() - mean * mean;
  EXPECT_NEAR(mean, 0.0, 0.02);
  EXPECT_NEAR(var, 1.0, 0.02);
}

}  // namespace
}  // namespace zimage

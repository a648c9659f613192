// FlowMatchEulerDiscreteScheduler at parity with diffusers (T0, bit-exact):
// every schedule in golden/scheduler.safetensors (ZImagePipeline's sigmas and
// timesteps for n = 1..50 and shift 1, 3, 5, dynamic shifting, custom sigmas,
// custom timesteps, set_timesteps without sigmas), the transformer's timestep
// input, torch.linspace under both CPU capabilities, and step() results. Each
// comparison counts mismatching elements and prints the largest ulp distance;
// the gate is 0 mismatches. test_scheduler_mutations.cpp shows the step gate
// failing when sigmas and timesteps are out of step.
#include <nlohmann/json.hpp>

#include "numerics/tolerance.h"
#include "pipeline/scheduler.h"
#include "support/goldens.h"
#include "support/scheduler_golden.h"
#include "support/test_support.h"
#include "validation/golden_file.h"

namespace zimage {
namespace {

using json = nlohmann::json;

const std::shared_ptr<SafetensorsFile>& golden() { return testing::scheduler_golden(); }

json meta_json(const std::string& key) { return json::parse(golden()->metadata().at(key)); }

// Prints mismatches and max ulp; returns the number of differing elements.
int64_t count_mismatches(const std::string& what, const std::vector<float>& got, const Tensor<float>& ref) {
  EXPECT_EQ(int64_t(got.size()), ref.numel()) << what << ": length";
  if (int64_t(got.size()) != ref.numel()) return ref.numel() + 1;
  const auto u = numerics::ulp_distance(Tensor<float>(ref.shape, got), ref);
  std::printf("  %s: %lld of %lld differ, max ulp %lld\n", what.c_str(), (long long)u.differ, (long long)ref.numel(),
              (long long)u.max_ulp);
  return u.differ;
}

void expect_bitwise(const std::string& what, const std::vector<float>& got, const Tensor<float>& ref) {
  EXPECT_EQ(count_mismatches(what, got, ref), 0) << what;
}

std::vector<float> as_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

FlowMatchSchedulerConfig config_of(const json& kwargs) {
  return scheduler_config_from_json_text(kwargs.dump(), "golden case config");
}

std::optional<std::vector<double>> list_or_null(const json& c, const char* key) {
  if (!c.contains(key) || c[key].is_null()) return std::nullopt;
  return c[key].get<std::vector<double>>();
}

// ---------------------------------------------------------------- schedules

std::vector<json> schedule_cases() {
  const auto f = SafetensorsFile::open(testing::golden_path("scheduler"));
  std::vector<json> out;
  for (const auto& c : json::parse(f->metadata().at("cases"))) out.push_back(c);
  return out;
}

class SchedulerGolden : public ::testing::TestWithParam<json> {};

TEST_P(SchedulerGolden, SigmasAndTimestepsBitExact) {
  const json& c = GetParam();
  const std::string name = c["name"];
  const FlowMatchSchedulerConfig cfg = config_of(c["config"]);
  Schedule s;
  if (c["path"] == "pipeline") {
    // ZImagePipeline: default z-image sigmas, mu from the image sequence length.
    const int64_t L = c["image_seq_len"];
    EXPECT_DOUBLE_EQ(calculate_shift(L, cfg), c["mu"].get<double>()) << name << ": mu";
    EXPECT_EQ(calculate_shift(L, cfg), c["mu"].get<double>()) << name << ": mu bitwise";
    s = zimage_pipeline_schedule(cfg, c["n"].get<int>(), L);
  } else {
    const std::optional<double> mu = c["mu"].is_null() ? std::nullopt : std::optional<double>(c["mu"].get<double>());
    s = flow_match_set_timesteps(cfg, c.value("n", 0), list_or_null(c, "sigmas"), mu, list_or_null(c, "timesteps"));
  }
  expect_bitwise(name + ".sigmas", s.sigmas, golden()->get<float>(name + ".sigmas"));
  expect_bitwise(name + ".timesteps", s.timesteps, golden()->get<float>(name + ".timesteps"));
  if (golden()->contains(name + ".model_t")) {
    std::vector<float> t;
    for (int i = 0; i < s.steps(); ++i) t.push_back(zimage_model_timestep(s, i));
    expect_bitwise(name + ".model_t", t, golden()->get<float>(name + ".model_t"));
  }
}

INSTANTIATE_TEST_SUITE_P(Golden, SchedulerGolden, ::testing::ValuesIn(schedule_cases()),
                         [](const auto& info) { return testing::test_name(info.param["name"].template get<std::string>()); });

// The cases the brief asks for are all there (n = 1..50 x shift 1, 3, 5; dynamic
// exponential and linear; custom sigmas; custom timesteps; no sigmas).
TEST(SchedulerGoldenInventory, AllFamiliesPresent) {
  int pipeline = 0, dyn_exp = 0, dyn_lin = 0, custom_sigmas = 0, custom_ts = 0, no_sigmas = 0;
  for (const auto& c : schedule_cases()) {
    const std::string n = c["name"];
    pipeline += n.rfind("pipeline.", 0) == 0;
    dyn_exp += n.rfind("dynamic.exponential.", 0) == 0;
    dyn_lin += n.rfind("dynamic.linear.", 0) == 0;
    custom_sigmas += n.rfind("custom_sigmas.", 0) == 0;
    custom_ts += n.rfind("custom_timesteps.", 0) == 0;
    no_sigmas += n.rfind("no_sigmas.", 0) == 0;
  }
  EXPECT_EQ(pipeline, 150);
  EXPECT_GT(dyn_exp, 0);
  EXPECT_GT(dyn_lin, 0);
  EXPECT_GT(custom_sigmas, 0);
  EXPECT_GT(custom_ts, 0);
  EXPECT_GT(no_sigmas, 0);
  EXPECT_EQ(meta_json("pipeline_call_checked").size(), 5u) << "schedules cross-checked against ZImagePipeline.__call__";
}

// get_default_z_image_sigmas(n) = torch.linspace(1, 1/n, n) on the AVX2 build
// (FMA-contracted) and on the DEFAULT build.
TEST(SchedulerGolden, DefaultZImageSigmasBothCapabilities) {
  int64_t differ_if_swapped = 0;
  for (int n = 1; n <= 50; ++n) {
    const auto avx2 = as_float(default_zimage_sigmas(n, TorchCpuCapability::Avx2));
    const auto dflt = as_float(default_zimage_sigmas(n, TorchCpuCapability::Default));
    const std::string k = "zimage_default_sigmas.n" + std::to_string(n);
    EXPECT_EQ(count_mismatches(k, avx2, golden()->get<float>(k)), 0);
    EXPECT_EQ(count_mismatches("default_cap." + k, dflt, golden()->get<float>("default_cap." + k)), 0);
    differ_if_swapped += avx2 != dflt;
  }
  // Negative control: the capabilities really differ (so each gate above can fail).
  std::printf("  n in 1..50 where the AVX2 and DEFAULT linspace differ: %lld\n", (long long)differ_if_swapped);
  EXPECT_GT(differ_if_swapped, 0);
}

// Negative controls: plausible ports that get one dtype transition wrong must
// fail the bit-exact gate on some of the 150 ZImagePipeline schedules.
TEST(SchedulerGoldenNegativeControls, WrongDtypePathsAreCaught) {
  int shift_in_double = 0, linspace_in_double = 0, t_as_one_minus_sigma = 0, cases = 0;
  for (double shift : {1.0, 3.0, 5.0})
    for (int n = 1; n <= 50; ++n, ++cases) {
      char prefix[64];
      std::snprintf(prefix, sizeof prefix, "pipeline.shift%g.n%d", shift, n);
      const auto ref = golden()->get<float>(std::string(prefix) + ".sigmas");
      const auto ref_t = golden()->get<float>(std::string(prefix) + ".model_t");
      const auto base = default_zimage_sigmas(n);
      std::vector<float> a, b, c;
      for (int i = 0; i < n; ++i) {
        const double s = base[size_t(i)];
        a.push_back(float(shift * s / (1.0 + (shift - 1.0) * s)));  // shift in float64, one rounding
        const double l = n == 1 ? 1.0 : 1.0 + double(i) * ((1.0 / n - 1.0) / (n - 1));  // linspace in float64
        const float lf = float(l);
        b.push_back(float(shift) * lf / (1.0f + float(shift - 1.0) * lf));
        c.push_back(1.0f - ref[i]);  // t = 1 - sigma instead of (1000 - sigma * 1000) / 1000
      }
      a.push_back(0.0f);
      b.push_back(0.0f);
      shift_in_double += a != ref.data;
      linspace_in_double += b != ref.data;
      t_as_one_minus_sigma += c != ref_t.data;
    }
  std::printf("  of %d schedules, wrong ones differ: shift in float64 %d, linspace in float64 %d, t = 1 - sigma %d\n",
              cases, shift_in_double, linspace_in_double, t_as_one_minus_sigma);
  EXPECT_GT(shift_in_double, 0);
  EXPECT_GT(linspace_in_double, 0);
  EXPECT_GT(t_as_one_minus_sigma, 0);
}

// ---------------------------------------------------------------- step()

Schedule stored_schedule(const std::string& prefix) {
  Schedule s;
  s.sigmas = golden()->get<float>(prefix + ".sigmas").data;
  s.timesteps = golden()->get<float>(prefix + ".timesteps").data;
  return s;
}

TEST(SchedulerStep, TrajectoryOf8StepsBitExact) {
  const Schedule s = zimage_pipeline_schedule(FlowMatchSchedulerConfig{.shift = 3.0}, 8, 4096);
  expect_bitwise("step.traj.sigmas", s.sigmas, golden()->get<float>("step.traj.sigmas"));
  EXPECT_EQ(testing::scheduler_trajectory_mismatches(true), 0);
}

TEST(SchedulerStep, SingleStepsBitExact) {
  const Schedule s = stored_schedule("pipeline.shift3.n50");
  const auto idx = meta_json("step_singles")["indices"].get<std::vector<int>>();
  ASSERT_EQ(idx.size(), 3u);
  for (int i : idx) {
    const std::string k = "step.n50.i" + std::to_string(i);
    std::vector<float> x = golden()->get<float>(k + ".sample").data;
    const auto mo = golden()->get<float>(k + ".model_output");
    flow_match_step(s, i, mo.ptr(), x.data(), int64_t(x.size()));
    expect_bitwise(k + ".prev", x, golden()->get<float>(k + ".prev"));
  }
}

}  // namespace
}  // namespace zimage

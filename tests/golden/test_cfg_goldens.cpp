// Classifier-free guidance at parity with ZImagePipeline.__call__ (T0, bit-exact).
// golden/cfg.safetensors holds real pipeline runs with a stub transformer
// (tools/golden/dump_pipeline_parts.py): per step the batch the transformer
// received (which latent, which prompt, positive or negative, the timestep),
// its outputs, and the noise_pred scheduler.step received; the initial latents
// (prepare_latents -> randn_tensor) and the final ones. The reference rebuilds
// every step from the stored transformer outputs with zimage_transformer_batch,
// cfg_scale_at_step, cfg_combine and flow_match_step, and must match each
// noise_pred and the final latents exactly (0 mismatching elements; the max ulp
// is printed). Also: torch.linalg.vector_norm bit for bit on both CPU
// capabilities, and negative controls showing the gates fail on wrong CFG.
#include <nlohmann/json.hpp>

#include "numerics/tolerance.h"
#include "pipeline/cfg.h"
#include "support/goldens.h"
#include "support/test_support.h"
#include "validation/golden_file.h"

namespace zimage {
namespace {

using json = nlohmann::json;

const std::shared_ptr<SafetensorsFile>& golden() {
  static const auto f = open_pipeline_part_golden(testing::golden_path("cfg"), "cfg");
  return f;
}

std::vector<json> cfg_cases() {
  const auto f = SafetensorsFile::open(testing::golden_path("cfg"));
  std::vector<json> out;
  for (const auto& c : json::parse(f->metadata().at("cases"))) out.push_back(c);
  return out;
}

struct Diff {
  int64_t differ = 0, max_ulp = 0;
};
Diff diff(const std::vector<float>& got, const Tensor<float>& ref) {
  if (int64_t(got.size()) != ref.numel()) return {ref.numel() + 1, INT64_MAX};
  const auto u = numerics::ulp_distance(Tensor<float>(ref.shape, got), ref);
  return {u.differ, u.max_ulp};
}

// A wrong variant of the CFG computation, for the negative controls.
enum class Variant { Reference, SwappedPosNeg, NoNormCap, GuidanceInDouble };

struct CaseResult {
  Diff noise_pred;  // summed over steps
  Diff final_latents;
  int apply_cfg_mismatch = 0, batch_mismatch = 0, t_mismatch = 0, capped_mismatch = 0;
};

// Replays one stored pipeline run with the reference. `print` logs per step.
CaseResult replay(const json& c, Variant variant, bool print) {
  const std::string name = c["name"];
  const int P = c["prompts"], k = c["num_images_per_prompt"], n = c["steps"];
  const int B = P * k;
  const FlowMatchSchedulerConfig sc = scheduler_config_from_json_text(c["scheduler_config"].dump(), name);
  const CfgOptions opt{c["guidance_scale"].get<double>(), c["cfg_normalization"].get<double>(),
                       c["cfg_truncation"].get<double>()};
  const int64_t H = 2 * (c["height"].get<int64_t>() / 16), W = 2 * (c["width"].get<int64_t>() / 16);
  const Schedule s = zimage_pipeline_schedule(sc, n, zimage_image_seq_len(H, W));
  CaseResult r;
  // prepare_latents: randn_tensor((B, 16, H, W), generator=Generator("cpu").manual_seed(seed)).
  Tensor<float> lat = randn_latents(c["generator_seed"].get<uint64_t>(), {B, 16, H, W});
  const Diff d0 = diff(lat.data, golden()->get<float>(name + ".latents.0"));
  EXPECT_EQ(d0.differ, 0) << name << ": initial latents (randn_tensor)";
  const int64_t item = 16 * H * W;
  for (int i = 0; i < n; ++i) {
    const std::string st = name + ".step" + std::to_string(i);
    const auto& per = c["per_step"][size_t(i)];
    const double g = cfg_scale_at_step(opt, s, i);
    const bool apply = g > 0;
    r.apply_cfg_mismatch += apply != per["apply_cfg"].get<bool>();
    // The batch order the pipeline built.
    const auto batch = zimage_transformer_batch(P, k, apply);
    const auto lat_ids = golden()->get<int32_t>(st + ".batch_latent");
    const auto tags = golden()->get<int32_t>(st + ".batch_tag");
    if (int64_t(batch.size()) != lat_ids.numel()) {
      ++r.batch_mismatch;
    } else {
      for (size_t b = 0; b < batch.size(); ++b)
        r.batch_mismatch += batch[b].latent != lat_ids[int64_t(b)] ||
                            (batch[b].negative ? -1 : 1) * (batch[b].prompt + 1) != tags[int64_t(b)];
    }
    r.t_mismatch += zimage_model_timestep(s, i) != golden()->get<float>(st + ".t")[0];
    // noise_pred = -(CFG-combined or plain) transformer output, per latent.
    const auto out = golden()->get<float>(st + ".out");  // [batch, 16, 1, H, W]
    std::vector<float> pred(size_t(B * item));
    for (int j = 0; j < B; ++j) {
      float* dst = pred.data() + int64_t(j) * item;
      const float* pos = out.ptr() + int64_t(j) * item;
      if (apply) {
        const float* neg = out.ptr() + int64_t(B + j) * item;
        double norm = opt.cfg_normalization;
        double gg = g;
        if (variant == Variant::SwappedPosNeg) std::swap(pos, neg);
        if (variant == Variant::NoNormCap) norm = 0;
        bool capped;
        if (variant == Variant::GuidanceInDouble) {  // g * (pos - neg) in double, then rounded
          for (int64_t e = 0; e < item; ++e) dst[e] = float(double(pos[e]) + gg * double(pos[e] - neg[e]));
          capped = false;
        } else {
          capped = cfg_combine(pos, neg, item, gg, norm, dst);
        }
        const auto& cp = per["capped"];
        if (!cp.empty()) r.capped_mismatch += capped != cp[size_t(j)].get<bool>();
      } else {
        std::copy(pos, pos + item, dst);
      }
      for (int64_t e = 0; e < item; ++e) dst[e] = -dst[e];  // the pipeline negates before the step
    }
    const Diff d = diff(pred, golden()->get<float>(st + ".noise_pred"));
    r.noise_pred.differ += d.differ;
    r.noise_pred.max_ulp = std::max(r.noise_pred.max_ulp, d.max_ulp);
    if (print)
      std::printf("  %s: apply_cfg %d scale %g batch %zu, noise_pred %lld of %lld differ (max ulp %lld)\n", st.c_str(),
                  int(apply), g, batch.size(), (long long)d.differ, (long long)(B * item), (long long)d.max_ulp);
    // Our own noise_pred drives our own trajectory.
    flow_match_step(s, i, pred.data(), lat.ptr(), lat.numel());
  }
  r.final_latents = diff(lat.data, golden()->get<float>(name + ".latents.final"));
  return r;
}

class CfgGolden : public ::testing::TestWithParam<json> {};

TEST_P(CfgGolden, PipelineStepsBitExact) {
  const json& c = GetParam();
  const std::string name = c["name"];
  const Schedule s = zimage_pipeline_schedule(FlowMatchSchedulerConfig{.shift = 3.0}, c["steps"].get<int>(),
                                              zimage_image_seq_len(2 * (c["height"].get<int>() / 16),
                                                                   2 * (c["width"].get<int>() / 16)));
  EXPECT_EQ(diff(s.sigmas, golden()->get<float>(name + ".sigmas")).differ, 0) << name << ": sigmas";
  EXPECT_EQ(diff(s.timesteps, golden()->get<float>(name + ".timesteps")).differ, 0) << name << ": timesteps";
  const CaseResult r = replay(c, Variant::Reference, true);
  std::printf("  %s: final latents %lld differ (max ulp %lld)\n", name.c_str(), (long long)r.final_latents.differ,
              (long long)r.final_latents.max_ulp);
  EXPECT_EQ(r.apply_cfg_mismatch, 0) << name << ": steps where apply_cfg differs";
  EXPECT_EQ(r.batch_mismatch, 0) << name << ": transformer batch order";
  EXPECT_EQ(r.t_mismatch, 0) << name << ": transformer timestep input";
  EXPECT_EQ(r.capped_mismatch, 0) << name << ": norm cap decisions";
  EXPECT_EQ(r.noise_pred.differ, 0) << name << ": noise_pred, max ulp " << r.noise_pred.max_ulp;
  EXPECT_EQ(r.final_latents.differ, 0) << name << ": final latents, max ulp " << r.final_latents.max_ulp;
}

INSTANTIATE_TEST_SUITE_P(Golden, CfgGolden, ::testing::ValuesIn(cfg_cases()),
                         [](const auto& info) { return testing::test_name(info.param["name"].template get<std::string>()); });

// The golden covers what the CFG rules branch on.
TEST(CfgGoldenInventory, CoversEveryBranch) {
  bool g0 = false, capped = false, uncapped_with_norm = false, truncated = false, repeat = false, odd_scale = false;
  for (const auto& c : cfg_cases()) {
    g0 |= c["guidance_scale"].get<double>() == 0;
    repeat |= c["num_images_per_prompt"].get<int>() > 1 && c["prompts"].get<int>() > 1;
    odd_scale |= double(float(c["guidance_scale"].get<double>())) != c["guidance_scale"].get<double>();
    bool any_on = false, any_off = false;
    for (const auto& st : c["per_step"]) {
      (st["apply_cfg"].get<bool>() ? any_on : any_off) = true;
      for (const auto& x : st["capped"]) (x.get<bool>() ? capped : uncapped_with_norm) = true;
    }
    truncated |= c["guidance_scale"].get<double>() > 0 && any_on && any_off;
  }
  EXPECT_TRUE(g0 && capped && uncapped_with_norm && truncated && repeat && odd_scale)
      << g0 << capped << uncapped_with_norm << truncated << repeat << odd_scale;
}

// Negative controls: each wrong variant must fail the gate above somewhere.
TEST(CfgGoldenNegativeControls, WrongCfgIsCaught) {
  struct Control {
    Variant v;
    const char* what;
  };
  for (const Control ctl : {Control{Variant::SwappedPosNeg, "positive and negative halves swapped"},
                            Control{Variant::NoNormCap, "cfg_normalization ignored"},
                            Control{Variant::GuidanceInDouble, "g * (pos - neg) in double"}}) {
    int64_t differ = 0;
    for (const auto& c : cfg_cases()) differ += replay(c, ctl.v, false).noise_pred.differ;
    std::printf("  %s: %lld noise_pred elements differ over all cases\n", ctl.what, (long long)differ);
    EXPECT_GT(differ, 0) << ctl.what << " was not caught";
  }
}

// torch.linalg.vector_norm(x) on float32, bit for bit: 8 lane sums, lanes added
// in order, the tail fused (AVX2 build) or not (DEFAULT).
TEST(CfgGolden, VectorNormBitExactBothCapabilities) {
  const auto lens = json::parse(golden()->metadata().at("norm_lengths")).get<std::vector<int>>();
  int avx2_bad = 0, default_bad = 0, cross = 0, vectors = 0;
  for (int L : lens) {
    const std::string l = std::to_string(L);
    const auto x = golden()->get<float>("norm.x.L" + l);  // [rows, L]
    const auto ra = golden()->get<float>("norm.avx2.L" + l), rd = golden()->get<float>("norm.default.L" + l);
    ASSERT_EQ(x.dim(-1), L);
    for (int64_t r = 0; r < x.dim(0); ++r, ++vectors) {
      const float a = torch_vector_norm(x.ptr() + r * L, L, TorchCpuCapability::Avx2);
      const float d = torch_vector_norm(x.ptr() + r * L, L, TorchCpuCapability::Default);
      avx2_bad += a != ra[r];
      default_bad += d != rd[r];
      cross += a != d;
    }
  }
  std::printf("  vector_norm of %d vectors (%zu lengths): AVX2 %d mismatches, DEFAULT %d mismatches; the builds differ "
              "at %d\n", vectors, lens.size(), avx2_bad, default_bad, cross);
  EXPECT_EQ(avx2_bad, 0);
  EXPECT_EQ(default_bad, 0);
  EXPECT_GT(cross, 0) << "negative control: the two kernels must be distinguishable";
}

}  // namespace
}  // namespace zimage

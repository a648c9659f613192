// The end-to-end pipeline goldens (golden/pipeline_*.safetensors, tools/golden/dump_pipeline.py)
// as the CPU and the CUDA pipeline tests read them, and the T5 rule of docs/tolerances.md that both
// apply: the free-running loop's per-step latent drift against our fp64 run, within twice a
// peer's drift, the peer's own drift bounded by the accumulated model-output budget.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "dit/module_table.h"
#include "io/safetensors.h"
#include "numerics/tolerance.h"
#include "pipeline/generate.h"
#include "support/golden_values.h"
#include "support/goldens.h"
#include "support/test_support.h"

namespace zimage::testing {

// One pipeline golden with its folder and options.
struct PipelineGolden {
  std::string name;
  std::shared_ptr<SafetensorsFile> file;
  PipelineFolder pipe;
  GenerateOptions opt;
  int prompts = 0;
  nlohmann::json options;

  explicit PipelineGolden(const std::string& case_name) : name(case_name) {
    const std::string path = golden_path(case_name);
    file = SafetensorsFile::open(path);
    for (const auto& n : file->names()) screen_golden_tensor(path, file->view(n));
    const auto& md = file->metadata();
    pipe = open_pipeline_folder(std::string(ZIMAGE_GOLDEN_DIR) + "/" + md.at("model_dir"));
    options = nlohmann::json::parse(md.at("options"));
    opt.height = options["height"];
    opt.width = options["width"];
    opt.steps = options["steps"];
    opt.num_images_per_prompt = options["per_prompt"];
    opt.cfg.guidance_scale = options["guidance"];
    opt.cfg.cfg_normalization = options["cfg_normalization"].is_boolean() ? 0.0 : options["cfg_normalization"].get<double>();
    opt.cfg.cfg_truncation = options["cfg_truncation"];
    while (file->contains("prompt_embeds." + std::to_string(prompts))) ++prompts;
  }
  template <class T>
  Tensor<T> get(const std::string& n) const { return file->get<T>(n); }
  template <class T>
  std::vector<Tensor<T>> embeds(const std::string& stem) const {
    std::vector<Tensor<T>> out;
    for (int i = 0; file->contains(stem + std::to_string(i)); ++i) out.push_back(get<T>(stem + std::to_string(i)));
    return repeat_per_image(out, opt.num_images_per_prompt);
  }
  template <class T>
  std::vector<Tensor<T>> negatives() const {
    return opt.cfg.guidance_scale > 0 ? embeds<T>("negative_prompt_embeds.") : std::vector<Tensor<T>>{};
  }
  Shape latent_shape() const {
    return pipeline_latent_shape(pipe.transformer.config, pipe.vae.config, int64_t(prompts) * opt.num_images_per_prompt,
                                 opt.height, opt.width);
  }
  Schedule schedule() const { return pipeline_schedule(pipe.scheduler, opt, latent_shape()); }
  std::string latents_before(int k) const { return k == 0 ? "latents.init" : "latents.step." + std::to_string(k - 1); }
  // The attention length of the batch's longest item: caption tokens (positive or negative) + image tokens.
  int64_t longest_sequence() const {
    int64_t L = 0;
    for (int i = 0; i < prompts; ++i) L = std::max(L, file->view("prompt_embeds." + std::to_string(i)).shape[0]);
    for (int i = 0; file->contains("negative_prompt_embeds." + std::to_string(i)); ++i)
      L = std::max(L, file->view("negative_prompt_embeds." + std::to_string(i)).shape[0]);
    const Shape s = latent_shape();
    return L + (s[2] / 2) * (s[3] / 2);
  }
  // A request for generate() with this golden's options, seed and embeddings.
  GenerateRequest request() const {
    GenerateRequest r;
    r.opt = opt;
    r.seed = std::stoull(file->metadata().at("seed"));
    for (int i = 0; i < prompts; ++i) r.prompt_embeds.push_back(get<float>("prompt_embeds." + std::to_string(i)));
    if (opt.cfg.guidance_scale > 0)
      for (int i = 0; file->contains("negative_prompt_embeds." + std::to_string(i)); ++i)
        r.negative_prompt_embeds.push_back(get<float>("negative_prompt_embeds." + std::to_string(i)));
    return r;
  }
};

inline std::vector<std::string> pipeline_cases() { return golden_cases_of_kind("pipeline"); }

// golden/<case>.bf16.safetensors (tools/golden/dump_pipeline_bf16.py): the same diffusers pipeline
// with its transformer in bf16, the T5 peer of the CUDA bf16 loop. Checks kind pipeline_bf16, dtype
// bfloat16, that case, model_dir, options, the diffusers commit and blob equal the fp32 golden's,
// that every input digest (latents.init, the embeddings) matches the fp32 golden's tensors, one
// latents.step.{k} per step of the golden's shape, and screens every tensor.
inline std::shared_ptr<SafetensorsFile> open_pipeline_bf16_golden(const PipelineGolden& g) {
  const std::string path = std::string(ZIMAGE_GOLDEN_DIR) + "/" + g.name + ".bf16.safetensors";
  const GoldenHeader h = golden_header(path, "pipeline_bf16");
  const auto& f = h.file;
  auto meta = [&](const std::string& key) -> const std::string& { return h.meta(key); };
  ZIMAGE_CHECK(meta("dtype") == "bfloat16", path + ": dtype '" + meta("dtype") + "', expected bfloat16");
  for (const char* k : {"case", "model_dir", "options", "diffusers_commit", "diffusers_z_image_blob"})
    ZIMAGE_CHECK(meta(k) == g.file->metadata().at(k), path + ": " + k + " differs from the fp32 golden's");
  const auto digests = nlohmann::json::parse(meta("inputs_fnv1a64"));
  ZIMAGE_CHECK(digests.contains("latents.init") && digests.contains("prompt_embeds.0"),
               path + ": inputs_fnv1a64 lacks latents.init or prompt_embeds.0");
  for (const auto& [name, want] : digests.items())
    ZIMAGE_CHECK(want.get<std::string>() == fnv1a64_hex(g.get<float>(name)),
                 path + ": input " + name + " is not the fp32 golden's");
  for (int k = 0; k < g.opt.steps; ++k) {
    const std::string n = "latents.step." + std::to_string(k);
    ZIMAGE_CHECK(f->contains(n) && f->view(n).shape == g.file->view(n).shape, path + ": " + n + " missing or misshapen");
  }
  for (const auto& n : f->names()) screen_golden_tensor(path, f->view(n));
  return f;
}

template <class T>
Tensor<double> widen(const Tensor<T>& t) {
  Tensor<double> out(t.shape);
  for (int64_t i = 0; i < t.numel(); ++i) out[i] = double(t[i]);
  return out;
}

inline double rel_rms(const Tensor<double>& a, const Tensor<double>& r) { return numerics::compare(a, r).rel_rms; }

inline double psnr(const Tensor<double>& a, const Tensor<double>& r) {  // images in [-1, 1]: peak-to-peak 2
  double se = 0;
  for (int64_t i = 0; i < a.numel(); ++i) se += (a[i] - r[i]) * (a[i] - r[i]);
  const double mse = se / double(a.numel());
  return mse == 0 ? 999.0 : 10 * std::log10(4.0 / mse);
}

// The truth of T5: our fp64 loop from the golden's initial latents and embeddings, its final
// latents decoded in fp64, and the accumulated model-output budget after each step
//   drift_budget[k] = sum_{j<=k} |sigma_{j+1} - sigma_j| ||v_j|| eps_j / ||x_k||  +  (k+1) * 2 u_fp32,
// eps_j the whole transformer's budget in `tier` at the longest sequence times the CFG
// amplification bound (1 + 2 g_j): how far a loop whose every forward stays within that tier may drift.
struct Fp64Loop {
  DenoiseTrace<double> trace;
  Tensor<double> image;  // vae.decode of the final latents, fp64
};

inline Fp64Loop fp64_loop(const PipelineGolden& g) {
  Fp64Loop r;
  const ZImageWeights<double> w = load_weights<double>(g.pipe.transformer.config, *g.pipe.transformer.params);
  denoise(*in_memory_dit(w), g.schedule(), g.opt.cfg, g.get<double>("latents.init"), g.embeds<double>("prompt_embeds."),
          g.negatives<double>(), r.trace.recorder());
  const auto vd = load_vae_weights<double>(g.pipe.vae.config, *g.pipe.vae.params, VaePart::Decoder);
  r.image = decode_latents(g.pipe.vae.config, vd, r.trace.latents.back());
  return r;
}

inline std::vector<double> drift_budget(const PipelineGolden& g, const Fp64Loop& truth, numerics::Tier tier) {
  const Schedule s = g.schedule();
  const double eps_model = dit_module_budget(tier, "sample.0", g.pipe.transformer.config, g.longest_sequence()).rel_rms;
  std::vector<double> out;
  double acc = 0;
  for (int k = 0; k < g.opt.steps; ++k) {
    double vnorm = 0, xnorm = 0;
    for (double v : truth.trace.model_output[size_t(k)].data) vnorm += v * v;
    for (double v : truth.trace.latents[size_t(k)].data) xnorm += v * v;
    const double gk = cfg_scale_at_step(g.opt.cfg, s, k);
    acc += std::abs(double(s.sigmas[size_t(k) + 1]) - double(s.sigmas[size_t(k)])) * std::sqrt(vnorm) * eps_model * (1 + 2 * gk);
    out.push_back(acc / std::sqrt(xnorm) + (k + 1) * 2 * numerics::kUnitRoundoffFp32);
  }
  return out;
}

// The T5 gate, per step: `ours` (latents after each step) drifts from the fp64 loop by at most
// twice `peer`'s drift plus one fp32 rounding (6e-8: drifts below it compare as equal), and the
// peer's drift stays within `peer_budget`. Prints the headroom of both.
inline void expect_t5_drift(const std::string& what, const std::vector<Tensor<double>>& ours,
                            const std::vector<Tensor<double>>& peer, const Fp64Loop& truth,
                            const std::vector<double>& peer_budget) {
  ASSERT_EQ(ours.size(), truth.trace.latents.size()) << what;
  ASSERT_EQ(peer.size(), truth.trace.latents.size()) << what;
  const double floor = numerics::kUnitRoundoffFp32;
  for (size_t k = 0; k < ours.size(); ++k) {
    const Tensor<double>& x = truth.trace.latents[k];
    const numerics::Comparison c = numerics::compare(ours[k], x);
    const double theirs = rel_rms(peer[k], x);
    std::printf("  %s step %zu: ours vs fp64 rel_rms %.3e, peer %.3e, 2x peer + floor %.3e (%.1f%% used); "
                "peer budget %.3e (%.1f%% used)\n",
                what.c_str(), k, c.rel_rms, theirs, 2 * theirs + floor, 100 * c.rel_rms / (2 * theirs + floor),
                peer_budget[k], 100 * theirs / peer_budget[k]);
    EXPECT_EQ(c.nonfinite, 0) << what << " step " << k;
    EXPECT_LE(c.rel_rms, 2 * theirs + floor) << what << " step " << k;
    EXPECT_LE(theirs, peer_budget[k]) << what << " step " << k;
  }
}

}  // namespace zimage::testing

#include "pipeline/pipeline.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "numerics/mutation.h"
#include "dit/model_folder.h"

namespace zimage {

namespace fs = std::filesystem;

namespace {

nlohmann::json read_model_index(const fs::path& dir) {
  const fs::path p = dir / "model_index.json";
  ZIMAGE_CHECK(fs::is_directory(dir), dir.string() + ": pipeline folder does not exist");
  ZIMAGE_CHECK(fs::is_regular_file(p), dir.string() + ": not a pipeline folder (no model_index.json)");
  std::ifstream in(p);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(p.string() + ": not valid JSON (" + e.what() + ")");
  }
  ZIMAGE_CHECK(j.is_object(), p.string() + ": expected a JSON object");
  const auto cls = j.find("_class_name");
  ZIMAGE_CHECK(cls != j.end() && cls->is_string(), p.string() + ": lacks _class_name");
  ZIMAGE_CHECK(cls->get<std::string>() == "ZImagePipeline",
               p.string() + ": _class_name is '" + cls->get<std::string>() + "', expected ZImagePipeline");
  return j;
}

// model_index.json lists a component as [library, class] or [null, null].
bool listed(const nlohmann::json& index, const std::string& name) {
  const auto it = index.find(name);
  return it != index.end() && it->is_array() && it->size() == 2 && !(*it)[0].is_null() && !(*it)[1].is_null();
}

void need_component(const fs::path& dir, const nlohmann::json& index, const std::string& name, const std::string& cls) {
  ZIMAGE_CHECK(listed(index, name), (dir / "model_index.json").string() + ": component '" + name +
                                        "' is missing or null (ZImagePipeline needs its " + cls + ")");
  ZIMAGE_CHECK(fs::is_directory(dir / name), dir.string() + ": pipeline folder lacks " + name +
                                                 "/ (model_index.json lists a " + cls + ")");
}

template <class T>
Tensor<T> item(const Tensor<T>& batch, int64_t b) {  // [B, ...] -> [...]
  Shape s(batch.shape.begin() + 1, batch.shape.end());
  Tensor<T> out(s);
  const int64_t n = out.numel();
  std::copy(batch.data.begin() + b * n, batch.data.begin() + (b + 1) * n, out.data.begin());
  return out;
}

// CFG of one item: float is diffusers' fp32 arithmetic (pipeline/cfg.h);
// double is the same formula in double, the truth the fp32 path is measured against.
void cfg_item(const float* pos, const float* neg, int64_t n, double g, double norm_cap, float* out) {
  cfg_combine(pos, neg, n, g, norm_cap, out);
}
void cfg_item(const double* pos, const double* neg, int64_t n, double g, double norm_cap, double* out) {
  double pos_sq = 0, pred_sq = 0;
  for (int64_t i = 0; i < n; ++i) {
    out[i] = pos[i] + g * (pos[i] - neg[i]);
    pos_sq += pos[i] * pos[i];
    pred_sq += out[i] * out[i];
  }
  if (norm_cap > 0) {
    const double max_norm = std::sqrt(pos_sq) * norm_cap, new_norm = std::sqrt(pred_sq);
    if (new_norm > max_norm)
      for (int64_t i = 0; i < n; ++i) out[i] *= max_norm / new_norm;
  }
}

// Euler step: float is the scheduler's fp32 step (pipeline/scheduler.h); double its twin.
void euler_step(const Schedule& s, int i, const float* v, float* x, int64_t n) { flow_match_step(s, i, v, x, n); }
void euler_step(const Schedule& s, int i, const double* v, double* x, int64_t n) {
  size_t cur = size_t(i), next = size_t(i) + 1;
  if (mutated(Mutation::SigmasTimestepsOutOfStep)) {  // as flow_match_step does under the mutation
    cur = std::min(cur + 1, s.sigmas.size() - 1);
    next = std::min(next + 1, s.sigmas.size() - 1);
  }
  const double dt = double(s.sigmas.at(next)) - double(s.sigmas.at(cur));
  for (int64_t k = 0; k < n; ++k) x[k] = x[k] + dt * v[k];
}

}  // namespace

PipelineFolder open_pipeline_folder(const std::string& dir_in) {
  const fs::path dir(dir_in);
  const nlohmann::json index = read_model_index(dir);
  need_component(dir, index, "transformer", "ZImageTransformer2DModel");
  need_component(dir, index, "vae", "AutoencoderKL");
  need_component(dir, index, "scheduler", "FlowMatchEulerDiscreteScheduler");
  PipelineFolder p;
  p.dir = dir_in;
  p.transformer = open_model_folder((dir / "transformer").string());
  p.vae = open_vae_folder((dir / "vae").string());
  const fs::path sched = dir / "scheduler" / "scheduler_config.json";
  ZIMAGE_CHECK(fs::is_regular_file(sched), dir.string() + ": pipeline folder lacks scheduler/scheduler_config.json");
  p.scheduler = load_scheduler_config(sched.string());
  ZIMAGE_CHECK(p.vae.config.latent_channels == p.transformer.config.in_channels,
               dir.string() + ": vae latent_channels " + std::to_string(p.vae.config.latent_channels) +
                   " != transformer in_channels " + std::to_string(p.transformer.config.in_channels));
  p.has_text_encoder = listed(index, "text_encoder") && fs::is_directory(dir / "text_encoder");
  p.has_tokenizer = listed(index, "tokenizer") && fs::is_directory(dir / "tokenizer");
  return p;
}

Shape pipeline_latent_shape(const ZImageConfig& dit, const VaeConfig& vae, int64_t batch, int64_t height, int64_t width) {
  // __call__: vae_scale = vae_scale_factor * 2 (the 2 is the transformer's patch size).
  const int64_t unit = int64_t(vae.spatial_factor()) * 2;
  ZIMAGE_CHECK(height > 0 && height % unit == 0, "--height " + std::to_string(height) + " is not a positive multiple of " +
                                                    std::to_string(unit) + " (the VAE's factor " +
                                                    std::to_string(vae.spatial_factor()) + " x patch 2)");
  ZIMAGE_CHECK(width > 0 && width % unit == 0, "--width " + std::to_string(width) + " is not a positive multiple of " +
                                                  std::to_string(unit) + " (the VAE's factor " +
                                                  std::to_string(vae.spatial_factor()) + " x patch 2)");
  return {batch, dit.in_channels, 2 * (height / unit), 2 * (width / unit)};
}

void check_generate_inputs(const ZImageConfig& dit, const VaeConfig& vae, const GenerateOptions& opt,
                           const std::vector<Shape>& pos, const std::vector<Shape>& neg, const Shape* latents) {
  ZIMAGE_CHECK(opt.steps >= 1, "--steps must be at least 1, not " + std::to_string(opt.steps));
  ZIMAGE_CHECK(opt.num_images_per_prompt >= 1,
               "--num-images-per-prompt must be at least 1, not " + std::to_string(opt.num_images_per_prompt));
  ZIMAGE_CHECK(std::isfinite(opt.cfg.guidance_scale), "--guidance must be a finite number");
  ZIMAGE_CHECK(!pos.empty(), "no prompt embeddings given");
  const int64_t batch = int64_t(pos.size()) * opt.num_images_per_prompt;
  const Shape shape = pipeline_latent_shape(dit, vae, batch, opt.height, opt.width);
  auto check_embeds = [&](const std::vector<Shape>& e, const std::string& what) {
    for (size_t i = 0; i < e.size(); ++i) {
      const std::string name = what + "." + std::to_string(i);
      ZIMAGE_CHECK(e[i].size() == 2 && e[i][0] >= 1,
                   name + " has shape " + shape_str(e[i]) + ", expected [tokens, " + std::to_string(dit.cap_feat_dim) + "]");
      ZIMAGE_CHECK(e[i][1] == dit.cap_feat_dim, name + " is " + std::to_string(e[i][1]) +
                                                    " wide but the transformer's cap_feat_dim is " +
                                                    std::to_string(dit.cap_feat_dim));
    }
  };
  check_embeds(pos, "prompt_embeds");
  const bool cfg = opt.cfg.guidance_scale > 0;
  if (cfg) {
    ZIMAGE_CHECK(!neg.empty(), "--guidance " + std::to_string(opt.cfg.guidance_scale) +
                                   " needs negative prompt embeddings (--negative-prompt-embeds)");
    ZIMAGE_CHECK(neg.size() == pos.size(), "negative_prompt_embeds has " + std::to_string(neg.size()) +
                                               " items for " + std::to_string(pos.size()) + " prompts");
    check_embeds(neg, "negative_prompt_embeds");
  }
  if (latents)
    ZIMAGE_CHECK(*latents == shape, "--latents has shape " + shape_str(*latents) + ", expected " + shape_str(shape) +
                                        " for " + std::to_string(opt.height) + "x" + std::to_string(opt.width));
  // The transformer's own checks (RoPE positions included) on one step's batch.
  std::vector<Shape> xs, caps;
  for (size_t p = 0; p < pos.size(); ++p)
    for (int k = 0; k < opt.num_images_per_prompt; ++k) {
      xs.push_back({shape[1], 1, shape[2], shape[3]});
      caps.push_back(pos[p]);
    }
  if (cfg)
    for (size_t p = 0; p < neg.size(); ++p)
      for (int k = 0; k < opt.num_images_per_prompt; ++k) {
        xs.push_back({shape[1], 1, shape[2], shape[3]});
        caps.push_back(neg[p]);
      }
  check_dit_inputs(dit, xs, caps, {int64_t(xs.size())}, opt.dit);
}

Schedule pipeline_schedule(const FlowMatchSchedulerConfig& sched, const GenerateOptions& opt, const Shape& latents) {
  FlowMatchSchedulerConfig c = sched;
  if (opt.shift) {
    ZIMAGE_CHECK(std::isfinite(*opt.shift) && *opt.shift > 0, "--shift must be a positive number");
    c.shift = *opt.shift;
  }
  return zimage_pipeline_schedule(c, opt.steps, zimage_image_seq_len(latents[2], latents[3]));
}

template <class T>
std::vector<Tensor<T>> repeat_per_image(const std::vector<Tensor<T>>& embeds, int per_prompt) {
  std::vector<Tensor<T>> out;
  for (const auto& e : embeds)
    for (int k = 0; k < per_prompt; ++k) out.push_back(e);
  return out;
}

template <class T>
Tensor<T> pipeline_model_output(const ZImageWeights<T>& w, const Schedule& s, int step, const CfgOptions& cfg,
                                const Tensor<T>& latents, const std::vector<Tensor<T>>& pos,
                                const std::vector<Tensor<T>>& neg, Activations<T>* acts) {
  return pipeline_model_output(*in_memory_dit(w), s, step, cfg, latents, pos, neg, acts);
}

template <class T>
Tensor<T> pipeline_model_output(const DitModel<T>& dit, const Schedule& s, int step, const CfgOptions& cfg,
                                const Tensor<T>& latents, const std::vector<Tensor<T>>& pos,
                                const std::vector<Tensor<T>>& neg, Activations<T>* acts) {
  const int64_t B = latents.shape[0];
  ZIMAGE_CHECK(int64_t(pos.size()) == B, "pipeline: " + std::to_string(pos.size()) + " prompt embeddings for a batch of " +
                                             std::to_string(B));
  const double g = cfg_scale_at_step(cfg, s, step);
  const bool apply_cfg = g > 0;
  // timestep = (1000 - t) / 1000, in the latents' precision (fp32 in diffusers).
  const T t_model = (T(1000) - T(s.timesteps.at(step))) / T(1000);
  DitInputs<T> in;
  const int copies = apply_cfg ? 2 : 1;
  for (int c = 0; c < copies; ++c)
    for (int64_t b = 0; b < B; ++b) {
      Tensor<T> x = item(latents, b);
      x.shape = {latents.shape[1], 1, latents.shape[2], latents.shape[3]};  // unsqueeze(2)
      in.x.push_back(std::move(x));
      in.cap_feats.push_back(c == 0 ? pos[b] : neg.at(b));
    }
  in.t = Tensor<T>({int64_t(in.x.size())});
  for (auto& v : in.t.data) v = t_model;
  const std::vector<Tensor<T>> out = dit.forward(in, acts);

  Tensor<T> pred(latents.shape);
  const int64_t n = pred.numel() / B;
  for (int64_t b = 0; b < B; ++b) {
    T* dst = pred.data.data() + b * n;
    if (apply_cfg)
      cfg_item(out[b].data.data(), out[B + b].data.data(), n, g, cfg.cfg_normalization, dst);
    else
      std::copy(out[b].data.begin(), out[b].data.end(), dst);
  }
  if (!mutated(Mutation::NoOutputNegation))
    for (auto& v : pred.data) v = -v;  // noise_pred = -noise_pred
  return pred;
}

template <class T>
void pipeline_step(const Schedule& s, int step, const Tensor<T>& model_output, Tensor<T>& latents) {
  ZIMAGE_CHECK(model_output.shape == latents.shape, "pipeline_step: model output " + shape_str(model_output.shape) +
                                                        " vs latents " + shape_str(latents.shape));
  ZIMAGE_CHECK(step >= 0 && step < s.steps(), "pipeline_step: step " + std::to_string(step) + " of " + std::to_string(s.steps()));
  euler_step(s, step, model_output.data.data(), latents.data.data(), latents.numel());
}

template <class T>
Tensor<T> decode_latents(const VaeConfig& cfg, const VaeWeights<T>& w, const Tensor<T>& latents, Activations<T>* acts) {
  const Tensor<T> z = unscale_latents(cfg, latents);  // Mutation::WrongLatentScale lives there
  return vae_decode(cfg, w, z, acts);
}

std::vector<Image8> to_pil_images(const Tensor<float>& image) {
  ZIMAGE_CHECK(image.shape.size() == 4, "image has shape " + shape_str(image.shape) + ", expected [B, C, H, W]");
  const int64_t B = image.shape[0], C = image.shape[1], H = image.shape[2], W = image.shape[3];
  ZIMAGE_CHECK(C == 1 || C == 3, "image has " + std::to_string(C) + " channels; PIL images need 1 or 3");
  std::vector<Image8> out;
  for (int64_t b = 0; b < B; ++b) {
    Image8 img{H, W, C, std::vector<uint8_t>(H * W * C)};
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) {
          float v = image.data[((b * C + c) * H + y) * W + x];
          v = v * 0.5f;  // torch: images * 0.5 + 0.5, one rounding per op
          v = v + 0.5f;
          v = std::min(std::max(v, 0.0f), 1.0f);  // clamp(0, 1)
          const float scaled = v * 255.0f;         // numpy float32 * 255
          img.pixels[(y * W + x) * C + c] = static_cast<uint8_t>(std::nearbyint(scaled));  // round half to even
        }
    out.push_back(std::move(img));
  }
  return out;
}

#define ZIMAGE_PIPELINE_INSTANTIATE(T)                                                                                 \
  template std::vector<Tensor<T>> repeat_per_image(const std::vector<Tensor<T>>&, int);                               \
  template Tensor<T> pipeline_model_output(const DitModel<T>&,    const Schedule&, int, const CfgOptions&,             \
                                           const Tensor<T>&, const std::vector<Tensor<T>>&,                           \
                                           const std::vector<Tensor<T>>&, Activations<T>*);                           \
  template Tensor<T> pipeline_model_output(const ZImageWeights<T>&, const Schedule&, int, const CfgOptions&,          \
                                           const Tensor<T>&, const std::vector<Tensor<T>>&,                           \
                                           const std::vector<Tensor<T>>&, Activations<T>*);                           \
  template void pipeline_step(const Schedule&, int, const Tensor<T>&, Tensor<T>&);                                    \
  template Tensor<T> decode_latents(const VaeConfig&, const VaeWeights<T>&, const Tensor<T>&, Activations<T>*);
ZIMAGE_PIPELINE_INSTANTIATE(float)
ZIMAGE_PIPELINE_INSTANTIATE(double)

}  // namespace zimage

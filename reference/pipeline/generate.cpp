#include "pipeline/generate.h"

#include <cmath>
#include <optional>

#include "pipeline/torch_generator.h"
#include "text_encoder/prompt_encoder.h"

namespace zimage {

namespace {

template <class T>
std::vector<Tensor<T>> cast_all(const std::vector<Tensor<float>>& v) {
  std::vector<Tensor<T>> out;
  for (const auto& t : v) out.push_back(t.template cast<T>());
  return out;
}

void check_finite_input(const Tensor<float>& t, const std::string& name) {
  for (int64_t i = 0; i < t.numel(); ++i)
    ZIMAGE_CHECK(std::isfinite(t[i]), name + " holds " + std::to_string(t[i]) + " at flat index " + std::to_string(i) +
                                          " (inputs must be finite)");
}

// The text encoder of a pipeline folder, or one line saying what the folder lacks.
PromptEncoder open_pipeline_text_encoder(const std::string& dir) {
  ZIMAGE_CHECK(PromptEncoder::pipeline_has_text_encoder(dir),
               dir + ": no text_encoder/config.json and tokenizer/tokenizer.json (a pipeline folder with a text encoder)");
  return PromptEncoder::open_pipeline(dir);
}

std::vector<Shape> shapes_of(const std::vector<Tensor<float>>& v) {
  std::vector<Shape> s;
  for (const auto& t : v) s.push_back(t.shape);
  return s;
}

}  // namespace

template <class T>
Denoised<T> denoise(const DitModel<T>& dit, const Schedule& s, const CfgOptions& cfg, Tensor<T> latents,
                    const std::vector<Tensor<T>>& pos, const std::vector<Tensor<T>>& neg, const StepCallback<T>& on_step,
                    Activations<T>* acts) {
  Denoised<T> out;
  const int n = s.steps();
  for (int i = 0; i < n; ++i) {
    const Tensor<T> mo = pipeline_model_output(dit, s, i, cfg, latents, pos, neg, acts);
    if (acts && acts->first_nonfinite) {
      out.nonfinite = "step " + std::to_string(i + 1) + " (transformer): " + acts->first_nonfinite->describe();
      break;
    }
    pipeline_step(s, i, mo, latents);
    out.steps_done = i + 1;
    if (on_step && !on_step(StepEvent<T>{i + 1, n, double(s.timesteps[size_t(i)]), &mo, &latents})) break;
  }
  out.latents = std::move(latents);
  return out;
}

template <class T>
EncodedPrompts encode_prompts(const std::string& pipeline_dir, const std::vector<std::string>& prompts,
                              const PromptOptions& opt, bool check_finite,
                              const std::function<void(const std::string&)>& warn, const TextEncoderBackend& backend) {
  ZIMAGE_CHECK(!prompts.empty(), "no prompt to encode");
  ZIMAGE_CHECK(opt.max_sequence_length > 0, "--max-sequence-length must be positive");
  PromptEncoder enc = open_pipeline_text_encoder(pipeline_dir);
  return encode_prompts<T>(enc, prompts, opt, check_finite, warn, backend);
}

template <class T>
EncodedPrompts encode_prompts(PromptEncoder& enc, const std::vector<std::string>& prompts, const PromptOptions& opt,
                              bool check_finite, const std::function<void(const std::string&)>& warn,
                              const TextEncoderBackend& backend) {
  ZIMAGE_CHECK(!prompts.empty(), "no prompt to encode");
  ZIMAGE_CHECK(opt.max_sequence_length > 0, "--max-sequence-length must be positive");
  const EncodeOptions eo = opt.encode_options();
  (void)hidden_layer_mix_weights(eo.hidden_layers, eo.hidden_layer_weights);
  if (eo.padding_side) check_padding_side(*eo.padding_side, "--padding-side");
  for (int k : eo.hidden_layers) (void)qwen3_hidden_index(enc.text_encoder().config(), k);  // names the layer before any compute
  struct BackendForThisCall {  // the encoder keeps no copy of this call's backend past it
    PromptEncoder& e;
    PromptEncoder::HiddenStatesFn before;
    ~BackendForThisCall() { e.set_hidden_states_backend(std::move(before)); }
  } scope{enc, backend ? enc.hidden_states_backend() : PromptEncoder::HiddenStatesFn{}};
  if (backend) enc.set_hidden_states_backend(backend(enc.text_encoder(), eo.hidden_layers));
  Activations<T> acts;
  acts.store = false;
  acts.check_finite = true;
  const std::vector<Tensor<T>> embeds = enc.encode<T>(prompts, eo, warn, check_finite ? &acts : nullptr);
  EncodedPrompts out;
  if (acts.first_nonfinite) {
    out.nonfinite = "text encoder: " + acts.first_nonfinite->describe();
    return out;
  }
  for (const auto& e : embeds) out.embeds.push_back(e.template cast<float>());
  return out;
}

template <class T>
Generated<T> generate(const PipelineFolder& pipe, const GenerateRequest& req, const GenerateHooks<T>& hooks) {
  const GenerateOptions& opt = req.opt;
  const ZImageConfig& dit_cfg = pipe.transformer.config;
  auto stage = [&](const std::string& name, const std::string& detail) {
    if (hooks.on_stage) hooks.on_stage(name, detail);
  };
  Generated<T> out;

  // Everything that needs no model, before the text encoder loads (minutes on a real one).
  const bool from_prompts = !req.prompts.empty();
  ZIMAGE_CHECK(!(from_prompts && !req.prompt_embeds.empty()), "--prompt and --prompt-embeds exclude each other");
  ZIMAGE_CHECK(from_prompts || req.negative_prompts.empty(), "--negative-prompt needs --prompt");
  ZIMAGE_CHECK(from_prompts || !req.prompt_embeds.empty(), "no prompt and no prompt embeddings given");
  ZIMAGE_CHECK(opt.steps >= 1, "--steps must be at least 1, not " + std::to_string(opt.steps));
  ZIMAGE_CHECK(opt.num_images_per_prompt >= 1,
               "--num-images-per-prompt must be at least 1, not " + std::to_string(opt.num_images_per_prompt));
  ZIMAGE_CHECK(std::isfinite(opt.cfg.guidance_scale), "--guidance must be a finite number");
  const int64_t prompts = int64_t(from_prompts ? req.prompts.size() : req.prompt_embeds.size());
  const int64_t batch = prompts * opt.num_images_per_prompt;
  const Shape shape = pipeline_latent_shape(dit_cfg, pipe.vae.config, batch, opt.height, opt.width);
  if (req.latents) {
    ZIMAGE_CHECK(req.latents->shape == shape, "--latents has shape " + shape_str(req.latents->shape) + ", expected " +
                                                  shape_str(shape) + " for " + std::to_string(opt.height) + "x" +
                                                  std::to_string(opt.width));
    check_finite_input(*req.latents, "latents");
  }
  const Schedule sched = pipeline_schedule(pipe.scheduler, opt, shape);  // checks --shift
  const LongPromptMode long_mode = opt.long_prompt.mode;
  const int64_t long_target = long_mode == LongPromptMode::None ? 0 : opt.long_prompt.target_for(dit_cfg);
  const bool cfg = opt.cfg.guidance_scale > 0;

  // Prompt embeddings: given, or encoded here (negatives "" per prompt under CFG, as encode_prompt).
  std::vector<Tensor<float>> pos = req.prompt_embeds, neg = req.negative_prompt_embeds;
  if (from_prompts) {
    std::vector<std::string> negs;
    if (cfg) {
      negs = req.negative_prompts.empty() ? std::vector<std::string>(req.prompts.size(), "") : req.negative_prompts;
      if (negs.size() == 1 && req.prompts.size() > 1) negs.assign(req.prompts.size(), negs[0]);
      ZIMAGE_CHECK(negs.size() == req.prompts.size(), "--negative-prompt is given " + std::to_string(negs.size()) +
                                                          " times for " + std::to_string(req.prompts.size()) +
                                                          " prompts (give one, or one per prompt)");
    }
    stage("encode", std::to_string(req.prompts.size() + negs.size()) + " prompt(s)");
    // hooks.text_encoder made once for both calls; `made` (and the device memory it holds) is
    // released when this block ends, before the transformer loads.
    PromptEncoder::HiddenStatesFn made;
    TextEncoderBackend once;
    if (hooks.text_encoder)
      once = [&](const Qwen3TextEncoder& te, const std::vector<int>& ks) {
        if (!made) made = hooks.text_encoder(te, ks);
        return made;
      };
    // The pipeline's encoder in memory, or opened here once for both calls (released with `opened`).
    std::optional<PromptEncoder> opened;
    if (!pipe.prompt_encoder) opened.emplace(open_pipeline_text_encoder(pipe.dir));
    PromptEncoder& enc = pipe.prompt_encoder ? *pipe.prompt_encoder : *opened;
    EncodedPrompts p = encode_prompts<T>(enc, req.prompts, req.prompt_options, req.check_finite, hooks.warn, once);
    if (p.nonfinite) return out.nonfinite = p.nonfinite, out;
    pos = std::move(p.embeds);
    if (cfg) {
      EncodedPrompts n = encode_prompts<T>(enc, negs, req.prompt_options, req.check_finite, hooks.warn, once);
      if (n.nonfinite) return out.nonfinite = n.nonfinite, out;
      neg = std::move(n.embeds);
    }
  }
  for (size_t i = 0; i < pos.size(); ++i) check_finite_input(pos[i], "prompt_embeds." + std::to_string(i));
  if (cfg)
    for (size_t i = 0; i < neg.size(); ++i) check_finite_input(neg[i], "negative_prompt_embeds." + std::to_string(i));
  if (long_mode != LongPromptMode::None) {  // --long-prompt-mode: embeddings longer than N resampled to N rows
    for (auto& e : pos)
      if (e.shape.size() == 2) e = fit_long_prompt(e, long_mode, long_target);
    for (auto& e : neg)
      if (e.shape.size() == 2) e = fit_long_prompt(e, long_mode, long_target);
  }
  check_generate_inputs(dit_cfg, pipe.vae.config, opt, shapes_of(pos), shapes_of(neg),
                        req.latents ? &req.latents->shape : nullptr);
  const std::vector<Tensor<T>> pos_t = repeat_per_image(cast_all<T>(pos), opt.num_images_per_prompt);
  const std::vector<Tensor<T>> neg_t = cfg ? repeat_per_image(cast_all<T>(neg), opt.num_images_per_prompt)
                                           : std::vector<Tensor<T>>{};

  // Initial latents: the caller's, or torch.randn(shape, generator=Generator("cpu").manual_seed(seed)).
  out.init_latents = req.latents ? *req.latents : randn_latents(req.seed, shape);

  stage("load", dit_weights_name(req.weights));
  const std::unique_ptr<DitModel<T>> dit =
      hooks.open_dit ? hooks.open_dit(pipe.transformer, req.weights) : open_dit_model<T>(pipe.transformer, req.weights);
  out.weights = dit->weights();
  dit->set_forward_options(opt.dit);
  const VaeWeights<T> vae =
      hooks.decode ? VaeWeights<T>{} : load_vae_weights<T>(pipe.vae.config, *pipe.vae.params, VaePart::Decoder);

  Activations<T> acts;
  acts.store = false;
  acts.check_finite = req.check_finite;
  Activations<T>* trace = req.check_finite ? &acts : nullptr;
  stage("denoise", out.weights);
  Denoised<T> d = denoise(*dit, sched, opt.cfg, out.init_latents.template cast<T>(), pos_t, neg_t, hooks.on_step, trace);
  out.latents = std::move(d.latents);
  if (d.nonfinite) return out.nonfinite = d.nonfinite, out;
  if (d.steps_done < sched.steps()) return out;  // stopped by on_step: no images

  stage("decode", "");
  if (hooks.decode) {
    const Tensor<float> image = hooks.decode(pipe.vae, out.latents.template cast<float>());
    if (req.check_finite) {
      int64_t bad = 0, first = -1;
      for (int64_t i = 0; i < image.numel(); ++i)
        if (!std::isfinite(image[i]) && bad++ == 0) first = i;
      if (bad)
        return out.nonfinite = "VAE decode: image: " + std::to_string(bad) + " non-finite values, the first at flat index " +
                               std::to_string(first),
               out;
    }
    out.images = to_pil_images(image);
    return out;
  }
  const Tensor<T> image = decode_latents(pipe.vae.config, vae, out.latents, trace);
  if (acts.first_nonfinite) return out.nonfinite = "VAE decode: " + acts.first_nonfinite->describe(), out;
  out.images = to_pil_images(image.template cast<float>());
  return out;
}

#define ZIMAGE_GENERATE_INSTANTIATE(T)                                                                               \
  template Denoised<T> denoise(const DitModel<T>&, const Schedule&, const CfgOptions&, Tensor<T>,                   \
                               const std::vector<Tensor<T>>&, const std::vector<Tensor<T>>&, const StepCallback<T>&, \
                               Activations<T>*);                                                                    \
  template EncodedPrompts encode_prompts<T>(const std::string&, const std::vector<std::string>&,                     \
                                            const PromptOptions&, bool,                                              \
                                            const std::function<void(const std::string&)>&,                         \
                                            const TextEncoderBackend&);                                             \
  template EncodedPrompts encode_prompts<T>(PromptEncoder&, const std::vector<std::string>&, const PromptOptions&,   \
                                            bool, const std::function<void(const std::string&)>&,                    \
                                            const TextEncoderBackend&);                                             \
  template Generated<T> generate(const PipelineFolder&, const GenerateRequest&, const GenerateHooks<T>&);
ZIMAGE_GENERATE_INSTANTIATE(float)
ZIMAGE_GENERATE_INSTANTIATE(double)

}  // namespace zimage

#include "pipeline/synthetic_pipeline.h"

#include <memory>

#include "core/error.h"
#include "dit/synthetic_checkpoint.h"
#include "io/param_source.h"
#include "text_encoder/prompt_encoder.h"
#include "text_encoder/synthetic_qwen3.h"
#include "vae/synthetic_vae.h"

namespace zimage {

FlowMatchSchedulerConfig SyntheticPipelineSpec::turbo_scheduler_config() {
  FlowMatchSchedulerConfig s;
  s.num_train_timesteps = 1000;
  s.shift = 3.0;
  s.use_dynamic_shifting = false;
  return s;
}

SyntheticPipelineSpec SyntheticPipelineSpec::from_files(const std::string& transformer_config,
                                                        const std::string& text_encoder_config,
                                                        const std::string& vae_config, const std::string& tokenizer_dir,
                                                        uint64_t seed) {
  SyntheticPipelineSpec s;
  s.transformer = ZImageConfig::from_file(transformer_config);
  s.text_encoder = Qwen3Config::from_file(text_encoder_config);
  s.vae = load_vae_config(vae_config);
  s.tokenizer_dir = tokenizer_dir;
  s.seed = seed;
  return s;
}

PipelineFolder synthetic_pipeline(const SyntheticPipelineSpec& spec) {
  const std::string name = "synthetic(seed=" + std::to_string(spec.seed) + ")";
  spec.scheduler.validate(name + " scheduler");
  ZIMAGE_CHECK(spec.transformer.cap_feat_dim == spec.text_encoder.hidden_size,
               name + ": the transformer's cap_feat_dim " + std::to_string(spec.transformer.cap_feat_dim) +
                   " is not the text encoder's hidden_size " + std::to_string(spec.text_encoder.hidden_size));
  ZIMAGE_CHECK(spec.transformer.in_channels == spec.vae.latent_channels,
               name + ": the transformer's in_channels " + std::to_string(spec.transformer.in_channels) +
                   " is not the VAE's latent_channels " + std::to_string(spec.vae.latent_channels));
  PipelineFolder p;
  p.dir = name;
  p.transformer = ModelFolder{spec.transformer, synthetic_dit_source(spec.transformer, spec.seed)};
  spec.vae.validate(name + " vae");
  p.vae = VaeModel{spec.vae, synthetic_param_source(vae_synthetic_spec(spec.vae, spec.seed))};
  p.scheduler = spec.scheduler;
  auto te = std::make_shared<Qwen3TextEncoder>(spec.text_encoder,
                                               synthetic_param_source(qwen3_synthetic_spec(spec.text_encoder, spec.seed)));
  p.prompt_encoder = std::make_shared<PromptEncoder>(PromptEncoder::open(spec.tokenizer_dir, std::move(te)));
  p.has_text_encoder = p.has_tokenizer = true;
  return p;
}

}  // namespace zimage

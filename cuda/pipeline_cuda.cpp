#include "pipeline_cuda.h"

#include "device_tensor.h"
#include "gemm_lt.h"
#include "kernels/flash_attention.h"
#include "text_encoder/prompt_encoder.h"

namespace zimage::gpu {

CudaOptions CudaPipelineOptions::dit() const {
  CudaOptions o;
  o.dtype = dtype;
  o.attention = attention;
  return o;
}

Qwen3CudaOptions CudaPipelineOptions::text_encoder() const {
  Qwen3CudaOptions o;
  o.dtype = dtype;
  return o;
}

VaeCudaOptions CudaPipelineOptions::vae() const {
  VaeCudaOptions o;
  o.dtype = dtype;
  return o;
}

void check_cuda_environment() {
  (void)attention_from_env();
  (void)requested_gemm_algo(GemmAlgo::automatic);
  (void)requested_vae_conv(VaeConvVersion::automatic);
  (void)memory_limit();
}

GenerateHooks<float> cuda_generate_hooks(const ZImageConfig& transformer, const CudaPipelineOptions& opts) {
  check_cuda_environment();
  check_cuda_dit_options(transformer, opts.dit());  // float16, no device, the attention version
  GenerateHooks<float> h;
  const CudaOptions dit = opts.dit();
  h.open_dit = [dit](const ModelFolder& f, DitWeights) { return open_cuda_dit(f, dit); };
  h.decode = cuda_vae_decoder(opts.vae());
  h.text_encoder = cuda_text_encoder(opts.text_encoder());
  return h;
}

namespace {

// The resident transformer, lent to one generate() call (generate() owns what open_dit returns).
class LentDit final : public DitModel<float> {
 public:
  explicit LentDit(std::shared_ptr<DitModel<float>> m) : m_(std::move(m)) {}
  const ZImageConfig& config() const override { return m_->config(); }
  std::string weights() const override { return m_->weights(); }
  void set_forward_options(const ForwardOptions& o) override { m_->set_forward_options(o); }
  std::vector<Tensor<float>> forward(const DitInputs<float>& in, Activations<float>* acts) const override {
    return m_->forward(in, acts);
  }

 private:
  std::shared_ptr<DitModel<float>> m_;
};

}  // namespace

ResidentCudaPipeline::ResidentCudaPipeline(const PipelineFolder& pipe, const CudaPipelineOptions& opts,
                                           const std::vector<int>& hidden_layers)
    : pipe_(pipe), opts_(opts) {
  check_cuda_environment();
  check_cuda_dit_options(pipe.transformer.config, opts.dit());
  if (!pipe_.prompt_encoder && PromptEncoder::pipeline_has_text_encoder(pipe_.dir))
    pipe_.prompt_encoder = std::make_shared<PromptEncoder>(PromptEncoder::open_pipeline(pipe_.dir));
  if (pipe_.prompt_encoder)
    text_encoder_ = std::make_shared<CudaQwen3>(pipe_.prompt_encoder->text_encoder(), hidden_layers, opts.text_encoder());
  transformer_ = open_cuda_dit(pipe.transformer, opts.dit());
  vae_ = std::make_shared<CudaVae>(pipe.vae.config, *pipe.vae.params, VaePart::Decoder, opts.vae());
}

ResidentCudaPipeline::~ResidentCudaPipeline() = default;

GenerateHooks<float> ResidentCudaPipeline::hooks() const {
  GenerateHooks<float> h;
  h.open_dit = [m = transformer_](const ModelFolder&, DitWeights) { return std::make_unique<LentDit>(m); };
  if (text_encoder_)
    h.text_encoder = [te = text_encoder_](const Qwen3TextEncoder&, const std::vector<int>& layers) {
      te->check_hidden_layers(layers);  // before tokenization
      return PromptEncoder::HiddenStatesFn(
          [te](const Tensor<int32_t>& ids, const Tensor<int32_t>& mask, const std::vector<int>& ks) {
            return te->hidden_states(ids, mask, ks);
          });
    };
  h.decode = [vae = vae_](const VaeModel& m, const Tensor<float>& latents) {
    return vae->decode(unscale_latents(m.config, latents));
  };
  return h;
}

Generated<float> ResidentCudaPipeline::generate(const GenerateRequest& req, GenerateHooks<float> extra) const {
  const GenerateHooks<float> mine = hooks();
  extra.open_dit = mine.open_dit;
  extra.text_encoder = mine.text_encoder;
  extra.decode = mine.decode;
  return zimage::generate<float>(pipe_, req, extra);
}

}  // namespace zimage::gpu

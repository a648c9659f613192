#include "dit_model_cuda.h"
#include "dit/model_folder.h"

namespace zimage::gpu {

namespace {

class CudaDit final : public DitModel<float> {
 public:
  CudaDit(const ModelFolder& folder, const CudaOptions& opts)
      : model_(folder.config, *folder.params, opts),
        name_(std::string("cuda ") + dtype_name(opts.dtype) + " (" + describe_device() + ")") {}
  const ZImageConfig& config() const override { return model_.config(); }
  std::string weights() const override { return name_; }
  // RoPE extrapolation and --skip-context-refiner run on the GPU; linear / ntk scaling does not.
  void set_forward_options(const ForwardOptions& o) override {
    ZIMAGE_CHECK(!o.scales_captions(), "--rope-scaling linear|ntk runs on the CPU reference only (--device cpu)");
    fopts_ = o;
  }
  std::vector<Tensor<float>> forward(const DitInputs<float>& in, Activations<float>* acts) const override {
    std::vector<Tensor<float>> out = model_.forward(in, fopts_);
    if (acts && acts->check_finite)
      for (size_t i = 0; i < out.size(); ++i) record(acts, "sample." + std::to_string(i), out[i]);
    return out;
  }

 private:
  mutable CudaModel model_;  // forward reuses the model's scratch buffers and stream
  std::string name_;
  ForwardOptions fopts_;
};

}  // namespace

void check_cuda_dit_options(const ZImageConfig& cfg, const CudaOptions& opts) {
  refuse_fp16(opts.dtype);
  std::string why;
  ZIMAGE_CHECK(device_available(&why), "--device cuda: no CUDA device: " + why);
  check_attention_config(cfg, opts);
}

std::unique_ptr<DitModel<float>> open_cuda_dit(const ModelFolder& folder, const CudaOptions& opts) {
  check_cuda_dit_options(folder.config, opts);
  return std::make_unique<CudaDit>(folder, opts);
}

}  // namespace zimage::gpu

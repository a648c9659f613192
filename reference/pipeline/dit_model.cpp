#include "pipeline/dit_model.h"

#include "core/choices.h"
#include "io/held_bf16.h"
#include "dit/model_folder.h"

namespace zimage {

namespace {

template <class T>
class InMemoryDit final : public DitModel<T> {
 public:
  explicit InMemoryDit(const ZImageWeights<T>& w) : w_(&w) {}
  explicit InMemoryDit(ZImageWeights<T>&& w) : owned_(std::make_unique<ZImageWeights<T>>(std::move(w))), w_(owned_.get()) {}
  const ZImageConfig& config() const override { return w_->config; }
  std::string weights() const override { return "memory"; }
  std::vector<Tensor<T>> forward(const DitInputs<T>& in, Activations<T>* acts) const override {
    return zimage_forward(*w_, in, acts, opts_);
  }
  void set_forward_options(const ForwardOptions& o) override { opts_ = o; }

 private:
  std::unique_ptr<ZImageWeights<T>> owned_;
  const ZImageWeights<T>* w_;
  ForwardOptions opts_;
};

template <class T>
class StreamingDit final : public DitModel<T> {
 public:
  StreamingDit(const ZImageConfig& cfg, std::shared_ptr<const ParamSource> src, std::string how)
      : cfg_(cfg), src_(std::move(src)), how_(std::move(how)) {}
  const ZImageConfig& config() const override { return cfg_; }
  std::string weights() const override { return how_; }
  std::vector<Tensor<T>> forward(const DitInputs<T>& in, Activations<T>* acts) const override {
    return zimage_forward_streaming(cfg_, *src_, in, acts, opts_);
  }
  void set_forward_options(const ForwardOptions& o) override { opts_ = o; }

 private:
  ZImageConfig cfg_;
  std::shared_ptr<const ParamSource> src_;
  std::string how_;
  ForwardOptions opts_;
};

}  // namespace

constexpr ChoiceTable<DitWeights, 4> kDitWeights{{{DitWeights::Auto, "auto"},
                                                  {DitWeights::Memory, "memory"},
                                                  {DitWeights::Stream, "stream"},
                                                  {DitWeights::Bf16, "bf16"}}};

DitWeights parse_dit_weights(const std::string& s) { return parse_choice(kDitWeights, s, "--weights"); }

std::string dit_weights_name(DitWeights w) { return choice_name(kDitWeights, w); }

template <class T>
DitWeights resolve_dit_weights(DitWeights w, const ParamSource& params) {
  if (w != DitWeights::Auto) return w;
  double n = 0;
  for (const auto& [name, shape] : params.shapes()) n += double(shape_numel(shape));
  return n * sizeof(T) <= 4.0 * (1 << 30) ? DitWeights::Memory : DitWeights::Bf16;
}

template <class T>
std::unique_ptr<DitModel<T>> open_dit_model(const ModelFolder& folder, DitWeights how) {
  how = resolve_dit_weights<T>(how, *folder.params);
  if (how == DitWeights::Memory)
    return std::make_unique<InMemoryDit<T>>(load_weights<T>(folder.config, *folder.params));
  std::shared_ptr<const ParamSource> src = folder.params;
  if (how == DitWeights::Bf16) src = hold_as_bf16(src);  // names the first tensor that is not bf16-exact
  return std::make_unique<StreamingDit<T>>(folder.config, src, dit_weights_name(how));
}

template <class T>
std::unique_ptr<DitModel<T>> in_memory_dit(const ZImageWeights<T>& w) {
  return std::make_unique<InMemoryDit<T>>(w);
}

#define ZIMAGE_DIT_MODEL_INSTANTIATE(T)                                                         \
  template DitWeights resolve_dit_weights<T>(DitWeights, const ParamSource&);                   \
  template std::unique_ptr<DitModel<T>> open_dit_model<T>(const ModelFolder&, DitWeights);     \
  template std::unique_ptr<DitModel<T>> in_memory_dit<T>(const ZImageWeights<T>&);
ZIMAGE_DIT_MODEL_INSTANTIATE(float)
ZIMAGE_DIT_MODEL_INSTANTIATE(double)

}  // namespace zimage

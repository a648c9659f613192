// The transformer as the denoising loop calls it: one interface for every way
// the weights can be held. On the CPU: in memory as T, streamed block by block
// from the checkpoint, or held as bf16 and widened per block (bitwise the same
// forwards). The CUDA model implements the same interface (docs/cuda.md, "The pipeline on the GPU").
// Ref: diffusers/pipelines/z_image/pipeline_z_image.py ZImagePipeline.__call__
//      (self.transformer(latent_model_input, timestep_model_input, prompt_embeds_model_input))
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "dit/model_folder.h"
#include "dit/transformer.h"

namespace zimage {

template <class T>
class DitModel {
 public:
  virtual ~DitModel() = default;
  virtual const ZImageConfig& config() const = 0;
  // How the weights are held: "memory", "stream", "bf16" (and the CUDA model's own name).
  virtual std::string weights() const = 0;
  // ZImageTransformer2DModel.forward: one output [C, F, H, W] per input item.
  // `acts` records module outputs (check_finite: the first non-finite one).
  virtual std::vector<Tensor<T>> forward(const DitInputs<T>& in, Activations<T>* acts) const = 0;
  // Options of every later forward (--rope-scaling, --skip-context-refiner; docs/experiments.md).
  // The CPU models take any; a model that cannot honour them refuses here, in one line.
  virtual void set_forward_options(const ForwardOptions& o) {
    ZIMAGE_CHECK(o.is_default(), "the transformer '" + weights() +
                                     "' runs only the default forward (no --rope-scaling, --rope-extend or "
                                     "--skip-context-refiner)");
  }
};

// --weights: how the CPU model holds the transformer.
//   memory  load_weights<T>: every tensor as T;
//   stream  zimage_forward_streaming from the checkpoint: one block in memory;
//   bf16    streamed from a bf16-held copy (hold_as_bf16: refuses a tensor
//           that is not bf16-exact, naming it);
//   auto    memory when the parameters take at most 4 GiB as T, else bf16.
enum class DitWeights { Auto, Memory, Stream, Bf16 };
// Throws naming --weights for anything but auto, memory, stream, bf16.
DitWeights parse_dit_weights(const std::string& s);
std::string dit_weights_name(DitWeights w);
// auto resolved for this checkpoint and T (the others unchanged).
template <class T>
DitWeights resolve_dit_weights(DitWeights w, const ParamSource& params);

// The model over `folder`'s weights, held as `how` says (auto resolved).
template <class T>
std::unique_ptr<DitModel<T>> open_dit_model(const ModelFolder& folder, DitWeights how);
// Weights already in memory; the model refers to them (they must outlive it).
template <class T>
std::unique_ptr<DitModel<T>> in_memory_dit(const ZImageWeights<T>& w);

}  // namespace zimage

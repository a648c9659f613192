// Qwen3Model as Z-Image uses it: input ids and an attention mask in, one of
// transformers' hidden_states out. Weights stay where the ParamSource holds
// them (a memory-mapped safetensors file, bf16 in the real checkpoint) and
// each layer is converted to T when it runs, so a forward holds one layer
// of converted weights at a time (docs/text_encoder.md, "Memory").
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "io/param_source.h"
#include "text_encoder/qwen3_modules.h"

namespace zimage {

// Every parameter Qwen3Model(config) has, named as in its state_dict.
std::map<std::string, Shape> qwen3_parameter_shapes(const Qwen3Config& cfg);

// Resolves transformers' hidden_states index k (negative counts from the end
// of the num_hidden_layers + 1 entries) to 0..num_hidden_layers; an index
// outside [-(n+1), n] is an error naming it.
int qwen3_hidden_index(const Qwen3Config& cfg, int k);

class Qwen3TextEncoder {
 public:
  // Checks the source holds exactly Qwen3Model's parameters (a Qwen3ForCausalLM
  // checkpoint's "model." prefix is stripped and its lm_head.weight ignored).
  Qwen3TextEncoder(Qwen3Config cfg, std::shared_ptr<ParamSource> params);
  // A transformers folder: config.json + model.safetensors or
  // model.safetensors.index.json with shards.
  static Qwen3TextEncoder open_folder(const std::string& dir);

  const Qwen3Config& config() const { return cfg_; }
  const ParamSource& params() const { return *params_; }

  template <class T> Tensor<T> param(const std::string& name) const;
  template <class T> Qwen3LayerW<T> layer(int i) const;
  // Rows ids of embed_tokens.weight: [B, L] -> [B, L, C], converting only those rows.
  template <class T> Tensor<T> embed(const Tensor<int32_t>& ids) const;

  // Ref: modeling_qwen3.py Qwen3Model.forward(input_ids, attention_mask,
  // output_hidden_states=True).hidden_states[k]
  // hidden_states = (embeddings, output of layer 0, ..., output of layer n-2,
  // norm(output of layer n-1)): k = 0 the embeddings, k = -1 after the final
  // norm, k = -2 (Z-Image) the output of layer n-2 before any norm. Layers past
  // the one needed are neither loaded nor run.
  // ids, attention_mask [B, L] (mask 1 = real token, 0 = padding, on either side) -> [B, L, C].
  template <class T>
  Tensor<T> hidden_state(const Tensor<int32_t>& ids, const Tensor<int32_t>& attention_mask, int k,
                         Activations<T>* acts = nullptr) const;
  // Several hidden_states in one forward (run to the deepest one asked for), in the order of ks;
  // hidden_state(k) is hidden_states({k})[0].
  template <class T>
  std::vector<Tensor<T>> hidden_states(const Tensor<int32_t>& ids, const Tensor<int32_t>& attention_mask,
                                       const std::vector<int>& ks, Activations<T>* acts = nullptr) const;

 private:
  Qwen3Config cfg_;
  std::shared_ptr<ParamSource> params_;
};

}  // namespace zimage

// ZImageTransformer2DModel (basic mode) on the CPU: weights and forward.
#pragma once
#include <array>
#include <functional>
#include <string>
#include <vector>

#include "dit/config.h"
#include "dit/dit_knobs.h"
#include "io/param_source.h"
#include "dit/final_layer.h"
#include "dit/patchify.h"
#include "dit/timestep_embedder.h"
#include "dit/transformer_block.h"

namespace zimage {

// Every parameter of the model, structured like diffusers' modules.
template <class T>
struct ZImageWeights {
  ZImageConfig config;
  TimestepEmbedderW<T> t_embedder;
  Tensor<T> cap_embedder_norm;   // cap_embedder.0 (RMSNorm) [cap_feat_dim]
  LinearW<T> cap_embedder_linear;  // cap_embedder.1 Linear(cap_feat_dim, C)
  LinearW<T> x_embedder;         // all_x_embedder.{p}-{pf}
  FinalLayerW<T> final_layer;    // all_final_layer.{p}-{pf}
  Tensor<T> x_pad_token, cap_pad_token;  // [1, C]
  std::vector<TransformerBlockW<T>> noise_refiner, context_refiner, layers;
};

// Loads every parameter from `src` after check_complete against the config.
template <class T>
ZImageWeights<T> load_weights(const ZImageConfig& cfg, const ParamSource& src);

// Everything but the blocks (embedders, final layer, pad tokens): a few
// million parameters at Turbo size. The block vectors are left empty.
template <class T>
ZImageWeights<T> load_shared_weights(const ZImageConfig& cfg, const ParamSource& src);

// Loaders for stand-alone modules (real-size module goldens); `prefix` is the
// module path, e.g. "layers.0".
template <class T>
LinearW<T> load_linear(const ParamSource& src, const std::string& prefix, bool bias);
template <class T>
TransformerBlockW<T> load_block(const ParamSource& src, const std::string& prefix, bool modulation, bool qk_norm);
template <class T>
TimestepEmbedderW<T> load_timestep_embedder(const ParamSource& src, const std::string& prefix);
template <class T>
FinalLayerW<T> load_final_layer(const ParamSource& src, const std::string& prefix);

// Inputs of one forward, as diffusers receives them.
template <class T>
struct DitInputs {
  std::vector<Tensor<T>> x;          // [C, F, H, W] per item
  std::vector<Tensor<T>> cap_feats;  // [L_i, cap_feat_dim] per item
  Tensor<T> t;                       // [B], before t_scale
};

// Options of one forward that are not part of the model.
struct ForwardOptions {
  // Compute RoPE rows past axes_lens when positions need them (extrapolation
  // past the trained range; rows inside the table are bitwise the same).
  // Off: a position past a table is an error before any compute.
  bool rope_extend = false;
  // --rope-scaling (dit/dit_knobs.h, docs/experiments.md): Extrapolate is rope_extend; Linear
  // and Ntk change the RoPE of items whose caption pads past rope_limits' longest one.
  RopeScaling rope_scaling = RopeScaling::None;
  // --skip-context-refiner: caption features go from cap_embedder straight into the unified
  // sequence (diffusers with transformer.context_refiner = nn.ModuleList([])).
  bool skip_context_refiner = false;
  // Tables computed past axes_lens (rope_extend or Extrapolate).
  bool extends_tables() const { return rope_extend || rope_scaling == RopeScaling::Extrapolate; }
  // Linear or Ntk: captions past the limit are handled by the scaling, not refused.
  bool scales_captions() const { return rope_scaling == RopeScaling::Linear || rope_scaling == RopeScaling::Ntk; }
  bool is_default() const { return !rope_extend && rope_scaling == RopeScaling::None && !skip_context_refiner; }
};

// Checks shapes against the config, and RoPE positions against the tables
// unless rope_extend, before any compute; errors name the input tensor
// (`x.1`, `cap_feats.0`, `t`). With `captions_scaled` (--rope-scaling linear|ntk)
// only the image axes are checked.
void check_dit_inputs(const ZImageConfig& cfg, const std::vector<Shape>& x, const std::vector<Shape>& cap, const Shape& t,
                      bool rope_extend = false, bool captions_scaled = false);
// The same with a forward's options.
void check_dit_inputs(const ZImageConfig& cfg, const std::vector<Shape>& x, const std::vector<Shape>& cap, const Shape& t,
                      const ForwardOptions& opts);

// RoPE table lengths a batch needs: axes_lens, or longer with rope_extend.
std::vector<int> rope_table_lens(const ZImageConfig& cfg, const std::vector<Shape>& x, const std::vector<Shape>& cap,
                                 bool rope_extend);

// Ref: transformer_z_image.py ZImageTransformer2DModel.forward (basic mode)
// Returns sample.{i} [C, F, H, W] per item, not negated. With `acts`, records
// every module output under its diffusers path, plus the patchify.* and
// rope_embedder.* intermediates named as in docs/goldens.md.
template <class T>
std::vector<Tensor<T>> zimage_forward(const ZImageWeights<T>& w, const DitInputs<T>& in, Activations<T>* acts = nullptr,
                                      const ForwardOptions& opts = {});

// zimage_forward with the weights read from `src` as the forward goes:
// check_complete, the shared weights, then each block loaded when reached
// and freed before the next (one block in memory: 177M parameters, 0.7 GB in
// float, at Turbo size, instead of 6.15B). The same computation as
// zimage_forward(load_weights(cfg, src), ...): bitwise equal results
// (tests/golden/test_streaming_forward.cpp). With a safetensors source the
// mapped pages of each tensor are dropped after conversion
// (release_mapped_pages), so the file does not accumulate in the resident
// set. `on_block`, if set, is called with each block's path after it loads.
template <class T>
std::vector<Tensor<T>> zimage_forward_streaming(const ZImageConfig& cfg, const ParamSource& src, const DitInputs<T>& in,
                                                Activations<T>* acts = nullptr, const ForwardOptions& opts = {},
                                                const std::function<void(const std::string&)>& on_block = {});

// Ref: transformer_z_image.py ZImageTransformer2DModel.__init__ (cap_embedder)
// cap [N, cap_feat_dim] -> [N, C]: Linear(RMSNorm(cap)).
template <class T>
Tensor<T> cap_embedder(const Tensor<T>& cap, const ZImageWeights<T>& w, Activations<T>* acts = nullptr);

}  // namespace zimage

// Qwen3Model (Z-Image's text encoder) on the GPU: input ids and an attention mask in, one of
// transformers' hidden_states out, as the reference computes it.
// Twin: reference/text_encoder/qwen3_model.h Qwen3TextEncoder::hidden_state, step for step:
//   embed_tokens        kernels/embedding.h embedding_gather (ids checked on the host first, with the
//                       reference's message)
//   rotary table        qwen3_cos_sin_table (host, once per L): the reference's fp32 angles, cos/sin
//   layers 0..run-1     run_qwen3_layer (Twin: qwen3_decoder_layer):
//     input_layernorm     kernels/rms_norm_modulate.h (no scale view: RMSNorm alone), rms_norm_eps
//     q/k/v_proj          one GEMM on qkv.weight = cat(q_proj, k_proj, v_proj) [(H + 2G) D, C]
//                         (weight_layout.h); q at column 0, k at H D, v at (H + G) D, ld (H + 2G) D
//     q_norm, k_norm, RoPE kernels/qwen3_qk_norm_rope.h (half-split pairs)
//     attention           kernels/flash_attention.h with AttentionVariant{G, causal, zero rows}
//                         (grouped-query, causal + the padding mask, left-pad rows -> 0)
//     o_proj, + residual  GEMM, kernels/residual_add.h
//     post_attention_layernorm, gate/up (one GEMM on cat(gate_proj, up_proj) [2F, C]),
//     silu(gate) * up (kernels/swiglu.h), down_proj, + residual
//   norm                only for hidden_states[-1] (index n)
// Layers past the one the requested hidden state needs are neither uploaded nor run.
// Storage float32 or bfloat16 (weights and activations), fp32 math and accumulation; float16 is
// refused. In bf16 the storage rounds once per kernel output, where transformers' bf16 modules
// also round inside RMSNorm (x.to(input_dtype) before the weight); the tests hold bf16 to T4 plus
// the peer rule.
#pragma once
#include <memory>
#include <vector>

#include "forward.h"
#include "pipeline/generate.h"
#include "qwen3_rope_table.h"
#include "text_encoder/qwen3_model.h"

namespace zimage::gpu {

struct Qwen3CudaOptions {
  DType dtype = DType::F32;
  GemmOptions gemm;  // TF32 and reduced-precision reductions off by default
  AttentionVersion attention = AttentionVersion::automatic;  // v1_simt is the one that runs the variant
};

struct DeviceQwen3Layer {
  DeviceLinear qkv, o_proj, gate_up, down_proj;
  DeviceTensor input_layernorm, post_attention_layernorm, q_norm, k_norm;
};

// Scratch of one layer call, grown as needed and reused.
struct Qwen3Scratch {
  DeviceBuffer n, qkv, o, branch, h13, g;
};

// The attention variant of Qwen3's self-attention (grouped-query, causal, zero rows for keyless
// queries) and the version that runs it for this config; throws one line naming the version and
// the reason when none does (e.g. --attention mma, or a head_dim no version runs).
AttentionVariant qwen3_attention_variant(const Qwen3Config& cfg);
AttentionVersion check_qwen3_attention(const Qwen3Config& cfg, const Qwen3CudaOptions& opts);

// Refuses float16 (one line), then uploads one layer in opts.dtype.
DeviceQwen3Layer upload_qwen3_layer(const Qwen3LayerW<float>& w, DType dt, Runtime& rt);

// qwen3_cos_sin_table: qwen3_rope_table.h.

// Twin: reference/text_encoder/qwen3_modules.h qwen3_decoder_layer.
// x [B, L, C] on the device, updated in place; mask [B, L] int32 (1 = real token) or nullptr when
// every token is real; cos_sin [L, D/2, 2] fp32 on the device. Asynchronous on rt.stream().
void run_qwen3_layer(Runtime& rt, const DeviceQwen3Layer& w, const Qwen3Config& cfg, DType dt, void* x, int64_t B,
                     int64_t L, const int32_t* mask, const float* cos_sin, Qwen3Scratch& scratch,
                     const Qwen3CudaOptions& opts);

// Host-tensor wrapper of run_qwen3_layer (tests): x [B, L, C], pad_mask [B, L].
Tensor<float> qwen3_decoder_layer_cuda(const Qwen3LayerW<float>& w, const Qwen3Config& cfg, const Tensor<float>& x,
                                       const Tensor<int32_t>& pad_mask, const Qwen3CudaOptions& opts, Runtime& rt);

class CudaQwen3 {
 public:
  // Uploads embed_tokens (in row chunks: host memory holds one chunk in fp32) and the layers that
  // hidden_states[hidden_layer] needs, one at a time from the encoder's ParamSource, plus norm
  // when hidden_layer resolves to the last entry. Checks the attention config first.
  CudaQwen3(const Qwen3TextEncoder& te, int hidden_layer, const Qwen3CudaOptions& opts);
  // The same for the deepest of several hidden layers.
  CudaQwen3(const Qwen3TextEncoder& te, const std::vector<int>& hidden_layers, const Qwen3CudaOptions& opts);
  ~CudaQwen3();

  // Ref: Qwen3TextEncoder::hidden_state. ids, attention_mask [B, L] -> [B, L, C] fp32 (the
  // storage values widened). k must need no layer past the uploaded ones (one-line error).
  Tensor<float> hidden_state(const Tensor<int32_t>& ids, const Tensor<int32_t>& attention_mask, int k);
  // Ref: Qwen3TextEncoder::hidden_states: several in one forward, in the order of ks.
  std::vector<Tensor<float>> hidden_states(const Tensor<int32_t>& ids, const Tensor<int32_t>& attention_mask,
                                           const std::vector<int>& ks);

  const Qwen3Config& config() const { return cfg_; }
  int layers_uploaded() const { return int(layers_.size()); }
  // One line when hidden_states[k] for some k in ks needs a layer (or the final norm) this model
  // did not upload; else the number of layers a forward for ks runs.
  int check_hidden_layers(const std::vector<int>& ks) const;
  Runtime& runtime() { return *rt_; }

 private:
  Qwen3Config cfg_;
  Qwen3CudaOptions opts_;
  std::unique_ptr<Runtime> rt_;
  DeviceTensor embed_tokens_, norm_;
  std::vector<DeviceQwen3Layer> layers_;
  Qwen3Scratch scratch_;
};

// generate()'s GenerateHooks::text_encoder and encode_prompts' backend on the GPU (`zimage generate
// --device cuda`, `zimage encode --device cuda`): the encoder's weights uploaded once for its
// hidden layers (CudaQwen3), then hidden_states per batch; freed with the last copy of the function.
TextEncoderBackend cuda_text_encoder(const Qwen3CudaOptions& opts);

}  // namespace zimage::gpu

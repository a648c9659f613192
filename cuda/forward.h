// ZImageTransformer2DModel (basic mode) on the GPU: the same model API as the reference
// (reference/dit/transformer.h): ZImageWeights<float> or a ParamSource in, DitInputs<float>
// in, sample.{i} [C, F, H, W] fp32 out (not negated).
// Twin: reference/dit/transformer.cpp forward_impl, step for step: t_embedder, image patchify +
// x_embedder + x_pad_token + noise_refiner, cap_embedder + cap_pad_token + context_refiner,
// [image, caption] through the layers, final layer, unpatchify. (Queued in another order: both
// embedders and every upload first, then the refiners, so that no host synchronization falls
// inside the step; the image and caption streams are independent until they are unified.) Same
// padding to multiples of 32, same position ids (reference pad_with_ids), same key masks (only
// when item lengths differ), same check_dit_inputs (shapes and RoPE positions, identical one-line errors) before any compute.
// Storage dtype float32 or bfloat16 (weights and activations), fp32 math and accumulation
// everywhere; float16 is refused (refuse_fp16, docs/cuda.md). Fused weight layouts: weight_layout.h.
#pragma once
#include <memory>
#include <vector>

#include "device_tensor.h"
#include "gemm_lt.h"
#include "kernels/flash_attention.h"
#include "kernels/rope_gather.h"
#include "step_graph.h"
#include "dit/transformer.h"
#include "dit/patchify.h"

namespace zimage::gpu {

struct CudaOptions {
  DType dtype = DType::F32;
  GemmOptions gemm;  // TF32 and reduced-precision reductions off by default
  AttentionVersion attention = AttentionVersion::automatic;  // flash_attention.h: the dispatcher
  bool graph = true;  // the step's blocks as a CUDA graph, replayed (step_graph.h; ZIMAGE_CUDA_GRAPH=0: off)
};

// Throws the one-line fp16 refusal when dt is float16; does nothing otherwise.
void refuse_fp16(DType dt);
// Throws one line when no attention version (opts.attention, or the dispatcher's choice) runs this
// config's head_dim in opts.dtype: called by CudaModel before anything is uploaded.
void check_attention_config(const ZImageConfig& cfg, const CudaOptions& opts);

struct DeviceLinear {
  DeviceTensor weight, bias;  // [out, in], [out] or empty
  int64_t out = 0, in = 0;
  const void* b() const { return bias.empty() ? nullptr : bias.data(); }
};

struct DeviceBlock {
  DeviceLinear to_qkv, to_out, w13, w2, adaLN_modulation;  // to_qkv, w13: weight_layout.h
  DeviceTensor norm_q, norm_k, attention_norm1, attention_norm2, ffn_norm1, ffn_norm2;
  bool modulation = true;
  int64_t C = 0, F = 0;
};

// Scratch of the block calls, grown as needed and reused (mod: two blocks' modulation rows).
struct BlockScratch {
  DeviceBuffer mod[2], h, qkv, o, a, h13, g;
};
// Grows sc to what run_blocks needs for `rows` = B * L tokens of width C and FFN width F.
void reserve_block_scratch(BlockScratch& sc, DType dt, int64_t rows, int64_t B, int64_t C, int64_t F);

// One token stream as the blocks see it (device pointers; seqlens on the host).
struct BlockStream {
  void* x = nullptr;  // [B, L, C] in the storage dtype, updated in place
  int64_t B = 0, L = 0;
  const int32_t* mask = nullptr;                  // [B, L] int32 key mask, or nullptr
  const std::vector<int64_t>* seqlens = nullptr;  // its item lengths (key_mask(seqlens)), or nullptr when unknown
  const float* freqs = nullptr;                   // [B, L, D/2, 2] fp32
  const void* adaln = nullptr;                    // [B, A] for modulated blocks, else nullptr
};

// Uploads of Linear weights in dt (shared with the Qwen3 model, qwen3_cuda.h).
DeviceLinear upload_linear(const LinearW<float>& l, DType dt, Runtime& rt);
// Row-concatenated weights (weight_layout.h concat_linear_weights) and biases (all or none).
DeviceLinear upload_fused_linear(const std::vector<const LinearW<float>*>& ls, DType dt, Runtime& rt);

DeviceBlock upload_block(const TransformerBlockW<float>& w, DType dt, Runtime& rt);

// Twin: reference/dit/transformer.cpp forward_impl's loops over a stack (noise_refiner,
// context_refiner, layers): transformer_block on each of blocks[0..n) in order, x updated in place.
// Each block's last kernel (the gated FFN residual) also writes the next block's
// attention_norm1(x) * (1 + scale_msa) (gated_residual_rms_norm), so the next block's adaLN
// Linear runs before it. Asynchronous on rt.stream(); no host synchronization.
void run_blocks(Runtime& rt, const DeviceBlock* blocks, size_t n, DType dt, const BlockStream& in, int n_heads,
                double norm_eps, BlockScratch& scratch, const CudaOptions& opts);

// Twin: reference/dit/transformer_block.h transformer_block (run_blocks of one block).
// x [B, L, C] on the device, updated in place; mask [B, L] int32 or nullptr, with seqlens its item
// lengths on the host (key_mask(seqlens); nullptr when unknown); freqs [B, L, D/2, 2] fp32; adaln
// [B, A] (modulated blocks) or nullptr. Asynchronous on rt.stream().
void run_block(Runtime& rt, const DeviceBlock& w, DType dt, void* x, int64_t B, int64_t L, const int32_t* mask,
               const std::vector<int64_t>* seqlens, const float* freqs, const void* adaln, int n_heads, double norm_eps, BlockScratch& scratch,
               const CudaOptions& opts);

// Host-tensor wrapper of run_block (tests): uploads x, freqs, adaln and the mask, runs, downloads.
Tensor<float> transformer_block_cuda(const TransformerBlockW<float>& w, const Tensor<float>& x, const KeyMask* mask,
                                     const Tensor<float>& freqs, const Tensor<float>* adaln, int n_heads,
                                     double norm_eps, const CudaOptions& opts, Runtime& rt);

class CudaModel {
 public:
  // Uploads every parameter in opts.dtype (refuses float16).
  CudaModel(const ZImageWeights<float>& w, const CudaOptions& opts);
  // check_complete, then the shared weights and one block at a time from `src` (host memory holds
  // one block in fp32, as zimage_forward_streaming does).
  CudaModel(const ZImageConfig& cfg, const ParamSource& src, const CudaOptions& opts);
  ~CudaModel();

  std::vector<Tensor<float>> forward(const DitInputs<float>& in, const ForwardOptions& fopts = {});
  const ZImageConfig& config() const { return cfg_; }
  // Changes the attention version of later forwards (check_attention_config first: throws one line
  // when it cannot run this config).
  void set_attention(AttentionVersion v);
  // Turns the CUDA graph of later forwards on or off (CudaOptions::graph).
  void set_graph(bool on) { opts_.graph = on; }
  // Changes how later forwards choose their cuBLASLt algorithms (gemm_lt.h GemmAlgo); a captured
  // graph of the other choice is not replayed (the graph key holds the resolved choice).
  void set_gemm_algo(GemmAlgo a) { opts_.gemm.algo = a; }
  Runtime& runtime() { return *rt_; }
  // What the step's CUDA graphs did so far (step_graph.h): eager steps, captures, replays.
  const GraphCounts& graph_counts() const { return graphs_->counts(); }

 private:
  // One token stream on the device (image, caption, or both unified), defined in forward.cpp.
  struct Stream;
  void upload_shared(const ZImageWeights<float>& w);
  void make_step_state();
  // The pinned arena and staging the step's copies need, made before anything is queued.
  void stage_step(const DitInputs<float>& in, const std::vector<PaddedIds>& cap_ids);
  // The steps of forward(), each the twin of a step of reference/dit/transformer.cpp forward_impl.
  // timestep_embedder writes adaln_ and returns it.
  const DeviceTensor& timestep_embedder(const Tensor<float>& t);
  // embed_* read the RoPE tables rope_buf_ (forward() uploads them when their lengths change).
  void embed_image(const DitInputs<float>& in, const std::vector<PaddedIds>& ids, Stream& out);
  void embed_caption(const DitInputs<float>& in, const std::vector<PaddedIds>& ids, Stream& out);
  void unified_buffers(const Stream& x, const Stream& cap, Stream& u);
  void unify(const Stream& x, const Stream& cap, Stream& u);
  std::vector<Tensor<float>> final_layer(const Stream& u, const DeviceTensor& adaln, const DitInputs<float>& in);

  ZImageConfig cfg_;
  CudaOptions opts_;
  std::unique_ptr<Runtime> rt_;
  DeviceLinear t_mlp0_, t_mlp2_, cap_linear_, x_embedder_, final_linear_, final_adaln_;
  DeviceTensor cap_norm_, x_pad_token_, cap_pad_token_;
  std::vector<DeviceBlock> noise_refiner_, context_refiner_, layers_;
  // The step's device state, kept between forwards (every address a captured graph holds).
  std::unique_ptr<Stream> x_, cap_, u_;  // image, caption, unified
  DeviceTensor adaln_;                    // [B, A]
  DeviceBuffer rope_buf_;                 // the RoPE tables, fp32, the three axes concatenated
  RopeAxes rope_axes_;
  ShapeMemo rope_memo_;                   // the table lengths rope_buf_ holds
  int64_t rope_generation_ = 0;           // moves at each upload of the tables
  BlockScratch scratch_;
  std::unique_ptr<StepGraphs> graphs_;
};

}  // namespace zimage::gpu

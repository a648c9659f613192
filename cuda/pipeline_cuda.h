// The pipeline on the GPU, two ways of holding its models (docs/cuda.md, "The pipeline on the GPU"):
//
//   cuda_generate_hooks   what `zimage generate --device cuda` hands generate(): each model loaded
//                         when generate() needs it, the text encoder released before the transformer
//                         loads, the VAE loaded after the loop. The lean flow: the memory goal (the
//                         Turbo pipeline at 1024x1024 in bf16 within 24 GB) is measured on it.
//   ResidentCudaPipeline  the three models uploaded once and kept; generate() then runs with hooks
//                         that hand it those models. Images after images with the weights loaded:
//                         the speed goal (prompt to PNG in under 1 s on an H200) is timed on it.
//
// Both run generate() itself (reference/pipeline/generate.h): the same checks, tokenization, loop,
// scheduler, CFG and 8-bit conversion as the CPU path; only the three models are the GPU's.
// Twin: reference/pipeline/generate.h generate (with the CPU models).
#pragma once
#include <memory>
#include <string>

#include "dit_model_cuda.h"
#include "pipeline/generate.h"
#include "qwen3_cuda.h"
#include "vae_cuda.h"

namespace zimage::gpu {

struct CudaPipelineOptions {
  DType dtype = DType::F32;  // storage of all three models (float32 or bfloat16; float16 is refused)
  AttentionVersion attention = AttentionVersion::automatic;  // the transformer's (the text encoder runs v1_simt)
  CudaOptions dit() const;
  Qwen3CudaOptions text_encoder() const;
  VaeCudaOptions vae() const;
};

// The CUDA path's environment variables parsed now: ZIMAGE_ATTENTION, ZIMAGE_GEMM_ALGO,
// ZIMAGE_VAE_CONV and ZIMAGE_CUDA_MEMORY_LIMIT. Each is otherwise read at its first use (the VAE's
// after the whole denoising loop), so a bad value would be refused only after the work before it;
// here it is one line naming the variable, before any file is read or any device is asked.
void check_cuda_environment();

// Refuses (one line, before anything is read or uploaded) a bad CUDA environment variable, float16,
// a machine without a usable device, and an attention version that cannot run the transformer's
// head_dim; then the hooks.
GenerateHooks<float> cuda_generate_hooks(const ZImageConfig& transformer, const CudaPipelineOptions& opts);

class ResidentCudaPipeline {
 public:
  // Uploads the pipeline's text encoder (the layers that hidden_layers need; none when the pipeline
  // has no text encoder: requests then give prompt embeddings), transformer and VAE decoder, in that
  // order. Keeps a copy of `pipe` (shared weight sources) with its tokenizer and text encoder open,
  // so an image reads no file. A request for a deeper hidden layer is refused, in one line, before
  // tokenization. Not for concurrent generate() calls (the encoder's backend is set per call).
  ResidentCudaPipeline(const PipelineFolder& pipe, const CudaPipelineOptions& opts,
                       const std::vector<int>& hidden_layers = {-2});
  ~ResidentCudaPipeline();
  ResidentCudaPipeline(const ResidentCudaPipeline&) = delete;
  ResidentCudaPipeline& operator=(const ResidentCudaPipeline&) = delete;

  // generate() on the pipeline with the resident models; `extra` adds on_stage, on_step and warn
  // (its model hooks are replaced).
  Generated<float> generate(const GenerateRequest& req, GenerateHooks<float> extra = {}) const;
  // The hooks that hand generate() the resident models.
  GenerateHooks<float> hooks() const;
  const PipelineFolder& pipeline() const { return pipe_; }

 private:
  PipelineFolder pipe_;
  CudaPipelineOptions opts_;
  std::shared_ptr<CudaQwen3> text_encoder_;
  std::shared_ptr<DitModel<float>> transformer_;
  std::shared_ptr<CudaVae> vae_;
};

}  // namespace zimage::gpu

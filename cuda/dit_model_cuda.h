// The CUDA transformer behind the denoising loop's model interface
// (reference/pipeline/dit_model.h): what `zimage generate --device cuda` and
// generate()'s GenerateHooks::open_dit take. The loop, CFG, the scheduler and
// the latents stay on the host in fp32 (as diffusers keeps its latents fp32);
// each step uploads the latents and the caption features and downloads the
// model output (docs/cuda.md, "The pipeline on the GPU").
// Twin: reference/pipeline/dit_model.cpp InMemoryDit (zimage_forward), through CudaModel::forward.
#pragma once
#include <memory>
#include <string>

#include "forward.h"
#include "pipeline/dit_model.h"
#include "dit/model_folder.h"

namespace zimage::gpu {

// Refuses, one line each naming the option, before anything is read or
// uploaded: float16 storage (refuse_fp16), a machine without a usable CUDA
// device ("--device cuda: no CUDA device: <why>"), and an attention version
// that cannot run the config's head_dim (check_attention_config).
void check_cuda_dit_options(const ZImageConfig& cfg, const CudaOptions& opts);

// check_cuda_dit_options, then the folder's transformer uploaded block by
// block in opts.dtype (host memory holds one block in fp32). weights() names
// the device and the storage dtype, e.g. "cuda bfloat16 (NVIDIA H200, ...)".
// With Activations::check_finite the forward screens its outputs ("sample.{i}"):
// the GPU path traces no module inside the transformer.
std::unique_ptr<DitModel<float>> open_cuda_dit(const ModelFolder& folder, const CudaOptions& opts);

}  // namespace zimage::gpu

// What zimage generate's options ask for, parsed once for generate and for sweep (whose every cell is
// a generate run with some options changed): the request's numbers and knobs, the device, the dtype,
// and the hooks --device cuda puts on the GPU.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cli.h"
#include "pipeline/generate.h"
#include "dit/model_folder.h"
#ifdef ZIMAGE_WITH_CUDA
#include "dit_model_cuda.h"  // cuda/dit_model_cuda.h
#endif

namespace zimage::cli {

// generate's options other than its inputs and outputs (--model, --prompt, --negative-prompt,
// --prompt-embeds, --negative-prompt-embeds, --latents, --out, --save-latents): the ones a sweep
// takes as its fixed baseline.
const std::vector<std::string>& generate_option_flags();

struct GenerateSetup {
  GenerateRequest req;  // every number, knob and the seed; prompts, embeddings and latents not read
  std::string device = "cpu", dtype = "float32";
#ifdef ZIMAGE_WITH_CUDA
  gpu::CudaOptions cuda;
#endif
};

// Every value of generate_option_flags() checked, one line naming the flag; reads no file. With
// --device cuda it also checks there is a GPU (and refuses without a CUDA build).
GenerateSetup parse_generate_setup(const Args& args);

// What --device cuda puts on the GPU: transformer, VAE decode, text encoder. All empty for cpu.
struct DeviceHooks {
  std::function<std::unique_ptr<DitModel<float>>(const ModelFolder&, DitWeights)> open_dit;
  std::function<Tensor<float>(const VaeModel&, const Tensor<float>&)> decode;
  TextEncoderBackend text_encoder;
};
// Checks the attention version against the pipeline's transformer config (one line) for cuda.
DeviceHooks device_hooks(const GenerateSetup& s, const PipelineFolder& pipe);
// Says where the computation ran, for the "producer" metadata of written files; encodes_prompts:
// whether the text encoder ran (--prompt), not --prompt-embeds.
std::string producer(const GenerateSetup& s, bool encodes_prompts);

}  // namespace zimage::cli

// A full-size Z-Image transformer checkpoint with synthetic weights, in the
// real diffusers layout: DIR/config.json, DIR/diffusion_pytorch_model-0000k-of-0000n.safetensors
// and DIR/diffusion_pytorch_model.safetensors.index.json ({"metadata":
// {"total_size"}, "weight_map"}), as save_pretrained writes a sharded model.
// Stands in for the real 24.6 GB download in tests of loading, inspect and
// memory (tools/test-fullsize.sh), never for numerics against diffusers.
//
// Values: the counter-based generator (io/synthetic.h) with the golden
// dumper's rule (tools/golden/synthetic.py default_rule: RMSNorm weights
// 1 +- 0.2, biases +- 0.05, Linear weights +- 1/sqrt(fan_in), pad tokens
// +- 1), then rounded to bf16 (nearest even), so that, like Z-Image-Turbo's
// fp32 shards, every fp32 value is bf16-exact. The F32 and BF16 variants hold
// the same numbers.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "io/param_source.h"
#include "io/safetensors.h"
#include "dit/config.h"

namespace zimage {

// (offset, scale) of a parameter, as synthetic.py default_rule gives them.
SyntheticRange dit_synthetic_rule(const std::string& name, const Shape& shape);

// The synthetic value block of one parameter, bf16-rounded, as fp32.
void synthetic_bf16_values(uint64_t seed, const std::string& name, const Shape& shape, float* out);

// Every parameter of ZImageTransformer2DModel(cfg) with these values (synthetic_bf16_values), each
// generated when loaded, nothing stored: the checkpoint write_synthetic_checkpoint writes, held in
// memory (the GPU benchmarks' real-size transformer). fp32 and bf16 runs hold the same weights.
std::shared_ptr<ParamSource> synthetic_dit_source(const ZImageConfig& cfg, uint64_t seed);

struct SyntheticCheckpointOptions {
  uint64_t seed = 0;
  DType dtype = DType::F32;             // F32 or BF16
  int64_t max_shard_bytes = int64_t(5) << 30;  // huggingface's default max_shard_size "5GB" (GiB here)
};

// Writes the folder (created if missing; existing files are replaced, each via
// FILE.tmp and a rename). `progress` gets (bytes written, total bytes).
// Returns the total tensor bytes.
int64_t write_synthetic_checkpoint(const ZImageConfig& cfg, const std::string& dir, const SyntheticCheckpointOptions& opt,
                                   const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace zimage

// The files `zimage generate` and `zimage encode` read and write around the
// pipeline: prompt embeddings (prompt_embeds.{i} / negative_prompt_embeds.{i},
// F32 [L_i, D]) and latents (latents.init, latents). Errors name the file and
// the tensor.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace zimage {

// prompt_embeds.{i}; with `negative`, negative_prompt_embeds.{i} when the file
// holds them (a pipeline golden holds both kinds), else prompt_embeds.{i}.
// Each F32 and finite.
std::vector<Tensor<float>> read_prompt_embeds(const std::string& path, bool negative);

// 'latents' (or 'latents.init'), F32 and finite.
Tensor<float> read_latents(const std::string& path);

// {stem}{i} per embedding, F32, with the metadata given.
void write_prompt_embeds(const std::string& path, const std::vector<Tensor<float>>& embeds,
                         const std::map<std::string, std::string>& metadata, const std::string& stem = "prompt_embeds.");

// latents.init and latents, F32 (a double run's latents rounded), with the metadata given.
template <class T>
void write_latents(const std::string& path, const Tensor<float>& init, const Tensor<T>& latents,
                   const std::map<std::string, std::string>& metadata);

}  // namespace zimage

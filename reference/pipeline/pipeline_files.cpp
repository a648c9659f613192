#include "pipeline/pipeline_files.h"

#include <cmath>

#include "io/safetensors.h"

namespace zimage {

namespace {

Tensor<float> finite_f32(const TensorView& v, const std::string& path) {
  ZIMAGE_CHECK(v.dtype == DType::F32, path + ": '" + v.name + "' is " + dtype_name(v.dtype) + ", expected F32");
  Tensor<float> t = to_tensor<float>(v);
  for (int64_t i = 0; i < t.numel(); ++i)
    ZIMAGE_CHECK(std::isfinite(t[i]), path + ": tensor '" + v.name + "' holds " + std::to_string(t[i]) +
                                          " at flat index " + std::to_string(i) + " (inputs must be finite)");
  return t;
}

}  // namespace

std::vector<Tensor<float>> read_prompt_embeds(const std::string& path, bool negative) {
  const auto f = SafetensorsFile::open(path);
  std::string stem = "prompt_embeds.";
  if (negative && f->contains("negative_prompt_embeds.0")) stem = "negative_prompt_embeds.";
  std::vector<Tensor<float>> out;
  for (int i = 0; f->contains(stem + std::to_string(i)); ++i) out.push_back(finite_f32(f->view(stem + std::to_string(i)), path));
  ZIMAGE_CHECK(!out.empty(), path + ": no tensor '" + stem + "0' (embeddings are stored as " + stem + "{i}, [tokens, dim])");
  return out;
}

Tensor<float> read_latents(const std::string& path) {
  const auto f = SafetensorsFile::open(path);
  const std::string name = f->contains("latents") ? "latents" : "latents.init";
  ZIMAGE_CHECK(f->contains(name), path + ": no tensor 'latents' (or 'latents.init')");
  return finite_f32(f->view(name), path);
}

void write_prompt_embeds(const std::string& path, const std::vector<Tensor<float>>& embeds,
                         const std::map<std::string, std::string>& metadata, const std::string& stem) {
  SafetensorsWriter w;
  for (size_t i = 0; i < embeds.size(); ++i) w.add(stem + std::to_string(i), embeds[i]);
  for (const auto& [k, v] : metadata) w.set_metadata(k, v);
  w.write(path);
}

template <class T>
void write_latents(const std::string& path, const Tensor<float>& init, const Tensor<T>& latents,
                   const std::map<std::string, std::string>& metadata) {
  SafetensorsWriter w;
  for (const auto& [k, v] : metadata) w.set_metadata(k, v);
  w.add("latents.init", init, DType::F32);
  w.add("latents", latents, DType::F32);
  w.write(path);
}

template void write_latents(const std::string&, const Tensor<float>&, const Tensor<float>&,
                            const std::map<std::string, std::string>&);
template void write_latents(const std::string&, const Tensor<float>&, const Tensor<double>&,
                            const std::map<std::string, std::string>&);

}  // namespace zimage

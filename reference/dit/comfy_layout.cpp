#include "dit/comfy_layout.h"

#include <map>
#include <utility>
#include <vector>

namespace zimage {

namespace {

// Ref: single_file_utils.py convert_z_image_transformer_checkpoint_to_diffusers, Z_IMAGE_KEYS_RENAME_DICT
// (a dict: Python keeps insertion order, and the loop applies the entries in that order).
const std::vector<std::pair<std::string, std::string>> kRename = {
    {"final_layer.", "all_final_layer.2-1."},
    {"x_embedder.", "all_x_embedder.2-1."},
    {".attention.out.bias", ".attention.to_out.0.bias"},
    {".attention.k_norm.weight", ".attention.norm_k.weight"},
    {".attention.q_norm.weight", ".attention.norm_q.weight"},
    {".attention.out.weight", ".attention.to_out.0.weight"},
    {"model.diffusion_model.", ""},
};
const char* const kQkv = ".attention.qkv.weight";

// Python's str.replace(old, new): every non-overlapping occurrence, left to right.
std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
  return s;
}

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r' || c == '\0') c = ' ';
  return "'" + s + "'";
}

class ComfySource : public MappedParamSource {
 public:
  explicit ComfySource(std::shared_ptr<SafetensorsFile> f) : file_(std::move(f)) {
    const std::string& path = file_->path();
    auto add = [&](const std::string& name, TensorView v, const std::string& from) {
      ZIMAGE_CHECK(views_.emplace(name, std::move(v)).second,
                   path + ": key " + one_line(from) + " maps to " + one_line(name) + ", which another key already maps to");
    };
    for (const std::string& key : file_->names()) {
      const TensorView& v = file_->view(key);
      ZIMAGE_CHECK(dtype_is_float(v.dtype), path + ": tensor " + one_line(key) + " has dtype " + dtype_name(v.dtype) +
                                                "; parameters must be F64, F32, BF16 or F16");
      const std::string name = comfy_rename(key);
      if (name == "norm_final.weight") continue;  // step 2
      const size_t q = name.find(kQkv);
      if (q == std::string::npos) {
        add(name, v, key);
        continue;
      }
      // Step 3: torch.chunk(qkv, 3, dim=0). diffusers would give uneven chunks for
      // a first dimension that is not a multiple of 3; no Z-Image model has one.
      ZIMAGE_CHECK(v.shape.size() == 2 && v.shape[0] % 3 == 0 && v.shape[0] > 0,
                   path + ": fused tensor " + one_line(key) + " has shape " + shape_str(v.shape) +
                       ", expected [3 * dim, dim]");
      const char* parts[3] = {".attention.to_q.weight", ".attention.to_k.weight", ".attention.to_v.weight"};
      for (int k = 0; k < 3; ++k) {
        TensorView part = v;
        part.shape = {v.shape[0] / 3, v.shape[1]};
        part.nbytes = v.nbytes / 3;
        part.data = v.data + size_t(k) * part.nbytes;
        part.name = key + "[" + std::to_string(k) + "/3]";
        add(name.substr(0, q) + parts[k] + name.substr(q + std::string(kQkv).size()), part, key);
      }
    }
  }

  std::map<std::string, Shape> shapes() const override {
    std::map<std::string, Shape> out;
    for (const auto& [name, v] : views_) out[name] = v.shape;
    return out;
  }
  std::string describe() const override { return file_->path() + " (ComfyUI layout)"; }

 private:
  const TensorView& find(const std::string& name) const override {
    auto it = views_.find(name);
    ZIMAGE_CHECK(it != views_.end(), describe() + ": no tensor " + one_line(name));
    return it->second;
  }
  std::shared_ptr<SafetensorsFile> file_;  // keeps the mapping alive
  std::map<std::string, TensorView> views_;
};

}  // namespace

std::string comfy_rename(const std::string& key) {
  std::string s = key;
  for (const auto& [from, to] : kRename) s = replace_all(s, from, to);
  return s;
}

bool is_comfy_zimage_file(const SafetensorsFile& f) {
  // Ref: single_file_utils.py CHECKPOINT_KEY_NAMES["z-image-turbo"]. The unprefixed key is also
  // diffusers' own name; what tells the layouts apart then is the fused qkv or the short names.
  if (f.contains("model.diffusion_model.layers.0.adaLN_modulation.0.weight")) return true;
  if (!f.contains("layers.0.adaLN_modulation.0.weight")) return false;
  return f.contains("layers.0.attention.qkv.weight") || f.contains("final_layer.linear.weight") ||
         f.contains("x_embedder.weight");
}

std::shared_ptr<ParamSource> open_comfy_single_file(const std::string& path) {
  return std::make_shared<ComfySource>(SafetensorsFile::open(path));
}

}  // namespace zimage

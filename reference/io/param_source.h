// Where parameters come from: a diffusers model folder (safetensors, single
// file or shards) or the counter-based synthetic generator. The model loader
// asks a ParamSource for every parameter the config implies and nothing else.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/safetensors.h"

namespace zimage {

class ParamSource {
 public:
  virtual ~ParamSource() = default;
  // Every tensor the source holds, with its shape.
  virtual std::map<std::string, Shape> shapes() const = 0;
  // The tensor's values widened to double (exact for F32/BF16/F16/F64).
  virtual Tensor<double> load(const std::string& name) const = 0;
  virtual std::string describe() const = 0;  // for messages: a path or "synthetic(seed=...)"
  // The same values as load(name).cast<float>() (bitwise: every stored float
  // dtype widens exactly, and F64 rounds once either way), without the double
  // copy: a [10240, 3840] weight costs 157 MB, not 157 + 315 MB.
  virtual Tensor<float> load_float(const std::string& name) const { return load(name).cast<float>(); }
  // The stored bytes of a tensor held in a mapped file (dtype, shape, data),
  // or nullptr for sources that compute their values (synthetic, held copies).
  // zimage inspect reads dtypes and bf16-exactness through it.
  virtual const TensorView* view(const std::string& name) const {
    (void)name;
    return nullptr;
  }
};

// A source whose tensors are views into mapped safetensors files: load() and load_float() widen
// the view, then drop its pages (release_mapped_pages below), so converting a model tensor by
// tensor keeps only the tensors being converted resident.
class MappedParamSource : public ParamSource {
 public:
  Tensor<double> load(const std::string& name) const override;
  Tensor<float> load_float(const std::string& name) const override;
  const TensorView* view(const std::string& name) const override { return &find(name); }

 protected:
  // The view of `name`; throws zimage::Error naming the source and the tensor when it has none.
  virtual const TensorView& find(const std::string& name) const = 0;
};

// Drops the pages of a mapped tensor from this process (madvise
// MADV_DONTNEED on the page-aligned range covering it): a read-only file
// mapping re-reads them from the page cache or the file when touched again,
// so converting tensors one after another keeps the resident set to the
// tensors being converted instead of every file page touched so far.
// safetensors-backed sources call it after every load(). Only for views
// into a file opened with SafetensorsFile::open (a mapping): on memory of
// SafetensorsFile::from_bytes it would zero the bytes.
void release_mapped_pages(const TensorView& v);

// Throws zimage::Error naming the first missing tensor, unexpected tensor,
// or tensor whose shape does not match the config. `model` names the class
// in the unexpected-tensor message.
void check_complete(const ParamSource& src, const std::map<std::string, Shape>& expected,
                    const std::string& model = "ZImageTransformer2DModel");

// The tensors of any diffusers weight folder, as save_pretrained writes them:
// DIR/diffusion_pytorch_model.safetensors, or the shards listed in
// DIR/diffusion_pytorch_model.safetensors.index.json (index and shards must
// agree exactly). Every tensor must be a float dtype. No config is read and
// no completeness check is made: callers check against their model.
// `stem` names the files: transformers saves model.safetensors and
// model.safetensors.index.json (the text encoder passes "model").
std::shared_ptr<ParamSource> open_weight_folder(const std::string& dir, const std::string& stem = "diffusion_pytorch_model");

// Counter-based synthetic weights (see io/synthetic.h) described by the
// JSON a golden stores in its "synthetic_weights" metadata.
std::shared_ptr<ParamSource> synthetic_param_source(const std::string& spec_json);

// The (offset, scale) a model's synthetic rule gives one parameter.
struct SyntheticRange {
  double offset, scale;
};
using SyntheticRule = SyntheticRange (*)(const std::string& name, const Shape& shape);

// That JSON, {"seed": seed, "tensors": {name: {"shape", "offset", "scale"}}},
// for every parameter in shapes, with its range from rule: the one writer of
// the spec the dumpers store (the one tools/golden/synthetic.py fill_module returns).
std::string synthetic_spec_json(uint64_t seed, const std::map<std::string, Shape>& shapes, SyntheticRule rule);

}  // namespace zimage

// The parameter list of ZImageTransformer2DModel, completeness checks, and
// the safetensors-backed ParamSource of a diffusers model folder.
#include "io/param_source.h"

#include <sys/mman.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "core/json_file.h"
#include "io/safetensors.h"

namespace zimage {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
// A name for a message, quoted and on one line (tensor and file names come
// from the files and may hold newlines, or a NUL that would end what()).
std::string quote(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r' || c == '\0') c = ' ';
  return "'" + s + "'";
}
}  // namespace

void check_complete(const ParamSource& src, const std::map<std::string, Shape>& expected, const std::string& model) {
  const std::map<std::string, Shape> have = src.shapes();
  auto first_of = [](const std::vector<std::string>& names) {
    std::string s = quote(names.front());
    if (names.size() > 1) s += " (and " + std::to_string(names.size() - 1) + " more)";
    return s;
  };
  std::vector<std::string> missing, unexpected;
  for (const auto& [name, shape] : expected) {
    auto it = have.find(name);
    if (it == have.end()) {
      missing.push_back(name);
    } else {
      ZIMAGE_CHECK(it->second == shape, src.describe() + ": tensor " + quote(name) + " has shape " + shape_str(it->second) +
                                            ", the config implies " + shape_str(shape));
    }
  }
  for (const auto& [name, shape] : have)
    if (!expected.count(name)) unexpected.push_back(name);
  ZIMAGE_CHECK(missing.empty(), src.describe() + ": missing tensor " + first_of(missing) + " (expected shape " +
                                    shape_str(expected.at(missing.front())) + ")");
  ZIMAGE_CHECK(unexpected.empty(), src.describe() + ": unexpected tensor " + first_of(unexpected) +
                                       ": not a parameter of " + model + " with this config");
}

// ---------------------------------------------------------------- model folder

void release_mapped_pages(const TensorView& v) {
  if (v.data == nullptr || v.nbytes == 0) return;
  static const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(v.data) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(v.data) + v.nbytes + page - 1) / page * page;
  // Advice only: a failure (EINVAL on an odd mapping) leaves the pages resident, which is harmless.
  (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

Tensor<double> MappedParamSource::load(const std::string& name) const {
  const TensorView& v = find(name);
  Tensor<double> t = to_tensor<double>(v);
  release_mapped_pages(v);
  return t;
}

Tensor<float> MappedParamSource::load_float(const std::string& name) const {
  const TensorView& v = find(name);
  Tensor<float> t = to_tensor<float>(v);
  release_mapped_pages(v);
  return t;
}

namespace {

// Tensors spread over one or more mapped safetensors files; all float.
class SafetensorsParamSource : public MappedParamSource {
 public:
  SafetensorsParamSource(std::string describe, std::vector<std::shared_ptr<SafetensorsFile>> files)
      : describe_(std::move(describe)), files_(std::move(files)) {
    for (const auto& f : files_) {
      for (const std::string& name : f->names()) {
        const TensorView& v = f->view(name);
        ZIMAGE_CHECK(dtype_is_float(v.dtype), f->path() + ": tensor " + quote(name) + " has dtype " + dtype_name(v.dtype) +
                                                  "; parameters must be F64, F32, BF16 or F16");
        auto [it, fresh] = where_.emplace(name, f.get());
        ZIMAGE_CHECK(fresh, describe_ + ": tensor " + quote(name) + " is in both " + it->second->path() + " and " + f->path());
      }
    }
  }

  std::map<std::string, Shape> shapes() const override {
    std::map<std::string, Shape> out;
    for (const auto& [name, f] : where_) out[name] = f->view(name).shape;
    return out;
  }

  std::string describe() const override { return describe_; }

 private:
  const TensorView& find(const std::string& name) const override {
    auto it = where_.find(name);
    ZIMAGE_CHECK(it != where_.end(), describe_ + ": no tensor " + quote(name));
    return it->second->view(name);
  }

  std::string describe_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;  // keeps the maps alive
  std::map<std::string, const SafetensorsFile*> where_;
};

// Opens every shard the index names and checks that the index and the shards
// agree exactly: each mapped tensor is in its shard, each shard tensor is mapped there.
std::shared_ptr<ParamSource> open_sharded(const fs::path& dir, const std::string& index_path) {
  const json index = read_json_file(index_path);
  ZIMAGE_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
               index_path + ": no \"weight_map\" object");
  std::map<std::string, std::string> weight_map;  // tensor -> shard file name
  for (const auto& [name, shard] : index["weight_map"].items()) {
    ZIMAGE_CHECK(shard.is_string(), index_path + ": weight_map entry for " + quote(name) + " is not a file name");
    const std::string file = shard.get<std::string>();
    ZIMAGE_CHECK(!file.empty() && file.find_first_of(std::string("/\0", 2)) == std::string::npos && file != "." &&
                     file != "..",
                 index_path + ": weight_map entry for " + quote(name) + " names " + quote(file) + ", not a file in " + dir.string());
    weight_map[name] = file;
  }
  std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;
  for (const auto& [name, file] : weight_map) {
    if (shards.count(file)) continue;
    const fs::path p = dir / file;
    std::error_code ec;  // not fs::exists(p): it throws std::filesystem_error, e.g. for a name over NAME_MAX
    ZIMAGE_CHECK(fs::exists(p, ec), index_path + ": shard " + quote(file) + " (holding tensor " + quote(name) +
                                        ") does not exist in " + dir.string() + (ec ? ": " + ec.message() : ""));
    shards[file] = SafetensorsFile::open(p.string());
  }
  for (const auto& [name, file] : weight_map)
    ZIMAGE_CHECK(shards.at(file)->contains(name),
                 index_path + ": tensor " + quote(name) + " is mapped to " + quote(file) + ", which does not hold it");
  std::vector<std::shared_ptr<SafetensorsFile>> files;
  for (const auto& [file, sf] : shards) {
    for (const std::string& name : sf->names()) {
      auto it = weight_map.find(name);
      ZIMAGE_CHECK(it != weight_map.end(), sf->path() + ": tensor " + quote(name) + " is not listed in " + index_path);
      ZIMAGE_CHECK(it->second == file, sf->path() + ": tensor " + quote(name) + " is mapped to " + quote(it->second) + " in " +
                                           index_path);
    }
    files.push_back(sf);
  }
  return std::make_shared<SafetensorsParamSource>(index_path, std::move(files));
}

}  // namespace

std::shared_ptr<ParamSource> open_weight_folder(const std::string& dir, const std::string& stem) {
  const fs::path d(dir);
  const fs::path single = d / (stem + ".safetensors");
  const fs::path index = d / (stem + ".safetensors.index.json");
  std::error_code ec;  // the non-throwing fs::exists: a path it cannot check counts as absent
  if (fs::exists(single, ec))
    return std::make_shared<SafetensorsParamSource>(single.string(), std::vector{SafetensorsFile::open(single.string())});
  if (fs::exists(index, ec)) return open_sharded(d, index.string());
  throw Error(dir + ": no " + stem + ".safetensors or " + stem + ".safetensors.index.json");
}

}  // namespace zimage

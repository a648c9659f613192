// safetensors reader (memory-mapped) and writer.
// Format: 8-byte little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}},
// then the data section; offsets are relative to the data section.
// Every malformation is a zimage::Error naming the file (and tensor).
//
// Aliases: the reserved metadata key "zimage_aliases" (SafetensorsFile::kAliasesKey)
// holds a JSON object {"alias": "stored tensor", ...}. Each alias reads as the
// stored tensor it names (same dtype, shape and bytes) through every lookup:
// names(), contains(), view(), get(). A deduplicated golden stores a tensor once
// and lists its byte-identical copies as aliases (tools/golden/thin_golden.py --dedupe).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace zimage {

enum class DType { F64, F32, BF16, F16, I64, I32, U8, BOOL };

const char* dtype_name(DType d);            // "F32", ...
DType dtype_from_name(const std::string& s, const std::string& context);  // throws on unknown
size_t dtype_size(DType d);
bool dtype_is_float(DType d);

float bf16_to_float(uint16_t v);
uint16_t float_to_bf16(float f);  // round to nearest even; NaN stays NaN
float f16_to_float(uint16_t v);
uint16_t float_to_f16(float f);   // round to nearest even

// A tensor inside a mapped file: no copy until to_tensor().
struct TensorView {
  std::string name;
  DType dtype;
  Shape shape;
  const uint8_t* data = nullptr;  // little-endian raw bytes
  size_t nbytes = 0;
  std::string file;  // for messages
};

// Converts any dtype to T (floats exactly widened; integers converted).
template <class T>
Tensor<T> to_tensor(const TensorView& v);

class SafetensorsFile {
 public:
  // Maps the file read-only and validates the whole header: JSON syntax,
  // dtypes, shapes, offsets within the data section, sizes == numel * dtype
  // size, no overlaps, no duplicate names. Throws zimage::Error naming path.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  // The same checks over a whole file's bytes held in memory (kept by the
  // returned object); `name` stands for the path in path() and messages.
  static std::shared_ptr<SafetensorsFile> from_bytes(std::string name, std::vector<uint8_t> bytes);
  ~SafetensorsFile();

  // The reserved metadata key whose value maps alias names to stored tensor names.
  static constexpr const char* kAliasesKey = "zimage_aliases";

  const std::string& path() const { return path_; }
  // __metadata__ less kAliasesKey (consumed by open(): see aliases()), so that a
  // copy made from metadata() and names() is a valid file without aliases.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // alias -> stored tensor name (empty without kAliasesKey). Every alias must name
  // a stored tensor (not another alias) and must not itself be a stored name.
  const std::map<std::string, std::string>& aliases() const { return aliases_; }
  std::vector<std::string> names() const;  // sorted; stored tensors and aliases
  bool contains(const std::string& name) const { return views_.count(name) != 0; }
  const TensorView& view(const std::string& name) const;  // throws naming file + tensor

  template <class T>
  Tensor<T> get(const std::string& name) const { return to_tensor<T>(view(name)); }

 private:
  SafetensorsFile() = default;
  void parse(const uint8_t* base, uint64_t size);  // header + views; shared by open() and from_bytes()
  void resolve_aliases();                           // kAliasesKey -> aliases_ and their views
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<uint8_t> bytes_;  // from_bytes() only
  std::map<std::string, std::string> metadata_;
  std::map<std::string, TensorView> views_;      // stored tensors and aliases
  std::map<std::string, std::string> aliases_;
};

// Collects tensors and writes them in one go. write() goes to PATH.tmp and
// renames, so a failure never leaves a partial file at PATH.
class SafetensorsWriter {
 public:
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  void add_raw(const std::string& name, DType dtype, const Shape& shape, std::vector<uint8_t> bytes);
  // Stores as `as` (F32 default; F64, BF16, F16 also accepted).
  void add(const std::string& name, const Tensor<float>& t, DType as = DType::F32);
  void add(const std::string& name, const Tensor<double>& t, DType as = DType::F32);
  void add(const std::string& name, const Tensor<int32_t>& t);
  void add(const std::string& name, const Tensor<int64_t>& t);
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  void write(const std::string& path) const;

 private:
  struct Entry { DType dtype; Shape shape; std::vector<uint8_t> bytes; };
  std::map<std::string, std::string> metadata_;
  std::map<std::string, Entry> entries_;
};

}  // namespace zimage

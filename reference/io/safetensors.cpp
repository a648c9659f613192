// safetensors reader / writer and the 16-bit float conversions.
// Contract: see safetensors.h. Every failure is a one-line zimage::Error that
// starts with the file path and names the tensor where there is one.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <type_traits>
#include <utility>

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; big-endian hosts are not supported");

namespace zimage {

using json = nlohmann::json;

namespace {

// The safetensors crate refuses headers above 100 MB; so do we.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Error messages are one line: newlines in quoted material become spaces (so
// does NUL, which would end what()).
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r' || c == '\0') c = ' ';
  return s;
}

// Names (tensors, dtypes, metadata keys) come from the header and may hold newlines.
std::string quote(const std::string& name) {
  std::string q("'");  // (not "'" + one_line(name): GCC 12 warns -Wrestrict on that falsely)
  q += one_line(name);
  q += '\'';
  return q;
}

// A JSON list from the header for a message, one level deep: nested values
// show as [...] / {...} (json::dump() recurses, and a deeply nested header
// value would overflow the stack).
std::string list_brief(const json& v) {
  std::string r("[");
  for (const json& e : v) {
    if (r.size() > 1) r += ",";
    r += e.is_array() ? "[...]" : e.is_object() ? "{...}" : e.dump();
  }
  return r + "]";
}

std::string errno_str() { return std::strerror(errno); }

std::string range_str(uint64_t begin, uint64_t end) {
  std::string r("[");
  r += std::to_string(begin);
  r += ", ";
  r += std::to_string(end);
  r += "]";
  return r;
}

}  // namespace

// ---------------------------------------------------------------- dtypes

const char* dtype_name(DType d) {
  switch (d) {
    case DType::F64: return "F64";
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::U8: return "U8";
    case DType::BOOL: return "BOOL";
  }
  return "?";
}

DType dtype_from_name(const std::string& s, const std::string& context) {
  for (DType d : {DType::F64, DType::F32, DType::BF16, DType::F16, DType::I64, DType::I32, DType::U8, DType::BOOL})
    if (s == dtype_name(d)) return d;
  throw Error(context + ": unknown dtype " + quote(s) + " (supported: F64 F32 BF16 F16 I64 I32 U8 BOOL)");
}

size_t dtype_size(DType d) {
  switch (d) {
    case DType::F64: case DType::I64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::BF16: case DType::F16: return 2;
    case DType::U8: case DType::BOOL: return 1;
  }
  return 0;
}

bool dtype_is_float(DType d) { return d == DType::F64 || d == DType::F32 || d == DType::BF16 || d == DType::F16; }

// ---------------------------------------------------------------- 16-bit floats

float bf16_to_float(uint16_t v) { return std::bit_cast<float>(uint32_t(v) << 16); }

uint16_t float_to_bf16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((x >> 16) | 0x0040u);  // NaN: keep sign, force quiet
  x += 0x7FFFu + ((x >> 16) & 1u);  // round to nearest even; overflow carries into inf
  return uint16_t(x >> 16);
}

float f16_to_float(uint16_t v) {
  const uint32_t sign = uint32_t(v & 0x8000u) << 16;
  const uint32_t exp = (v >> 10) & 0x1Fu;
  const uint32_t mant = v & 0x3FFu;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in float
    float mag = float(mant) * 0x1p-24f;
    return sign ? -mag : mag;
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7F800000u | (mant << 13));  // inf / NaN
  return std::bit_cast<float>(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

uint16_t float_to_f16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7FFFFFFFu;
  if (ax > 0x7F800000u) return uint16_t(sign | 0x7E00u | ((ax >> 13) & 0x3FFu));  // NaN, quiet
  if (ax >= 0x477FF000u) return uint16_t(sign | 0x7C00u);  // >= 65520 rounds to inf (and inf)
  if (ax >= 0x38800000u) {                                  // normal half (>= 2^-14)
    const uint32_t mant = ax & 0x7FFFFFu;
    uint32_t h = ((((ax >> 23) - 127 + 15)) << 10) | (mant >> 13);
    const uint32_t rem = mant & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry moves into the exponent
    return uint16_t(sign | h);
  }
  if (ax <= 0x33000000u) return sign;  // <= 2^-25 rounds (ties to even) to zero
  // Subnormal half: value in units of 2^-24 is m * 2^(E+1), E in [-25, -15].
  const uint32_t m = (ax & 0x7FFFFFu) | 0x800000u;
  const int shift = -(int(ax >> 23) - 127 + 1);  // 14..24
  uint32_t h = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (h & 1u))) ++h;  // 1024 becomes the smallest normal
  return uint16_t(sign | h);
}

// ---------------------------------------------------------------- to_tensor

namespace {

template <class S>
S load_le(const uint8_t* p) {
  S v;
  std::memcpy(&v, p, sizeof(S));
  return v;
}

// Reads element i of the view as S, then converts to T.
template <class T, class S>
void convert_all(const TensorView& v, std::vector<T>& out) {
  const size_t n = out.size();
  for (size_t i = 0; i < n; ++i) {
    const S s = load_le<S>(v.data + i * sizeof(S));
    if constexpr (std::is_integral_v<T> && std::is_integral_v<S>) {
      if constexpr (!std::is_same_v<S, T>) {
        ZIMAGE_CHECK(std::in_range<T>(s), v.file + ": tensor " + quote(v.name) + ": value " + std::to_string(s) +
                                              " at index " + std::to_string(i) + " does not fit the requested integer type");
      }
    }
    out[i] = static_cast<T>(s);
  }
}

}  // namespace

template <class T>
Tensor<T> to_tensor(const TensorView& v) {
  Tensor<T> t;
  t.shape = v.shape;
  const int64_t n = shape_numel(v.shape);
  ZIMAGE_CHECK(size_t(n) * dtype_size(v.dtype) == v.nbytes,
               v.file + ": tensor " + quote(v.name) + ": byte size does not match shape " + shape_str(v.shape));
  if constexpr (std::is_integral_v<T>) {
    ZIMAGE_CHECK(!dtype_is_float(v.dtype), v.file + ": tensor " + quote(v.name) + ": dtype " + dtype_name(v.dtype) +
                                               " cannot be read as an integer tensor");
  }
  t.data.resize(size_t(n));
  switch (v.dtype) {
    case DType::F64:
      if constexpr (!std::is_integral_v<T>) convert_all<T, double>(v, t.data);
      break;
    case DType::F32:
      if constexpr (!std::is_integral_v<T>) convert_all<T, float>(v, t.data);
      break;
    case DType::BF16:
    case DType::F16:
      if constexpr (!std::is_integral_v<T>) {
        const bool bf = v.dtype == DType::BF16;
        for (size_t i = 0; i < size_t(n); ++i) {
          const uint16_t h = load_le<uint16_t>(v.data + 2 * i);
          t.data[i] = static_cast<T>(bf ? bf16_to_float(h) : f16_to_float(h));
        }
      }
      break;
    case DType::I64: convert_all<T, int64_t>(v, t.data); break;
    case DType::I32: convert_all<T, int32_t>(v, t.data); break;
    case DType::U8: convert_all<T, uint8_t>(v, t.data); break;
    case DType::BOOL: {
      for (size_t i = 0; i < size_t(n); ++i) t.data[i] = static_cast<T>(v.data[i] != 0);
      break;
    }
  }
  return t;
}

template Tensor<float> to_tensor<float>(const TensorView&);
template Tensor<double> to_tensor<double>(const TensorView&);
template Tensor<int32_t> to_tensor<int32_t>(const TensorView&);
template Tensor<int64_t> to_tensor<int64_t>(const TensorView&);

// ---------------------------------------------------------------- reader

namespace {

// Parses JSON text (the header, or the alias map in the metadata) and reports
// the first key repeated inside any one object (nlohmann::json would silently
// keep one of them). `what` names the text in messages ("header"); `top_key`
// names a key of the outermost object ("tensor").
json parse_checked(const std::string& path, const std::string& what, const char* top_key, const char* text,
                   size_t len) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  json::parser_callback_t cb = [&](int, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (ev == json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (ev == json::parse_event_t::key && !open_objects.empty()) {
      const std::string k = parsed.get<std::string>();
      if (!open_objects.back().insert(k).second && duplicate.empty())
        duplicate = (open_objects.size() == 1 ? std::string(top_key) : std::string("key")) + " " + quote(k);
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text, text + len, cb);
  } catch (const json::exception& e) {
    throw Error(path + ": " + what + " is not valid JSON: " + one_line(e.what()));
  }
  ZIMAGE_CHECK(duplicate.empty(), path + ": " + what + " lists " + duplicate + " more than once");
  return j;
}

json parse_header(const std::string& path, const char* text, size_t len) {
  return parse_checked(path, "header", "tensor", text, len);
}

uint64_t offset_value(const json& v, bool& ok) {
  ok = v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
  return ok ? v.get<uint64_t>() : 0;
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());  // its destructor unmaps on any throw below
  f->path_ = path;

  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ZIMAGE_CHECK(fd >= 0, path + ": cannot open: " + errno_str());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string why = errno_str();
    ::close(fd);
    throw Error(path + ": cannot stat: " + why);
  }
  const uint64_t file_size = uint64_t(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    throw Error(path + ": file is " + std::to_string(file_size) + " bytes, shorter than the 8-byte header length");
  }
  void* m = ::mmap(nullptr, size_t(file_size), PROT_READ, MAP_PRIVATE, fd, 0);
  const std::string mmap_err = m == MAP_FAILED ? errno_str() : "";
  ::close(fd);
  ZIMAGE_CHECK(m != MAP_FAILED, path + ": cannot mmap: " + mmap_err);
  f->map_ = m;
  f->map_size_ = size_t(file_size);
  f->parse(static_cast<const uint8_t*>(m), file_size);
  return f;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::from_bytes(std::string name, std::vector<uint8_t> bytes) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = std::move(name);
  f->bytes_ = std::move(bytes);
  f->parse(f->bytes_.data(), f->bytes_.size());
  return f;
}

void SafetensorsFile::parse(const uint8_t* base, uint64_t file_size) {
  const std::string& path = path_;
  ZIMAGE_CHECK(file_size >= 8, path + ": file is " + std::to_string(file_size) +
                                   " bytes, shorter than the 8-byte header length");
  const uint64_t header_len = load_le<uint64_t>(base);
  ZIMAGE_CHECK(header_len <= kMaxHeaderBytes, path + ": header length " + std::to_string(header_len) +
                                                  " is absurd (limit " + std::to_string(kMaxHeaderBytes) + " bytes)");
  ZIMAGE_CHECK(header_len <= file_size - 8, path + ": header length " + std::to_string(header_len) +
                                                " runs past end of file (" + std::to_string(file_size) + " bytes)");
  const uint8_t* data = base + 8 + header_len;
  const uint64_t data_size = file_size - 8 - header_len;

  const json header = parse_header(path, reinterpret_cast<const char*>(base + 8), size_t(header_len));
  ZIMAGE_CHECK(header.is_object(), path + ": header is not a JSON object");

  struct Range { uint64_t begin, end; const std::string* name; };
  std::vector<Range> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      ZIMAGE_CHECK(entry.is_object(), path + ": __metadata__ is not an object of strings");
      for (const auto& [k, v] : entry.items()) {
        ZIMAGE_CHECK(v.is_string(), path + ": __metadata__ value for " + quote(k) + " is not a string");
        metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string ctx = path + ": tensor " + quote(name);
    ZIMAGE_CHECK(entry.is_object(), ctx + ": entry is not an object");
    for (const auto& [k, v] : entry.items()) {
      (void)v;
      ZIMAGE_CHECK(k == "dtype" || k == "shape" || k == "data_offsets", ctx + ": unknown field " + quote(k));
    }
    ZIMAGE_CHECK(entry.contains("dtype") && entry["dtype"].is_string(), ctx + ": dtype missing or not a string");
    ZIMAGE_CHECK(entry.contains("shape") && entry["shape"].is_array(), ctx + ": shape missing or not a list");
    ZIMAGE_CHECK(entry.contains("data_offsets") && entry["data_offsets"].is_array(),
                 ctx + ": data_offsets missing or not a list");

    TensorView v;
    v.name = name;
    v.file = path;
    v.dtype = dtype_from_name(entry["dtype"].get<std::string>(), ctx);
    uint64_t numel = 1;
    bool overflow = false;
    bool int64_overflow = false;  // a partial product (as shape_numel() forms it) beyond int64
    for (const json& d : entry["shape"]) {
      bool ok = false;
      const uint64_t n = offset_value(d, ok);
      ZIMAGE_CHECK(ok && n <= uint64_t(std::numeric_limits<int64_t>::max()),
                   ctx + ": shape " + list_brief(entry["shape"]) + " is not a list of non-negative integers");
      v.shape.push_back(int64_t(n));
      if (n != 0 && numel > std::numeric_limits<uint64_t>::max() / n) overflow = true;
      if (n != 0 && numel > uint64_t(std::numeric_limits<int64_t>::max()) / n) int64_overflow = true;
      numel *= n;
    }
    ZIMAGE_CHECK(!int64_overflow, ctx + ": shape " + shape_str(v.shape) + ": the product of its dimensions overflows int64");
    const json& off = entry["data_offsets"];
    bool ok0 = false, ok1 = false;
    const uint64_t begin = off.size() == 2 ? offset_value(off[0], ok0) : 0;
    const uint64_t end = off.size() == 2 ? offset_value(off[1], ok1) : 0;
    ZIMAGE_CHECK(off.size() == 2 && ok0 && ok1,
                 ctx + ": data_offsets " + list_brief(off) + " is not [begin, end] of non-negative integers");
    const std::string range = range_str(begin, end);
    ZIMAGE_CHECK(begin <= end, ctx + ": data_offsets " + range + " has begin > end");
    ZIMAGE_CHECK(end <= data_size, ctx + ": data_offsets " + range + " past end of data section (" +
                                       std::to_string(data_size) + " bytes)");
    const uint64_t esize = dtype_size(v.dtype);
    overflow = overflow || numel > std::numeric_limits<uint64_t>::max() / esize;
    ZIMAGE_CHECK(!overflow && numel * esize == end - begin,
                 ctx + ": data_offsets " + range + " hold " + std::to_string(end - begin) + " bytes but " +
                     dtype_name(v.dtype) + " " + shape_str(v.shape) + " needs " +
                     (overflow ? std::string("more than 2^64") : std::to_string(numel * esize)));
    v.data = data + begin;
    v.nbytes = size_t(end - begin);
    auto it = views_.emplace(name, std::move(v)).first;
    ranges.push_back({begin, end, &it->first});
  }

  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  for (size_t i = 1; i < ranges.size(); ++i) {
    const Range& a = ranges[i - 1];
    const Range& b = ranges[i];
    ZIMAGE_CHECK(a.end <= b.begin, path + ": tensor " + quote(*b.name) + " data_offsets " + range_str(b.begin, b.end) +
                                       " overlaps tensor " + quote(*a.name) + " " + range_str(a.begin, a.end));
  }
  resolve_aliases();
}

void SafetensorsFile::resolve_aliases() {
  const auto md = metadata_.find(kAliasesKey);
  if (md == metadata_.end()) return;
  const std::string ctx = path_ + ": __metadata__ " + quote(kAliasesKey);
  const json j = parse_checked(path_, std::string("__metadata__ ") + quote(kAliasesKey), "alias", md->second.data(),
                               md->second.size());
  ZIMAGE_CHECK(j.is_object(), ctx + " is not a JSON object of alias -> stored tensor names");
  std::map<std::string, std::string> aliases;
  for (const auto& [alias, target] : j.items()) {
    const std::string actx = ctx + ": alias " + quote(alias);
    ZIMAGE_CHECK(target.is_string(), actx + " does not map to a string (a stored tensor name)");
    ZIMAGE_CHECK(!alias.empty() && alias != "__metadata__", actx + " is not a usable tensor name");
    ZIMAGE_CHECK(!views_.count(alias), actx + " is also a stored tensor");
    aliases.emplace(alias, target.get<std::string>());
  }
  for (const auto& [alias, target] : aliases) {
    const std::string actx = ctx + ": alias " + quote(alias);
    if (views_.count(target)) continue;
    ZIMAGE_CHECK(!aliases.count(target), actx + " points to alias " + quote(target) +
                                             " (an alias must name a stored tensor)");
    throw Error(actx + " points to " + quote(target) + ", which is not a stored tensor");
  }
  for (const auto& [alias, target] : aliases) {
    TensorView v = views_.at(target);  // same dtype, shape and bytes; messages name the alias
    v.name = alias;
    views_.emplace(alias, std::move(v));
  }
  aliases_ = std::move(aliases);
  metadata_.erase(md);
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(views_.size());
  for (const auto& [k, v] : views_) out.push_back(k);
  return out;
}

const TensorView& SafetensorsFile::view(const std::string& name) const {
  auto it = views_.find(name);
  ZIMAGE_CHECK(it != views_.end(), path_ + ": no tensor " + quote(name));
  return it->second;
}

// ---------------------------------------------------------------- writer

namespace {

template <class S>
void append_le(std::vector<uint8_t>& out, S v) {
  const size_t at = out.size();
  out.resize(at + sizeof(S));
  std::memcpy(out.data() + at, &v, sizeof(S));
}

// Encodes float values (given as float or double) as a float dtype.
// BF16 / F16 from double round via float32 first.
template <class S>
std::vector<uint8_t> encode_float(const std::string& name, const std::vector<S>& src, DType as) {
  std::vector<uint8_t> out;
  out.reserve(src.size() * dtype_size(as));
  for (S s : src) {
    switch (as) {
      case DType::F64: append_le<double>(out, double(s)); break;
      case DType::F32: append_le<float>(out, float(s)); break;
      case DType::BF16: append_le<uint16_t>(out, float_to_bf16(float(s))); break;
      case DType::F16: append_le<uint16_t>(out, float_to_f16(float(s))); break;
      default:
        throw Error("SafetensorsWriter: tensor " + quote(name) + ": cannot store a float tensor as " + dtype_name(as));
    }
  }
  return out;
}

template <class S>
std::vector<uint8_t> encode_int(const std::vector<S>& src) {
  std::vector<uint8_t> out;
  out.reserve(src.size() * sizeof(S));
  for (S s : src) append_le<S>(out, s);
  return out;
}

}  // namespace

void SafetensorsWriter::add_raw(const std::string& name, DType dtype, const Shape& shape, std::vector<uint8_t> bytes) {
  const std::string ctx = "SafetensorsWriter: tensor " + quote(name);
  ZIMAGE_CHECK(!name.empty() && name != "__metadata__", ctx + ": reserved or empty name");
  ZIMAGE_CHECK(!entries_.count(name), ctx + ": added twice");
  for (int64_t d : shape) ZIMAGE_CHECK(d >= 0, ctx + ": negative dimension in shape " + shape_str(shape));
  ZIMAGE_CHECK(bytes.size() == size_t(shape_numel(shape)) * dtype_size(dtype),
               ctx + ": " + std::to_string(bytes.size()) + " bytes for " + dtype_name(dtype) + " " + shape_str(shape));
  entries_.emplace(name, Entry{dtype, shape, std::move(bytes)});
}

void SafetensorsWriter::add(const std::string& name, const Tensor<float>& t, DType as) {
  add_raw(name, as, t.shape, encode_float(name, t.data, as));
}
void SafetensorsWriter::add(const std::string& name, const Tensor<double>& t, DType as) {
  add_raw(name, as, t.shape, encode_float(name, t.data, as));
}
void SafetensorsWriter::add(const std::string& name, const Tensor<int32_t>& t) {
  add_raw(name, DType::I32, t.shape, encode_int(t.data));
}
void SafetensorsWriter::add(const std::string& name, const Tensor<int64_t>& t) {
  add_raw(name, DType::I64, t.shape, encode_int(t.data));
}

void SafetensorsWriter::write(const std::string& path) const {
  // Header: keys sorted (nlohmann::json objects are ordered maps), tensors laid
  // out in name order, header padded with spaces so the data section starts
  // at a multiple of 8.
  json header = json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (const auto& [name, e] : entries_) {
    header[name] = {{"dtype", dtype_name(e.dtype)}, {"shape", e.shape}, {"data_offsets", {offset, offset + e.bytes.size()}}};
    offset += e.bytes.size();
  }
  std::string text = header.dump();
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');

  const std::string tmp = path + ".tmp";
  FILE* fp = std::fopen(tmp.c_str(), "wb");
  ZIMAGE_CHECK(fp, path + ": cannot create " + tmp + ": " + errno_str());
  bool ok = true;
  std::vector<uint8_t> len;
  append_le<uint64_t>(len, text.size());
  ok = ok && std::fwrite(len.data(), 1, len.size(), fp) == len.size();
  ok = ok && std::fwrite(text.data(), 1, text.size(), fp) == text.size();
  for (const auto& [name, e] : entries_)
    ok = ok && (e.bytes.empty() || std::fwrite(e.bytes.data(), 1, e.bytes.size(), fp) == e.bytes.size());
  const std::string write_err = ok ? "" : errno_str();
  ok = (std::fclose(fp) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    throw Error(path + ": write failed: " + (write_err.empty() ? errno_str() : write_err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = errno_str();
    std::remove(tmp.c_str());
    throw Error(path + ": cannot rename " + tmp + " into place: " + why);
  }
}

}  // namespace zimage

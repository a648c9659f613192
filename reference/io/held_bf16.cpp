#include "io/held_bf16.h"

#include <cstdio>
#include <cstring>
#include <map>
#include <vector>

namespace zimage {

int64_t first_non_bf16_exact(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, &x[i], 4);
    if (b & 0xFFFFu) return i;
  }
  return -1;
}

bool view_is_bf16_exact(const TensorView& v, int64_t* first_bad) {
  const int64_t n = shape_numel(v.shape);
  auto bad = [&](int64_t i) {
    if (first_bad) *first_bad = i;
    return false;
  };
  switch (v.dtype) {
    case DType::BF16:
      return true;
    case DType::F32:
      for (int64_t i = 0; i < n; ++i) {
        uint32_t b;
        std::memcpy(&b, v.data + 4 * i, 4);
        if (b & 0xFFFFu) return bad(i);
      }
      return true;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, v.data + 2 * i, 2);
        const float f = f16_to_float(h);
        if (first_non_bf16_exact(&f, 1) == 0) return bad(i);
      }
      return true;
    case DType::F64:
      for (int64_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, v.data + 8 * i, 8);
        const float f = float(d);
        if (double(f) != d && !(d != d)) return bad(i);
        if (first_non_bf16_exact(&f, 1) == 0) return bad(i);
      }
      return true;
    default:
      return bad(0);
  }
}

namespace {

class HeldBf16Source : public ParamSource {
 public:
  explicit HeldBf16Source(std::shared_ptr<const ParamSource> src) : describe_("bf16 copy of " + src->describe()) {
    for (const auto& [name, shape] : src->shapes()) {
      const Tensor<float> t = src->load_float(name);
      const int64_t bad = first_non_bf16_exact(t.ptr(), t.numel());
      if (bad >= 0) {
        uint32_t bits;
        std::memcpy(&bits, &t[bad], 4);
        char buf[160];
        std::snprintf(buf, sizeof buf, " is not bf16-exact: value %.9g (fp32 bits 0x%08x) at flat index %lld", double(t[bad]),
                      bits, static_cast<long long>(bad));
        throw Error(src->describe() + ": tensor '" + name + "'" + buf + "; hold this checkpoint as fp32");
      }
      Entry& e = held_[name];
      e.shape = shape;
      e.bits.resize(size_t(t.numel()));
      for (int64_t i = 0; i < t.numel(); ++i) {
        uint32_t b;
        std::memcpy(&b, &t[i], 4);
        e.bits[size_t(i)] = uint16_t(b >> 16);
      }
    }
  }

  std::map<std::string, Shape> shapes() const override {
    std::map<std::string, Shape> out;
    for (const auto& [name, e] : held_) out[name] = e.shape;
    return out;
  }
  Tensor<float> load_float(const std::string& name) const override {
    const Entry& e = find(name);
    Tensor<float> t(e.shape);
    for (size_t i = 0; i < e.bits.size(); ++i) {
      const uint32_t b = uint32_t(e.bits[i]) << 16;
      std::memcpy(&t.data[i], &b, 4);
    }
    return t;
  }
  Tensor<double> load(const std::string& name) const override { return load_float(name).cast<double>(); }
  std::string describe() const override { return describe_; }

 private:
  struct Entry {
    Shape shape;
    std::vector<uint16_t> bits;  // the high half of each fp32 value
  };
  const Entry& find(const std::string& name) const {
    auto it = held_.find(name);
    ZIMAGE_CHECK(it != held_.end(), describe_ + ": no tensor '" + name + "'");
    return it->second;
  }
  std::string describe_;
  std::map<std::string, Entry> held_;
};

}  // namespace

std::shared_ptr<ParamSource> hold_as_bf16(std::shared_ptr<const ParamSource> src) {
  return std::make_shared<HeldBf16Source>(std::move(src));
}

}  // namespace zimage

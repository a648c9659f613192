// Golden values as the dumpers write them: fnv1a64 digests of a tensor's bytes in their "0x..."
// form (tools/golden/synthetic.py fnv1a64_hex; the bf16 peer readers' input digests, the SDPA peer,
// torch_randn and the ComfyUI layout), the check that stored values are bf16 numbers, and a
// ParamSource whose values are another's rounded to bf16, as torch's .to(torch.bfloat16) rounds a
// model's weights.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/tensor.h"
#include "io/param_source.h"
#include "io/safetensors.h"
#include "io/synthetic.h"  // fnv1a64

namespace zimage::testing {

// "0x%016x" of the fnv1a64 of a tensor's bytes (float32 or int32, little endian, as the dumpers'
// digest() and digest_i32() write them).
template <class T>
std::string fnv1a64_hex(const Tensor<T>& t) {
  static_assert(sizeof(T) == 4, "the dumpers digest 4-byte values");
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%016llx",
                (unsigned long long)fnv1a64(
                    std::string_view(reinterpret_cast<const char*>(t.ptr()), size_t(t.numel()) * sizeof(T))));
  return buf;
}

// Throws "<path>: <name>[j] is not a bfloat16 value" at the first value whose low 16 bits are set.
inline void check_bf16_valued(const std::string& path, const std::string& name, const Tensor<float>& t) {
  for (int64_t j = 0; j < t.numel(); ++j) {
    uint32_t bits;
    std::memcpy(&bits, &t.data[size_t(j)], 4);
    ZIMAGE_CHECK((bits & 0xffffu) == 0, path + ": " + name + "[" + std::to_string(j) + "] is not a bfloat16 value");
  }
}

// Every value of `s` rounded to bf16 (round to nearest even, float_to_bf16), widened back.
class Bf16Rounded : public ParamSource {
 public:
  explicit Bf16Rounded(std::shared_ptr<const ParamSource> s) : s_(std::move(s)) {}
  std::map<std::string, Shape> shapes() const override { return s_->shapes(); }
  Tensor<float> load_float(const std::string& n) const override {
    Tensor<float> t = s_->load_float(n);
    for (auto& v : t.data) v = bf16_to_float(float_to_bf16(v));
    return t;
  }
  Tensor<double> load(const std::string& n) const override { return load_float(n).cast<double>(); }
  std::string describe() const override { return "bf16-rounded " + s_->describe(); }

 private:
  std::shared_ptr<const ParamSource> s_;
};

}  // namespace zimage::testing

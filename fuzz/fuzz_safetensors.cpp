// libFuzzer target: the input is a whole safetensors file (8-byte header
// length, JSON header, data section). SafetensorsFile::from_bytes runs the
// same validation as SafetensorsFile::open (they share SafetensorsFile::parse)
// over an exact-size heap copy, so AddressSanitizer sees any read outside the
// file. A file the reader accepts must then be readable: every tensor converts
// with to_tensor<double> / <float> (and <int64_t> for integer dtypes) without
// an error; only the narrowing to int32 may refuse a value. Aliases (metadata
// "zimage_aliases") must read as the stored tensor they name.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_common.h"
#include "io/safetensors.h"

using namespace zimage;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::shared_ptr<SafetensorsFile> f;
  try {
    f = SafetensorsFile::from_bytes("fuzz.safetensors", std::vector<uint8_t>(data, data + size));
  } catch (const Error& e) {
    fuzz::check_message(e);
    return 0;
  }
  // Accepted: every tensor must be readable (outside the try: an Error here is a finding).
  for (const std::string& name : f->names()) {
    const TensorView& v = f->view(name);
    ZIMAGE_FUZZ_REQUIRE(f->contains(name), name);
    ZIMAGE_FUZZ_REQUIRE(v.nbytes <= size, "view larger than the file");
    const Tensor<double> d = to_tensor<double>(v);
    ZIMAGE_FUZZ_REQUIRE(d.shape == v.shape, name);
    ZIMAGE_FUZZ_REQUIRE(d.data.size() * dtype_size(v.dtype) == v.nbytes, name);
    const Tensor<float> fl = to_tensor<float>(v);
    ZIMAGE_FUZZ_REQUIRE(fl.data.size() == d.data.size(), name);
    if (!dtype_is_float(v.dtype)) {
      const Tensor<int64_t> i = to_tensor<int64_t>(v);
      ZIMAGE_FUZZ_REQUIRE(i.data.size() == d.data.size(), name);
      for (size_t k = 0; k < i.data.size(); ++k) ZIMAGE_FUZZ_REQUIRE(double(i.data[k]) == d.data[k], name);
      try {
        (void)to_tensor<int32_t>(v);  // may refuse an I64 value outside int32
      } catch (const Error& e) {
        fuzz::check_message(e);
        ZIMAGE_FUZZ_REQUIRE(v.dtype == DType::I64, "only I64 can fail to narrow to int32");
      }
    } else {
      try {
        (void)to_tensor<int64_t>(v);
        fuzz::fail("float tensor '" + name + "' was read as an integer tensor");
      } catch (const Error& e) {
        fuzz::check_message(e);
      }
    }
  }
  for (const auto& [k, v] : f->metadata()) (void)k, (void)v;
  ZIMAGE_FUZZ_REQUIRE(!f->metadata().count(SafetensorsFile::kAliasesKey), "alias key left in metadata()");
  for (const auto& [alias, stored] : f->aliases()) {
    ZIMAGE_FUZZ_REQUIRE(f->contains(alias) && f->contains(stored) && !f->aliases().count(stored), alias);
    const TensorView& a = f->view(alias);
    const TensorView& s = f->view(stored);
    ZIMAGE_FUZZ_REQUIRE(a.name == alias && a.data == s.data && a.nbytes == s.nbytes && a.dtype == s.dtype &&
                            a.shape == s.shape,
                        alias);
  }
  try {
    (void)f->view("\x01 no such tensor");
    if (!f->contains("\x01 no such tensor")) fuzz::fail("view() of an absent name did not throw");
  } catch (const Error& e) {
    fuzz::check_message(e);
  }
  return 0;
}

// The C++ synthetic weight generator (reference/io/synthetic.h) must
// reproduce, bit for bit, the tensors that tools/golden/synthetic.py wrote to
// golden/synthetic_check.safetensors (tools/golden/dump_synthetic_check.py).
// Each check's generator call is in the metadata key "synthetic_check":
// {"<check>": {"seed": S, "name": "<hashed name>", "shape": [...], "offset": o, "scale": s}}.
// A check is either stored as the tensor <check>, or (the > 2^20-element one)
// only as a digest: its entry adds "fnv1a64": "0x<hex>", the FNV-1a 64 of the
// tensor's float32 little-endian bytes, which the test compares with
// zimage::fnv1a64 over the bytes of its own regeneration.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "io/safetensors.h"
#include "io/synthetic.h"

namespace {

using nlohmann::json;

const char* kCheckFile = ZIMAGE_GOLDEN_DIR "/synthetic_check.safetensors";

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

bool little_endian() {
  const uint32_t one = 1;
  unsigned char b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

// "0x..." / hex digits, or a decimal string (both accepted by the spec).
uint64_t parse_digest(const std::string& s) {
  size_t used = 0;
  const bool hex = s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
  const uint64_t v = std::stoull(hex ? s.substr(2) : s, &used, hex ? 16 : 10);
  if (used != s.size() - (hex ? 2 : 0)) throw std::invalid_argument("bad fnv1a64 digest '" + s + "'");
  return v;
}

TEST(SyntheticCrosscheck, MatchesPythonBitForBit) {
  auto file = zimage::SafetensorsFile::open(kCheckFile);
  const auto& meta = file->metadata();
  auto it = meta.find("synthetic_check");
  ASSERT_NE(it, meta.end()) << kCheckFile << ": no \"synthetic_check\" metadata";
  const json spec = json::parse(it->second);
  ASSERT_TRUE(spec.is_object());
  ASSERT_FALSE(spec.empty());
  size_t stored_checks = 0;
  for (const auto& [key, s] : spec.items())
    if (!s.contains("fnv1a64")) ++stored_checks;
  ASSERT_EQ(stored_checks, file->names().size()) << "every stored tensor must have a spec";

  int64_t compared = 0;
  int64_t largest = 0;
  int64_t largest_digest = 0;
  int tensors = 0;
  int digests = 0;
  for (const auto& [key, s] : spec.items()) {
    SCOPED_TRACE("tensor " + key);
    if (s.contains("fnv1a64")) {  // digest only: regenerate and hash
      ASSERT_FALSE(file->contains(key)) << "a digest-only check must not also be stored";
      ASSERT_TRUE(little_endian()) << "the digest is over little-endian float32 bytes";
      zimage::Shape shape;
      for (const json& d : s.at("shape")) shape.push_back(d.get<int64_t>());
      const int64_t n = zimage::shape_numel(shape);
      const uint64_t seed = s.at("seed").get<uint64_t>();
      const std::string name = s.at("name").get<std::string>();
      const double offset = s.at("offset").get<double>();
      const double scale = s.at("scale").get<double>();
      const std::string stored_str = s.at("fnv1a64").get<std::string>();
      const uint64_t stored = parse_digest(stored_str);

      std::vector<float> mine(size_t(n), 0.0f);
      zimage::synthetic_fill(seed, name, offset, scale, mine.data(), n);
      const uint64_t got =
          zimage::fnv1a64(std::string_view(reinterpret_cast<const char*>(mine.data()), size_t(n) * sizeof(float)));
      char buf[160];
      std::snprintf(buf, sizeof buf, "C++ fnv1a64 0x%016llx vs stored %s", static_cast<unsigned long long>(got),
                    stored_str.c_str());
      EXPECT_EQ(got, stored) << buf << " (seed " << seed << ", name '" << name << "', shape "
                             << zimage::shape_str(shape) << ", offset " << offset << ", scale " << scale << ")";
      if (got != stored) continue;
      std::printf("[ synthetic ] %-26s seed=%llu name='%s' %s: %lld elements, fnv1a64 %s equal\n", key.c_str(),
                  static_cast<unsigned long long>(seed), name.c_str(), zimage::shape_str(shape).c_str(),
                  static_cast<long long>(n), stored_str.c_str());
      compared += n;
      largest_digest = std::max(largest_digest, n);
      ++digests;
      continue;
    }
    ASSERT_TRUE(file->contains(key));
    const zimage::TensorView& v = file->view(key);
    ASSERT_EQ(v.dtype, zimage::DType::F32);

    zimage::Shape shape;
    for (const json& d : s.at("shape")) shape.push_back(d.get<int64_t>());
    ASSERT_EQ(v.shape, shape) << "stored " << zimage::shape_str(v.shape) << " vs spec " << zimage::shape_str(shape);
    const int64_t n = zimage::shape_numel(shape);
    ASSERT_EQ(v.nbytes, size_t(n) * sizeof(float));

    const uint64_t seed = s.at("seed").get<uint64_t>();
    const std::string name = s.at("name").get<std::string>();
    const double offset = s.at("offset").get<double>();
    const double scale = s.at("scale").get<double>();

    std::vector<float> mine(size_t(n), 0.0f);
    zimage::synthetic_fill(seed, name, offset, scale, mine.data(), n);

    if (std::memcmp(mine.data(), v.data, v.nbytes) != 0) {
      int64_t first = -1, count = 0;
      for (int64_t i = 0; i < n; ++i) {
        float ref;
        std::memcpy(&ref, v.data + size_t(i) * sizeof(float), sizeof ref);
        if (float_bits(ref) != float_bits(mine[size_t(i)])) {
          if (first < 0) first = i;
          ++count;
        }
      }
      float ref0;
      std::memcpy(&ref0, v.data + size_t(first) * sizeof(float), sizeof ref0);
      char buf[256];
      std::snprintf(buf, sizeof buf, "first mismatch at flat index %lld: C++ %.9g (0x%08x) vs Python %.9g (0x%08x)",
                    static_cast<long long>(first), double(mine[size_t(first)]), float_bits(mine[size_t(first)]),
                    double(ref0), float_bits(ref0));
      ADD_FAILURE() << count << " of " << n << " elements differ (seed " << seed << ", name '" << name
                    << "', offset " << offset << ", scale " << scale << "); " << buf;
      continue;
    }
    std::printf("[ synthetic ] %-26s seed=%llu name='%s' %s: %lld elements bitwise equal\n", key.c_str(),
                static_cast<unsigned long long>(seed), name.c_str(), zimage::shape_str(shape).c_str(),
                static_cast<long long>(n));
    compared += n;
    largest = std::max(largest, n);
    ++tensors;
  }
  std::printf("[ synthetic ] compared %lld elements bit for bit: %d stored tensors (largest %lld), %d digests "
              "(largest %lld)\n",
              static_cast<long long>(compared), tensors, static_cast<long long>(largest), digests,
              static_cast<long long>(largest_digest));
  RecordProperty("elements_compared", std::to_string(compared));
  EXPECT_GT(largest_digest, int64_t(1) << 20)
      << "the check file must check a tensor of more than 2^20 elements (as an fnv1a64 digest)";
}

}  // namespace

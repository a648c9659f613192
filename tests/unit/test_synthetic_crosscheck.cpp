// The C++ synthetic weight generator (reference/model/synthetic.h) must
// reproduce, bit for bit, the tensors that tools/golden/synthetic.py wrote to
// golden/synthetic_check.safetensors (tools/golden/dump_synthetic_check.py).
// Each tensor's generator call is in the metadata key "synthetic_check":
// {"<tensor>": {"seed": S, "name": "<hashed name>", "shape": [...], "offset": o, "scale": s}}.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/synthetic.h"

namespace {

using nlohmann::json;

const char* kCheckFile = ZIMAGE_GOLDEN_DIR "/synthetic_check.safetensors";

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

TEST(SyntheticCrosscheck, MatchesPythonBitForBit) {
  auto file = zimage::SafetensorsFile::open(kCheckFile);
  const auto& meta = file->metadata();
  auto it = meta.find("synthetic_check");
  ASSERT_NE(it, meta.end()) << kCheckFile << ": no \"synthetic_check\" metadata";
  const json spec = json::parse(it->second);
  ASSERT_TRUE(spec.is_object());
  ASSERT_FALSE(spec.empty());
  ASSERT_EQ(spec.size(), file->names().size()) << "every stored tensor must have a spec";

  int64_t compared = 0;
  int64_t largest = 0;
  int tensors = 0;
  for (const auto& [key, s] : spec.items()) {
    SCOPED_TRACE("tensor " + key);
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
  std::printf("[ synthetic ] compared %lld elements in %d tensors bit for bit (largest %lld)\n",
              static_cast<long long>(compared), tensors, static_cast<long long>(largest));
  RecordProperty("elements_compared", std::to_string(compared));
  EXPECT_GT(largest, int64_t(1) << 20) << "the check file must hold a tensor of more than 2^20 elements";
}

}  // namespace

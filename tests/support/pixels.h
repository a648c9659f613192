// The pixel gate of the pipeline tests: our 8-bit image against diffusers' PIL image.
// Our fp32 image differs from diffusers' by ~1e-6 relative (tests/golden/
// test_pipeline_goldens.cpp), so a pixel can only flip where x * 255 lies
// within ~1e-3 of a rounding boundary: at most one level, on a handful of
// pixels. Gate: max difference 1 level, at most 0.1 % of values differing.
#pragma once
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/tensor.h"
#include "io/png.h"

namespace zimage::testing {

// `want` is the golden's image.uint8 [B, H, W, C]; `item` the batch item `img` is.
inline void expect_pixels_match(const std::string& what, const Image8& img, const Tensor<int32_t>& want, int64_t item) {
  const int64_t n = img.height * img.width * img.channels;
  ASSERT_EQ(n * want.shape[0], want.numel()) << what;
  int64_t differ = 0, worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t d = std::abs(int64_t(img.pixels[i]) - int64_t(want[item * n + i]));
    differ += d != 0;
    worst = std::max(worst, d);
  }
  std::printf("  %s: %lld of %lld pixel values differ from diffusers' PIL image, max %lld level(s) (gate: 1 level, %lld values)\n",
              what.c_str(), (long long)differ, (long long)n, (long long)worst, (long long)(n / 1000));
  EXPECT_LE(worst, 1) << what;
  EXPECT_LE(differ, n / 1000) << what;
}

}  // namespace zimage::testing

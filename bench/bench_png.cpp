// PNG encoding of a 1024x1024 RGB image, the last stage of `zimage generate` (reference/io/png.h,
// docs/png.md): encode_png (the project's: libpng's filter choice, then zlib level 6 in parallel
// 256 KiB runs of rows) next to encode_png_libpng (libpng's own encoder at its defaults, what
// write_png used before and what PIL's default matches in size), in the same run, on the same
// image. Counters: bytes (the file's size), B/s over the raw pixels.
#include "bench_support.h"
#include "io/png.h"

namespace zimage::bench {
namespace {

// Smooth gradients and edges with a little grain: about what a generated image compresses like.
Image8 photo_like(int64_t side) {
  Image8 img{side, side, 3, std::vector<uint8_t>(size_t(side * side * 3))};
  for (int64_t i = 0; i < side * side * 3; ++i) {
    const int64_t y = i / (side * 3), x = (i / 3) % side, k = i % 3;
    uint32_t grain = uint32_t(i);  // murmur3's finalizer: grain of +-4 levels, no pattern
    grain ^= grain >> 16, grain *= 0x85ebca6bu, grain ^= grain >> 13, grain *= 0xc2b2ae35u, grain ^= grain >> 16;
    const int64_t v = 40 + x * (k + 1) / 9 + y / 5 + ((x / 97 + y / 61) % 2) * 30 + int64_t(grain >> 29) - 4;
    img.pixels[size_t(i)] = uint8_t(std::clamp<int64_t>(v, 0, 255));
  }
  return img;
}

template <std::vector<uint8_t> (*Encode)(const Image8&)>
void BM_Png(benchmark::State& st) {
  const Image8 img = photo_like(st.range(0));
  size_t bytes = 0;
  const auto t0 = Clock::now();
  for (auto _ : st) bytes = Encode(img).size();
  set_counters(st, 0, double(img.pixels.size()), t0);
  st.counters["bytes"] = double(bytes);
}
BENCHMARK(BM_Png<encode_png>)
    ->Name("BM_EncodePng")
    ->Arg(1024)
    ->ArgName("side")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Png<encode_png_libpng>)
    ->Name("BM_EncodePngLibpng")
    ->Arg(1024)
    ->ArgName("side")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace zimage::bench

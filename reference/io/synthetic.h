// Counter-based synthetic weights, bit-identical to tools/golden/synthetic.py
// (spec: docs/goldens.md, "Synthetic weights"). Every value depends only on
// (seed, tensor name, flat index), so any tensor can be generated alone, in
// any order, on any machine.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace zimage {

// FNV-1a 64-bit over the bytes of s (offset basis 0xcbf29ce484222325,
// prime 0x100000001b3).
uint64_t fnv1a64(std::string_view s);

// The SplitMix64 finalizer: z ^= z >> 30; z *= 0xBF58476D1CE4E5B9;
// z ^= z >> 27; z *= 0x94D049BB133111EB; z ^= z >> 31.
uint64_t mix64(uint64_t z);

// out[i] = float32(offset + scale * (2 * u_i - 1)) for i in [0, n), with
// u_i = (mix64(key + (i + 1) * 0x9E3779B97F4A7C15) >> 11) * 2^-53 and
// key = mix64(seed * 0x9E3779B97F4A7C15 ^ fnv1a64(name)); every double
// operation rounds once (no FMA), then one rounding to float.
void synthetic_fill(uint64_t seed, const std::string& name, double offset, double scale, float* out, int64_t n);

}  // namespace zimage

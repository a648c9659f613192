// Synthetic AutoencoderKL weights: the counter-based generator
// (io/synthetic.h) with the VAE rule of tools/golden/dump_vae.py
// (vae_rule), so that a spec made here and one made by the dumper agree:
//   GroupNorm weight [C]        offset 1, scale 0.2
//   every bias                  offset 0, scale 0.05
//   Conv2d weight [O, I, kh, kw] offset 0, scale 1 / sqrt(I * kh * kw)
//   Linear weight [O, I]        offset 0, scale 1 / sqrt(I)
// (every 1-D weight of AutoencoderKL is a GroupNorm weight).
#pragma once
#include <cstdint>
#include <string>

#include "io/param_source.h"
#include "vae/config.h"

namespace zimage {

// The rule above for one parameter of AutoencoderKL.
SyntheticRange vae_synthetic_rule(const std::string& name, const Shape& shape);

// The synthetic_weights JSON for every parameter of AutoencoderKL(cfg).
std::string vae_synthetic_spec(const VaeConfig& cfg, uint64_t seed);

}  // namespace zimage

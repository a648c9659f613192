// torch's CPU random generator and torch.randn(dtype=float32) on it, bit for
// bit, so the reference starts from the same noise as diffusers given a seed.
// Ref: torch aten/src/ATen/CPUGeneratorImpl.cpp (mt19937 engine, random(), random64()),
//      aten/src/ATen/core/DistributionsHelper.h (uniform_real_distribution, normal_distribution),
//      aten/src/ATen/native/cpu/DistributionTemplates.h (normal_kernel, normal_fill, normal_fill_16),
//      diffusers/utils/torch_utils.py (randn_tensor).
//
// The algorithm (docs/scheduler.md, "torch's CPU generator"):
// - torch.Generator("cpu").manual_seed(s): mt19937 seeded with the low 32 bits
//   of s (at::mt19937 stores the 64-bit seed but only state_[0] = s & 0xffffffff
//   enters the state), and both cached normal samples cleared.
// - numel >= 16, contiguous float32: one 24-bit uniform per element,
//   u = (random() & 0xffffff) * 2^-24, all drawn first; then per block of 16,
//   Box-Muller over the pairs (j, j + 8), j = 0..7:
//   radius = sqrt(-2 log(1 - u[j])), theta = 2 pi u[j+8],
//   out[j] = radius * cos(theta), out[j+8] = radius * sin(theta);
//   if numel % 16 != 0 the last 16 outputs are redone from 16 fresh uniforms.
//   log/sin/cos depend on torch's CPU capability (TorchCpuCapability):
//   AVX2 and AVX512 run normal_fill_AVX2 (avx_mathfun.h's Cephes polynomials
//   log256_ps / sincos256_ps, with the FMAs GCC contracts them into, and
//   theta = float(2 pi) * u2 in float); DEFAULT runs the scalar normal_fill
//   with libm logf/cosf/sinf and theta = float(2 pi (double) * u2).
// - numel < 16 (and non-contiguous tensors): per element
//   at::normal_distribution<double>: a cached second sample if there is one,
//   else u1, u2 = 53-bit uniforms from random64(), r = sqrt(-2 log1p(-u2)),
//   theta = 2 pi u1, cache r sin(theta), return r cos(theta); cast to float.
//   The cache lives in the generator, so it survives into the next call.
#pragma once
#include <cstdint>
#include <optional>
#include <random>
#include <vector>

#include "core/tensor.h"

namespace zimage {

// Which of torch's CPU kernel builds to reproduce. torch compiles its CPU
// kernels once per capability and picks one at run time (torch.backends.cpu.
// get_cpu_capability(), overridable with ATEN_CPU_CAPABILITY). The builds differ
// in the last bits (docs/scheduler.md, all measured with torch 2.14.1):
//   Avx2:    the AVX2 and AVX512 builds (identical for every kernel used here):
//            compiled with -mfma, so GCC contracts a * b + c into one FMA in
//            scalar code (torch.linspace), randn runs normal_fill_AVX2
//            (avx_mathfun.h polynomials), vector_norm's scalar tail is an FMA.
//            Every x86-64 CPU with AVX2: the capability diffusers users get.
//   Default: the DEFAULT build (no AVX2, non-x86 CPUs, ATEN_CPU_CAPABILITY=default):
//            no FMA contraction; randn runs the scalar normal_fill with libm
//            logf/cosf/sinf (bit-exact here with glibc; another libm may differ).
enum class TorchCpuCapability { Avx2, Default };

class TorchCpuGenerator {
 public:
  explicit TorchCpuGenerator(uint64_t seed);  // torch.Generator("cpu").manual_seed(seed)

  // torch.randn(n, generator=g, dtype=torch.float32) (a contiguous tensor of n
  // elements; any shape with n elements draws the same values): consecutive
  // calls continue the stream.
  void randn(float* out, int64_t n, TorchCpuCapability cap = TorchCpuCapability::Avx2);

  uint32_t random();    // CPUGeneratorImpl::random(): one mt19937 output
  uint64_t random64();  // CPUGeneratorImpl::random64(): (first << 32) | second

 private:
  double normal_double();  // at::normal_distribution<double>(0, 1)
  std::mt19937 engine_;
  std::optional<double> next_double_normal_;
};

// diffusers randn_tensor(shape, generator=torch.Generator("cpu").manual_seed(seed),
// dtype=torch.float32): one generator for the whole latent [B, C, H, W].
Tensor<float> randn_latents(uint64_t seed, const Shape& shape, TorchCpuCapability cap = TorchCpuCapability::Avx2);

// randn_tensor with a list of generators, one per batch item (len(seeds) == shape[0]):
// item b is torch.randn((1, *shape[1:]), generator=Generator().manual_seed(seeds[b])).
// A list of one generator is treated like a single generator, as diffusers does.
Tensor<float> randn_latents_per_item(const std::vector<uint64_t>& seeds, const Shape& shape,
                                     TorchCpuCapability cap = TorchCpuCapability::Avx2);

}  // namespace zimage

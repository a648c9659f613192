// Holding fp32 weights as bf16 in memory: the Z-Image-Turbo transformer ships
// as fp32 shards (24.6 GB) whose values are all exactly representable in
// bf16, so 12.3 GB of bf16 hold the same numbers. A value is bf16-exact when
// the low 16 bits of its fp32 pattern are 0; then widening the bf16 back to
// fp32 restores it bit for bit, and every forward is unchanged.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "io/param_source.h"

namespace zimage {

// Index of the first value of x[0..n) that is not bf16-exact, or -1.
int64_t first_non_bf16_exact(const float* x, int64_t n);

// Whether the stored tensor's values are all bf16-exact, reading its bytes in
// place (F32: low 16 bits of each value; BF16: always; F16: widened to fp32
// first; F64: exactly an fp32 that is bf16-exact). On false, *first_bad gets
// the first flat index that is not.
bool view_is_bf16_exact(const TensorView& v, int64_t* first_bad = nullptr);

// A copy of every tensor of `src` held as bf16 (2 bytes a value). Each tensor
// is checked when it is read: a value that is not bf16-exact is a
// zimage::Error naming the tensor, the flat index, the value and its bits
// (such a checkpoint must be held as fp32). load()/load_float() widen exactly,
// so forwards from the held copy equal forwards from `src` bit for bit.
// The source's pages are released tensor by tensor while copying.
std::shared_ptr<ParamSource> hold_as_bf16(std::shared_ptr<const ParamSource> src);

}  // namespace zimage

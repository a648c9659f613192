// The DiT's module table: every diffusers module path of
// ZImageTransformer2DModel this suite checks, with its op chain (the error
// budget, numerics/tolerance.h, docs/tolerances.md) and its runner (the
// reference function that reproduces it, teacher forced on the inputs a golden
// recorded for it: `<path>:in.<arg>`). One row per module in
// dit/module_table.cpp; adding a module is adding a row there.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dit/config.h"
#include "numerics/tolerance.h"
#include "validation/golden_file.h"

namespace zimage {

// The op chain of a module by its path ("layers.3.attention",
// "noise_refiner.0.feed_forward.w2", "t_embedder", "sample.0", ...).
// `seq_len` is the attention length L where it matters. Throws for a path
// the table has no chain for: every comparison must have a derived budget.
std::vector<numerics::Op> dit_module_ops(const std::string& path, const ZImageConfig& cfg, int64_t seq_len);
numerics::Budget dit_module_budget(numerics::Tier tier, const std::string& path, const ZImageConfig& cfg,
                                   int64_t seq_len);

// The module's output computed by the reference on the golden's recorded
// inputs, or nullopt when the golden lacks them (and for model-level tensors:
// sample.*, x.*, cap_feats.*, patchify.*, t, compared by the whole-model run).
// Throws for a path the table has no runner for.
template <class T>
std::optional<Tensor<T>> run_dit_module(const GoldenFile& g, const std::string& path);

// The attention length L a module at `path` sees, from its golden inputs (for
// the softmax terms of its budget); 1 when it has none.
int64_t module_seq_len(const GoldenFile& g, const std::string& path);

}  // namespace zimage

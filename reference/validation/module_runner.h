// Teacher forcing: run one diffusers module of the reference on the inputs a
// golden recorded for it (`<path>:in.<arg>`), with the weights of that path.
// This is the table that maps diffusers module paths to reference functions.
#pragma once
#include <optional>
#include <string>

#include "validation/golden_file.h"

namespace zimage {

// Returns the module's output, or nullopt when the golden lacks the inputs
// for it. Throws for a path with inputs this runner does not know.
template <class T>
std::optional<Tensor<T>> run_module(const GoldenFile& g, const std::string& path);

// The attention length L a module at `path` sees, from its golden inputs (for
// the softmax terms of its budget); 1 when it has none.
int64_t module_seq_len(const GoldenFile& g, const std::string& path);

}  // namespace zimage

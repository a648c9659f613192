// The transformer inputs a kind=model golden holds (docs/goldens.md): x.{i} and cap_feats.{i} for
// each item of the batch, and t.
#pragma once
#include <string>

#include "dit/transformer.h"
#include "validation/golden_file.h"

namespace zimage {

template <class T>
DitInputs<T> golden_dit_inputs(const GoldenFile& g) {
  DitInputs<T> in;
  for (int i = 0; i < g.batch_size(); ++i) {
    in.x.push_back(g.get<T>("x." + std::to_string(i)));
    in.cap_feats.push_back(g.get<T>("cap_feats." + std::to_string(i)));
  }
  in.t = g.get<T>("t");
  return in;
}

}  // namespace zimage

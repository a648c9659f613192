// `zimage validate`: every tensor of a golden checked against the reference,
// one row per module.
//   T0 (exact): patchify.* layout, padding and position ids from the whole forward.
//   T2 (teacher forced): each module on the golden's own recorded inputs.
//   T2 (free running): sample.{i} of the whole forward from x, cap_feats, t.
#pragma once
#include <string>
#include <vector>

#include "numerics/tolerance.h"
#include "validation/golden_file.h"

namespace zimage {

struct ValidationRow {
  std::string module;
  Shape shape;
  std::string tier;  // "T0", "T2 teacher-forced", "T2 whole-model"
  numerics::Comparison cmp;
  numerics::Budget budget;  // unused for T0
  bool exact = false;
  bool pass = false;
};

template <class T>
std::vector<ValidationRow> validate_golden(const GoldenFile& g);

// Fixed-width table: module, shape, tier, rel_rms, max_n, budget, used, PASS/FAIL.
std::string format_rows(const std::vector<ValidationRow>& rows, bool header);

}  // namespace zimage

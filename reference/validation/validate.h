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
  std::string detail;  // printed after the result (ulp distances, outcomes)
};

template <class T>
std::vector<ValidationRow> validate_golden(const GoldenFile& g);

// The RoPE goldens (kinds rope_table, rope_gather, rope_sweep; docs/rope.md),
// called by validate_golden.
template <class T>
std::vector<ValidationRow> validate_rope_golden(const GoldenFile& g);

// The rope_sweep golden one caption length at a time: the diffusers outcome
// (success and output, or the failure and the row it could not index), or,
// with `extension`, the --rope-extend run against diffusers with a longer table.
std::vector<int64_t> rope_sweep_lengths(const GoldenFile& g, bool extension);
template <class T>
std::vector<ValidationRow> validate_rope_sweep_case(const GoldenFile& g, int64_t caption_len, bool extension);

// A T2 row: `got` against golden tensor `name` within the budget of `budget_path`.
template <class T>
ValidationRow t2_row(const GoldenFile& g, const std::string& name, const Tensor<T>& got, const std::string& tier,
                     const std::string& budget_path, int64_t seq_len);

// Fixed-width table: module, shape, tier, rel_rms, max_n, budget, used, PASS/FAIL.
std::string format_rows(const std::vector<ValidationRow>& rows, bool header);

}  // namespace zimage

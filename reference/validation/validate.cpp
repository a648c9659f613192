#include "validation/validate.h"

#include <cstdio>

#include "dit/transformer.h"
#include "dit/module_table.h"
#include "validation/golden_inputs.h"

namespace zimage {

using numerics::Tier;

template <class T>
ValidationRow t2_row(const GoldenFile& g, const std::string& name, const Tensor<T>& got, const std::string& tier,
                     const std::string& budget_path, int64_t seq_len) {
  ValidationRow r;
  r.module = name;
  r.tier = tier;
  const Tensor<double> ref = g.get<double>(name);
  r.shape = ref.shape;
  r.cmp = numerics::compare(got, ref);
  r.budget = dit_module_budget(Tier::T2, budget_path, g.config, seq_len);
  r.pass = numerics::passes(r.cmp, r.budget);
  return r;
}

template <class T>
std::vector<ValidationRow> validate_golden(const GoldenFile& g) {
  if (g.kind.rfind("rope_", 0) == 0) return validate_rope_golden<T>(g);
  ZIMAGE_CHECK(g.kind == "model" || g.kind == "modules", g.path + ": unknown golden kind '" + g.kind + "'");
  std::vector<ValidationRow> rows;
  if (g.kind == "model") {
    Activations<T> acts;
    acts.check_finite = true;
    // Block by block (bitwise the same as zimage_forward(load_weights(...))): `zimage validate
    // --model DIR` on a user's real checkpoint holds one block in memory, not 6.15B parameters.
    const std::vector<Tensor<T>> samples = zimage_forward_streaming(g.config, *g.params, golden_dit_inputs<T>(g), &acts);
    if (acts.first_nonfinite) {
      ValidationRow r;
      r.module = "check-finite";
      r.tier = "T0 (finite)";
      r.exact = true;
      r.detail = "(" + acts.first_nonfinite->describe() + ")";
      rows.push_back(r);
    }
    for (const auto& name : g.module_outputs()) {
      if (name.rfind("patchify.", 0) != 0) continue;
      ValidationRow r;
      r.module = name;
      r.tier = "T0";
      r.exact = true;
      const Tensor<double> ref = g.get<double>(name);
      r.shape = ref.shape;
      auto it = acts.find(name);
      ZIMAGE_CHECK(it != acts.end(), g.path + ": the reference forward produced no '" + name + "'");
      r.cmp = numerics::compare(it->second, ref.reshaped(it->second.shape));
      r.pass = numerics::passes_exact(r.cmp);
      rows.push_back(r);
    }
    const int64_t L = g.has("layers.0:in.x") ? g.file->view("layers.0:in.x").shape[1] : 1;
    for (size_t i = 0; i < samples.size(); ++i)
      rows.push_back(t2_row(g, "sample." + std::to_string(i), samples[i], "T2 whole-model", "sample." + std::to_string(i), L));
  }
  for (const auto& name : g.module_outputs()) {
    const std::optional<Tensor<T>> got = run_dit_module<T>(g, name);
    if (!got) continue;
    rows.push_back(t2_row(g, name, *got, "T2 teacher-forced", name, module_seq_len(g, name)));
  }
  return rows;
}

std::string format_rows(const std::vector<ValidationRow>& rows, bool header) {
  std::string out;
  char buf[400];
  if (header) {
    std::snprintf(buf, sizeof buf, "%-44s %-18s %-18s %-10s %-10s %-10s %-7s %s\n", "module", "shape", "tier", "rel_rms",
                  "max_n", "budget", "used", "result");
    out += buf;
  }
  for (const auto& r : rows) {
    if (r.exact) {
      const std::string detail =
          r.detail.empty() ? "(" + std::to_string(r.cmp.mismatches) + " of " + std::to_string(r.cmp.n) + " differ)" : r.detail;
      std::snprintf(buf, sizeof buf, "%-44s %-18s %-18s %-10s %-10s %-10s %-7s %s %s\n", r.module.c_str(),
                    shape_str(r.shape).c_str(), r.tier.c_str(), "-", "-", "exact", "-", r.pass ? "PASS" : "FAIL",
                    detail.c_str());
    } else {
      std::snprintf(buf, sizeof buf, "%-44s %-18s %-18s %-10.3e %-10.3e %-10.3e %5.1f%%  %s\n", r.module.c_str(),
                    shape_str(r.shape).c_str(), r.tier.c_str(), r.cmp.rel_rms, r.cmp.max_n, r.budget.rel_rms,
                    100.0 * numerics::budget_used(r.cmp, r.budget), r.pass ? "PASS" : "FAIL");
    }
    out += buf;
  }
  return out;
}

template ValidationRow t2_row<float>(const GoldenFile&, const std::string&, const Tensor<float>&, const std::string&,
                                     const std::string&, int64_t);
template ValidationRow t2_row<double>(const GoldenFile&, const std::string&, const Tensor<double>&, const std::string&,
                                      const std::string&, int64_t);
template std::vector<ValidationRow> validate_golden<float>(const GoldenFile&);
template std::vector<ValidationRow> validate_golden<double>(const GoldenFile&);

}  // namespace zimage

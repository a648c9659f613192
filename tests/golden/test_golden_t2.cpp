// T2, teacher forced: every module output recorded in every golden, computed
// by the reference (float and double) from the golden's own inputs for that
// module, within 2 x the fp32 chain budget (docs/tolerances.md T2).
#include <map>
#include <mutex>

#include "support/goldens.h"
#include "support/test_support.h"
#include "dit/module_table.h"

namespace zimage {
namespace {

struct ModuleCase {
  std::string golden, module;
};

void PrintTo(const ModuleCase& m, std::ostream* os) { *os << m.golden << " " << m.module; }

std::vector<ModuleCase> module_cases() {
  std::vector<ModuleCase> out;
  for (const auto& c : testing::golden_cases()) {
    const auto f = SafetensorsFile::open(testing::golden_path(c));
    const std::string kind = f->metadata().count("kind") ? f->metadata().at("kind") : "";
    if (kind != "model" && kind != "modules") continue;  // RoPE goldens: tests/golden/test_rope_goldens.cpp
    for (const auto& n : f->names())
      if (f->contains(n + ":in.x") || f->contains(n + ":in.hidden_states") || f->contains(n + ":in.input") ||
          f->contains(n + ":in.t") || f->contains(n + ":in.ids") || n.rfind("rope_embedder.freqs_cis.", 0) == 0)
        out.push_back({c, n});
  }
  return out;
}

// Goldens are opened once per process (opening screens every tensor).
const GoldenFile& golden(const std::string& c) {
  return testing::open_once<GoldenFile>(testing::golden_path(c), [](const std::string& p) { return open_golden(p); });
}

class GoldenModuleT2 : public ::testing::TestWithParam<ModuleCase> {};

TEST_P(GoldenModuleT2, TeacherForcedWithinBudget) {
  const auto& [c, module] = GetParam();
  const GoldenFile& g = golden(c);
  const Tensor<double> ref = g.get<double>(module);
  const numerics::Budget b = dit_module_budget(numerics::Tier::T2, module, g.config, module_seq_len(g, module));
  const auto f = run_dit_module<float>(g, module);
  const auto d = run_dit_module<double>(g, module);
  ASSERT_TRUE(f && d) << "golden " << c << " lacks the inputs of " << module;
  testing::expect_within(c + " " + module + " float", numerics::compare(*f, ref), b);
  testing::expect_within(c + " " + module + " double", numerics::compare(*d, ref), b);
}

INSTANTIATE_TEST_SUITE_P(Goldens, GoldenModuleT2, ::testing::ValuesIn(module_cases()), [](const auto& info) {
  return testing::test_name(info.param.golden + "__" + info.param.module);
});
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GoldenModuleT2);

}  // namespace
}  // namespace zimage

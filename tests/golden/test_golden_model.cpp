// Whole model against each kind=model golden: T0 for the layout tensors
// (patchify.*: padded patches, padded caption rows, position ids, pad masks,
// sizes), T2 for sample.{i} free running from x, cap_feats, t.
#include "support/goldens.h"
#include "support/test_support.h"
#include "validation/validate.h"

namespace zimage {
namespace {

std::vector<std::string> model_cases() {
  std::vector<std::string> out;
  for (const auto& c : testing::golden_cases()) {
    const auto f = SafetensorsFile::open(testing::golden_path(c));
    if (f->metadata().count("kind") && f->metadata().at("kind") == "model") out.push_back(c);
  }
  return out;
}

template <class T>
void check_case(const std::string& c) {
  const GoldenFile g = open_golden(testing::golden_path(c));
  const auto rows = validate_golden<T>(g);
  int t0 = 0, samples = 0;
  for (const auto& r : rows) {
    if (r.tier == "T0") {
      ++t0;
      testing::expect_exact(c + " " + r.module, r.cmp);
    } else if (r.tier == "T2 whole-model") {
      ++samples;
      testing::expect_within(c + " " + r.module, r.cmp, r.budget);
    }
  }
  EXPECT_GT(t0, 0) << "no patchify.* tensors checked in " << c;
  EXPECT_EQ(samples, g.batch_size()) << "not every sample.{i} checked in " << c;
}

class GoldenModel : public ::testing::TestWithParam<std::string> {};
TEST_P(GoldenModel, LayoutExactAndSampleWithinBudget_double) { check_case<double>(GetParam()); }
TEST_P(GoldenModel, LayoutExactAndSampleWithinBudget_float) { check_case<float>(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Goldens, GoldenModel, ::testing::ValuesIn(model_cases()),
                         [](const auto& info) { return testing::test_name(info.param); });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GoldenModel);

// The shipped goldens must include what docs/goldens.md promises.
TEST(GoldenInventory, AllCasesPresent) {
  const auto cases = testing::golden_cases();
  for (const char* c : {"tiny_single", "tiny_batch2", "tiny_wide", "narrow_full_depth", "real_modules", "rope_table",
                        "rope_gather", "rope_sweep"})
    EXPECT_NE(std::find(cases.begin(), cases.end(), c), cases.end()) << "golden/" << c << ".safetensors missing";
}

}  // namespace
}  // namespace zimage

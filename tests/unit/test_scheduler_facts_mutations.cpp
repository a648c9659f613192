// The scheduler's mutation itself (no data files): Mutation::SigmasTimestepsOutOfStep makes
// flow_match_step use sigmas[i + 2] - sigmas[i + 1] (clamped at the end), and nothing once the
// ScopedMutation is gone. Linked against the mutants build of the reference
// (zimage_ref_mutants; reference/numerics/mutation.h); its gate test is
// tests/golden/test_scheduler_mutations.cpp.
#include <gtest/gtest.h>

#include <vector>

#include "numerics/mutation.h"
#include "pipeline/scheduler.h"

namespace zimage {
namespace {

const FlowMatchSchedulerConfig kTurbo{.shift = 3.0};

TEST(SchedulerFacts, MutationShiftsTheSigmaPair) {
  const Schedule s = zimage_pipeline_schedule(kTurbo, 2, 4096);  // sigmas [1, 0.75, 0]
  std::vector<float> x = {0.0f}, v = {1.0f};
  {
    ScopedMutation m(Mutation::SigmasTimestepsOutOfStep);
    flow_match_step(s, 0, v.data(), x.data(), 1);  // sigmas[2] - sigmas[1]
    EXPECT_EQ(x[0], -0.75f);
    flow_match_step(s, 1, v.data(), x.data(), 1);  // clamped: sigmas[2] - sigmas[2]
    EXPECT_EQ(x[0], -0.75f);
  }
  flow_match_step(s, 0, v.data(), x.data(), 1);
  EXPECT_EQ(x[0], -1.0f);
}

}  // namespace
}  // namespace zimage

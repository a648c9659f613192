// Scheduler mutation test (docs/tolerances.md, "Mutation tests"): the
// trajectory gate of test_scheduler_goldens.cpp (bit-exact against diffusers)
// fails when sigmas and timesteps are out of step. Linked against the mutants
// build of the reference (zimage_ref_mutants; reference/numerics/mutation.h).
// docs/scheduler.md.
#include "numerics/mutation.h"
#include "pipeline/scheduler.h"
#include "support/scheduler_golden.h"
#include "support/test_support.h"

namespace zimage {
namespace {

// Mutation (docs/tolerances.md): step i paired with the wrong sigmas must fail the
// trajectory gate, which passes without it.
TEST(SchedulerMutation, SigmasTimestepsOutOfStepIsCaught) {
  const int64_t clean = testing::scheduler_trajectory_mismatches(false);
  int64_t mutated_count;
  {
    ScopedMutation m(Mutation::SigmasTimestepsOutOfStep);
    mutated_count = testing::scheduler_trajectory_mismatches(false);
  }
  std::printf("  clean: %lld mismatching elements over 8 steps; mutated [%s]: %lld\n", (long long)clean,
              mutation_name(Mutation::SigmasTimestepsOutOfStep), (long long)mutated_count);
  EXPECT_EQ(clean, 0);
  EXPECT_GT(mutated_count, 0);
}

}  // namespace
}  // namespace zimage

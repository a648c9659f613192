// golden/scheduler.safetensors as the scheduler golden tests (test_scheduler_goldens.cpp) and
// the scheduler mutation test (test_scheduler_mutations.cpp) read it, and the step gate they
// share: the 8-step trajectory.
#pragma once
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "numerics/tolerance.h"
#include "pipeline/scheduler.h"
#include "support/goldens.h"
#include "validation/golden_file.h"

namespace zimage::testing {

inline const std::shared_ptr<SafetensorsFile>& scheduler_golden() {
  static const auto f = open_pipeline_part_golden(golden_path("scheduler"), "scheduler");
  return f;
}

// The 8-step trajectory: sample_{i+1} = step(model_output_i, t_i, sample_i),
// ours chained from sample_0 (errors would accumulate). Returns the mismatches.
inline int64_t scheduler_trajectory_mismatches(bool print) {
  const Schedule s = zimage_pipeline_schedule(FlowMatchSchedulerConfig{.shift = 3.0}, 8, 4096);
  std::vector<float> x = scheduler_golden()->get<float>("step.traj.sample.0").data;
  int64_t total = 0;
  for (int i = 0; i < s.steps(); ++i) {
    const auto mo = scheduler_golden()->get<float>("step.traj.model_output." + std::to_string(i));
    flow_match_step(s, i, mo.ptr(), x.data(), int64_t(x.size()));
    const std::string k = "step.traj.sample." + std::to_string(i + 1);
    const auto ref = scheduler_golden()->get<float>(k);
    const auto u = numerics::ulp_distance(Tensor<float>(ref.shape, x), ref);
    if (print)
      std::printf("  %s: %lld of %lld differ, max ulp %lld\n", k.c_str(), (long long)u.differ, (long long)ref.numel(),
                  (long long)u.max_ulp);
    total += u.differ;
  }
  return total;
}

}  // namespace zimage::testing

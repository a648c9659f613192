// The mutation tests' gate (docs/tolerances.md, "Mutation tests"): a named golden check passes
// without the injected porting bug and fails with it; both runs are printed with their headroom.
// For test_*mutations.cpp only: they link the mutants build of the reference (numerics/mutation.h).
#pragma once
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <utility>

#include "numerics/mutation.h"

namespace zimage::testing {

// `m` has mutation, golden and check; `run_check(m)` runs that check and returns (passed, description).
template <class Case, class RunCheck>
void expect_mutation_caught(const Case& m, RunCheck run_check) {
  const auto [clean_pass, clean] = run_check(m);
  std::printf("  clean   %s %s: %s\n", m.golden.c_str(), m.check.c_str(), clean.c_str());
  EXPECT_TRUE(clean_pass) << "the check must pass without the mutation: " << clean;
  std::pair<bool, std::string> mutated_result;
  {
    ScopedMutation scoped(m.mutation);
    mutated_result = run_check(m);
  }
  std::printf("  mutated %s %s [%s]: %s\n", m.golden.c_str(), m.check.c_str(), mutation_name(m.mutation),
              mutated_result.second.c_str());
  EXPECT_FALSE(mutated_result.first) << mutation_name(m.mutation) << " was not caught by " << m.check;
}

}  // namespace zimage::testing

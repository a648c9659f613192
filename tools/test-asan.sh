#!/usr/bin/env bash
# Sanitizer job: builds the CPU path with AddressSanitizer + UndefinedBehaviorSanitizer
# (+ LeakSanitizer, part of ASan) in build-asan/ (CMake preset "asan": clang,
# RelWithDebInfo, no CUDA, no benchmarks; clang because it compiled this build in 993
# CPU-seconds where g++ took about 1570, docs/reliability.md) and runs the unit and golden ctest
# labels under it (not slow; one ctest test per program, with a gtest filter), except the double-precision twins of the
# long-caption RoPE sweep cases (992 tokens and up; their float twins and the
# double cases up to 513 tokens run the same code here, and all of them run
# unsanitized in the main job) and of the eight real-width teacher-forced goldens (real_modules
# context_refiner.0 / layers.0 / its attention and feed_forward, te_real_layer layers.0 / its mlp
# and self_attn / hidden_states.1: 223 of 1124 process-seconds under ASan; also te_real_layer's
# transformers bf16 golden check; the tiny goldens run the same code sanitized, and all of them run
# unsanitized in the main job), and without the mutation tests and the
# mutants build of the reference they link (ZIMAGE_BUILD_MUTATION_TESTS=OFF:
# they prove gates fail on injected bugs, not memory safety; the main job runs
# them; leaving them out here pays for the main job's second compile of the
# reference): preset "asan", docs/reliability.md. Any
# sanitizer report aborts the test that hit it, so the exit status is non-zero
# on any finding or test failure.
# Sanitizer options are set by the "asan" test preset in CMakePresets.json.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
tools/install-deps.sh
cmake --preset asan
cmake --build --preset asan -j"$(nproc)"
ctest --preset asan -j"$(nproc)"
echo "test-asan.sh: passed in $((SECONDS - start)) s"

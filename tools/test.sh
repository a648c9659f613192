#!/usr/bin/env bash
# Second command of the README (and what .ci/run runs): install what is
# missing, then
#   1. build (default preset) and run the whole ctest suite (labels unit,
#      golden, slow; cuda tests skip without a GPU);
#   1b. the install: cmake --install into a temporary prefix, then tests/consumer built against
#      it alone (tools/test-install.sh);
#   2. the sanitizer job: unit and golden tests under ASan + UBSan (tools/test-asan.sh);
#   3. a short fuzz run: the five libFuzzer targets side by side for 40 s
#      (tools/fuzz.sh 40 --jobs 5; docs/reliability.md says why 40).
# Exit status non-zero on any failure.
# The test presets run every test with OMP_NUM_THREADS=1, nproc tests at once:
# OpenMP threads of parallel test processes would oversubscribe the cores, and
# their spin-waits made a tiny-model test 20x slower (0.3 s vs 6.4 s, measured
# here under load). tests/unit/test_determinism.cpp sets its thread counts itself.
# They also set GLIBC_TUNABLES=glibc.malloc.hugetlb=1: large tensors get transparent
# huge pages. On this 2-core VM a real-width test spent most of its time in page
# faults (1.59M faults, 20.6 s; with the tunable 22k faults, 3.6 s; docs/reliability.md).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
tools/install-deps.sh
cmake --preset default
cmake --build --preset default -j"$(nproc)"
ctest --preset default -j"$(nproc)"
echo "test.sh: main suite done at $((SECONDS - start)) s"
tools/test-install.sh build
echo "test.sh: install + consumer project done at $((SECONDS - start)) s"
tools/test-asan.sh
echo "test.sh: sanitizer job done at $((SECONDS - start)) s"
tools/fuzz.sh 40 --jobs 5
echo "test.sh: fuzz run done at $((SECONDS - start)) s"

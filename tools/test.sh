#!/usr/bin/env bash
# Second command of the README (and what .ci/run runs): install what is
# missing, build, and run the whole ctest suite (labels unit, golden, slow;
# cuda tests skip without a GPU). Exit status non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake --preset default
cmake --build --preset default -j"$(nproc)"
ctest --preset default -j"$(nproc)"

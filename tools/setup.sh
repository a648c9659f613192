#!/usr/bin/env bash
# First command of the README: install what is missing, build (default
# preset: build/), then run the main job, `zimage validate`, on the goldens
# shipped in golden/. Exit status non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake --preset default
cmake --build --preset default -j"$(nproc)"
build/bin/zimage validate

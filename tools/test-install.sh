#!/usr/bin/env bash
# Installs a configured build (default build/) into a temporary prefix, then configures, builds
# and runs tests/consumer against that install alone (find_package(ZImageReference)): the check
# that the installed package works for a project outside this tree. Exit non-zero on any failure.
#   tools/test-install.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[ -f "$build/CMakeCache.txt" ] || { echo "test-install: $build is not a configured build folder" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; exit 1; }
echo "test-install: installed $(find "$tmp/prefix" -type f | wc -l) files into a temporary prefix"
cmake -S tests/consumer -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_BUILD_TYPE=Release
cmake --build "$tmp/consumer" -j"$(nproc)"
"$tmp/consumer/my_attention_check"
# The installed CLI runs on its own: its usage names every command.
"$tmp/prefix/bin/zimage" >"$tmp/usage.txt" 2>&1 || true
grep -q "zimage dit" "$tmp/usage.txt" || { echo "test-install: the installed zimage printed no usage" >&2; cat "$tmp/usage.txt"; exit 1; }
echo "test-install: ok"

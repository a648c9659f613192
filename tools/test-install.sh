#!/usr/bin/env bash
# Installs a configured build (default build/) into a temporary prefix, then configures, builds
# and runs tests/consumer against that install alone (find_package(ZImageReference)): the check
# that the installed package works for a project outside this tree, and that what is installed is the
# mutation-free build (no zimage_ref_mutants, no mutation symbols). Exit non-zero on any failure.
#   tools/test-install.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[ -f "$build/CMakeCache.txt" ] || { echo "test-install: $build is not a configured build folder" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; exit 1; }
echo "test-install: installed $(find "$tmp/prefix" -type f | wc -l) files into a temporary prefix"
# Only the shipped, mutation-free reference is installed (reference/numerics/mutation.h): no mutants
# library, and no mutation switch in the installed archive or CLI.
if find "$tmp/prefix" -name '*mutants*' | grep -q .; then
  echo "test-install: the mutants build was installed:" >&2; find "$tmp/prefix" -name '*mutants*' >&2; exit 1
fi
lib=$(find "$tmp/prefix" -name libzimage_ref.a | head -n 1)
[ -n "$lib" ] || { echo "test-install: no libzimage_ref.a in the install" >&2; exit 1; }
if nm -C "$lib" "$tmp/prefix/bin/zimage" | grep -E 'zimage::(set_mutation|active_mutation|mutation_name)\('; then
  echo "test-install: the installed library or CLI holds the mutation switch" >&2; exit 1
fi
cmake -S tests/consumer -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_BUILD_TYPE=Release
cmake --build "$tmp/consumer" -j"$(nproc)"
"$tmp/consumer/my_attention_check"
# The installed CLI runs on its own: its usage names every command.
"$tmp/prefix/bin/zimage" >"$tmp/usage.txt" 2>&1 || true
grep -q "zimage dit" "$tmp/usage.txt" || { echo "test-install: the installed zimage printed no usage" >&2; cat "$tmp/usage.txt"; exit 1; }
echo "test-install: ok"

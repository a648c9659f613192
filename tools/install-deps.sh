#!/usr/bin/env bash
# Installs the Debian packages the build needs, only those missing.
set -euo pipefail
PKGS=(cmake g++ make libeigen3-dev libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev libpng-dev zlib1g-dev python3)
# tools/fuzz.sh (preset "fuzz"): clang with libFuzzer + sanitizer runtimes, and
# LLVM's OpenMP (the top-level find_package(OpenMP) with clang needs it).
PKGS+=(clang libclang-rt-14-dev libomp-dev)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

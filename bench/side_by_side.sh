#!/usr/bin/env bash
# The reference against PyTorch CPU on the same shapes, same thread count, in
# one run: rounds alternate (reference, torch, reference, torch, ...) and each
# side keeps its best median, so a slow moment hits both.
#
#   bench/side_by_side.sh [--threads N] [--rounds R] [--filter REGEX] [--out DIR] [--torch-blas DIR]
#
# --torch-blas DIR puts DIR first on torch's LD_LIBRARY_PATH: the golden env's
# Debian torch links libblas.so.3, which is the netlib reference BLAS there
# (BLAS_INFO=generic, about 0.7 GFLOP/s); DIR holding OpenBLAS's libblas.so.3
# (Debian libopenblas0-pthread, openblas-pthread/) gives torch an optimized
# GEMM. The BLAS torch loaded is recorded in torch.json's context.
#
# Needs build/bin/zimage_bench (tools/setup.sh), the golden env
# (../shared/golden-env) and DIFFUSERS_SRC (diffusers' src/, see
# tools/golden/README.md). Writes DIR/ours.json, DIR/torch.json,
# DIR/side_by_side.json and DIR/side_by_side.png (default DIR: build/side_by_side)
# and prints one row per module with torch_time / reference_time (> 1: the
# reference is faster).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=$(nproc); rounds=2; torch_blas=""; filter='BM_(Linear|Sdpa|RmsNorm|FeedForward|Attention|TransformerBlock)<float>'; out=build/side_by_side
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --filter) filter=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --torch-blas) torch_blas=$(cd "$2" && pwd); shift 2 ;;
    *) echo "side_by_side.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x build/bin/zimage_bench ] || { echo "side_by_side.sh: build/bin/zimage_bench missing (run tools/setup.sh)" >&2; exit 2; }
# The golden env binds only this repository (and DIFFUSERS_SRC): a BLAS folder
# outside it would be silently missing there and torch would keep netlib.
[ -z "$torch_blas" ] || [[ "$torch_blas" == "$PWD"/* ]] ||
  { echo "side_by_side.sh: --torch-blas $torch_blas is outside the repository; the golden env cannot see it (copy it under build/)" >&2; exit 2; }
[ -n "${DIFFUSERS_SRC:-}" ] || { echo "side_by_side.sh: set DIFFUSERS_SRC to diffusers' src/ folder" >&2; exit 2; }
GOLDEN_ENV=${GOLDEN_ENV:-../shared/golden-env}
mkdir -p "$out"
for r in $(seq 1 "$rounds"); do
  echo "== round $r/$rounds: reference ($threads threads)"
  OMP_NUM_THREADS=$threads build/bin/zimage_bench --benchmark_filter="$filter" \
    --benchmark_out="$out/ours.$r.json" --benchmark_out_format=json
  echo "== round $r/$rounds: torch ($threads threads)"
  OMP_NUM_THREADS=$threads "$GOLDEN_ENV/run" env ${torch_blas:+LD_LIBRARY_PATH=$torch_blas} python3 -B bench/torch_side_by_side.py --threads "$threads" \
    --filter "$filter" --out "$out/torch.$r.json"
done
python3 bench/side_by_side_report.py --out "$out" --rounds "$rounds"
"$GOLDEN_ENV/run" python3 -B bench/side_by_side_report.py --out "$out" --rounds "$rounds" --png "$out/side_by_side.png" >/dev/null
echo "plot: $out/side_by_side.png"

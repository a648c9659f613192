#!/usr/bin/env bash
# Full-size tests (ctest label `fullsize`; never run by tools/test.sh or CI):
#   1. builds with -DZIMAGE_BUILD_FULLSIZE_TESTS=ON in build-fullsize/;
#   2. writes two synthetic Z-Image-Turbo transformer folders with
#      `zimage write-synthetic` (fp32: 24.6 GB, bf16: 12.3 GB, the diffusers
#      sharded layout) and a 512x512 input (latent 64x64, 128 caption tokens);
#   3. times `zimage inspect` on the fp32 folder and runs the fullsize tests
#      (loading, completeness, parameter count, fp32 == bf16 values, and the
#      full-depth forward within 16 GB peak RSS, streamed from the fp32 shards and
#      again with every weight held as bf16 first) under /usr/bin/time -v;
#   4. runs the Qwen3-4B encode memory test (tests/fullsize/test_text_encoder_memory.cpp:
#      it writes a synthetic 8 GB bf16 Qwen3-4B under FULLSIZE_DIR/qwen3_4b);
#   5. deletes the checkpoints unless KEEP=1.
# Needs ~46 GB free under FULLSIZE_DIR (default /tmp/zimage-fullsize) and about
# 10 minutes on 2 cores (docs/performance.md, "Full-size forward on CPU").
#   FULLSIZE_DIR=/big/disk KEEP=1 tools/test-fullsize.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${FULLSIZE_DIR:-/tmp/zimage-fullsize}
build=${BUILD_DIR:-build-fullsize}
jobs=${JOBS:-$(nproc)}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DZIMAGE_CUDA=OFF -DZIMAGE_BUILD_BENCH=OFF \
  -DZIMAGE_BUILD_SLOW_TESTS=OFF -DZIMAGE_BUILD_FULLSIZE_TESTS=ON
cmake --build "$build" --target zimage test_fullsize test_text_encoder_memory -j"$jobs"
zimage="$build/bin/zimage"
mkdir -p "$dir"
avail_gb=$(df -BG --output=avail "$dir" | tail -1 | tr -dc 0-9)
[[ -d "$dir/fp32" && -d "$dir/bf16" ]] || ((avail_gb >= 46)) || {
  echo "test-fullsize.sh: $dir has ${avail_gb} GB free, 46 GB needed" >&2
  exit 2
}
[[ -f "$dir/fp32/diffusion_pytorch_model.safetensors.index.json" ]] ||
  /usr/bin/time -v "$zimage" write-synthetic --out "$dir/fp32" --dtype float32 \
    --inputs "$dir/inputs_512.safetensors" --latent 64 --caption 128 2>&1 | grep -E "wrote|Elapsed|Maximum resident"
[[ -f "$dir/bf16/diffusion_pytorch_model.safetensors.index.json" ]] ||
  /usr/bin/time -v "$zimage" write-synthetic --out "$dir/bf16" --dtype bfloat16 2>&1 |
    grep -E "wrote|Elapsed|Maximum resident"
/usr/bin/time -v "$zimage" inspect "$dir/fp32" 2>&1 | grep -E "parameters|bf16-exact|complete|inspect:|Elapsed|Maximum resident"
status=0
ZIMAGE_FULLSIZE_DIR="$dir" ZIMAGE_TE_MEMORY_DIR="$dir/qwen3_4b" OMP_NUM_THREADS="$jobs" /usr/bin/time -v \
  ctest --test-dir "$build" -L fullsize --output-on-failure -V 2>&1 |
  grep -E "parameters,|bf16-exact|held as bf16|loaded after|full-depth|sample.0 rms|encode of 512|Passed|Failed|tests passed|Elapsed|Maximum resident" || status=1
[[ "${KEEP:-0}" == 1 ]] || rm -rf "$dir/fp32" "$dir/bf16" "$dir/qwen3_4b" "$dir/inputs_512.safetensors" "$dir"/inspect_*.txt
exit $status

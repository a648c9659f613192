#!/usr/bin/env bash
# gpu-check.sh: builds the CUDA path here (no GPU needed) and runs its tests, benchmark and
# peers on a GPU machine that has no compiler of ours, in one short command.
#
#   tools/gpu-check.sh stage
#       On the build machine. Configures and builds build-gpu/ (Release, ZIMAGE_CUDA=ON,
#       CUDA archs $GPU_CHECK_ARCHS (default "80;90"), slow tests off, ZIMAGE_NATIVE=OFF,
#       -march=x86-64-v4 so the host code runs on the GPU machine's CPU), targets zimage,
#       zimage_bench_cuda, zimage_golden_weights and every test_cuda_* (tests/cuda/test_*.cpp). Strips them and packs
#       them with the shared libraries the GPU machine may lack (libgomp, libpng16,
#       libbenchmark, libcudart, ...; cuBLASLt, cuDNN, NVRTC and the driver are not copied)
#       into .gpu-stage/payload.tar.xz, beside .gpu-stage/MANIFEST (commit, dirty count,
#       flags, date, the build's source and build dirs). golden/ is tracked, so it travels
#       anyway and is not copied (its synthetic weight files are not tracked: `run` writes
#       them with zimage_golden_weights and checks their sha256 first). Prints the payload size and what would travel to the GPU
#       machine (tracked + untracked-not-ignored files + .gpu-stage) against the 64 MiB
#       limit; exit 1 if over.
#   tools/gpu-check.sh run [--quick|--full|--pipeline|--sanitize] [--out DIR]
#       On the GPU machine, from the repo root (as root). The device tool's call is:
#         run(command="bash tools/gpu-check.sh run --quick", carry=[".gpu-stage"], timeout_s=300)
#       Unpacks the payload to /tmp/gpu-check, makes the compiled-in source dir (golden/, the
#       CLI path) resolve to this checkout, finds cuBLASLt 13, cuDNN 9 and NVRTC 13 (the
#       Python environment's nvidia/* folders first, then /usr /opt /root), prints the GPU,
#       driver, CUDA runtime, cuDNN and cuBLASLt, then runs:
#         --quick    (default; about 2-3 min on an H200) every test_cuda_* program (4 at a
#                    time), then zimage_bench_cuda restricted to the bf16 attention rows at
#                    4096 + 32 tokens and the DiT step with a 128-token caption.
#         --full     (< 8 min) every test, the whole benchmark, then the peers:
#                    tools/gpu_peers/peer_sdpa.py (torch's fp32 SDPA error against fp64) and
#                    tools/gpu_peers/peer_diffusers.py (diffusers' DiT step, eager and
#                    torch.compile; needs .gpu-stage/diffusers-src.tar.xz, else skipped).
#         --pipeline (< 7 min) the whole image's figures: test_cuda_generate, test_cuda_qwen3 and
#                    test_cuda_vae, then the whole-image rows of zimage_bench_cuda (BM_CudaImage*:
#                    prompt to PNG at 1024x1024 in 8 steps with the weights resident, and the peak
#                    device memory of the zimage generate --device cuda flow) and the VAE's conv
#                    rows in bf16 (BM_CudaVaeConv: im2col against cuDNN; BM_CudaUpsampleNearest), then
#                    tools/gpu_peers/peer_pipeline.py (diffusers' ZImagePipeline at the same configs;
#                    needs .gpu-stage/diffusers-src.tar.xz, else skipped; GPU_CHECK_PEER_COMPILE=1
#                    adds torch.compile of its transformer).
#         --sanitize compute-sanitizer memcheck, racecheck, initcheck and synccheck over each
#                    test program with the short gtest filter of the table san_filter below
#                    (tool by tool, each run at most 90 s; what the budget leaves out is
#                    listed as skipped). Exit code 86 from a run: the sanitizer found errors.
#       Every step's output goes to its own log; a failing step does not stop the next one;
#       each step runs under `timeout`, inside a whole-run budget (GPU_CHECK_BUDGET_S).
#       DIR (default $OUT if set, else ./gpu-check-out) ends with at most 5 files:
#         summary.md, summary.json (tools/gpu_check_summary.py: GPU, libraries, commit,
#         per-program passed/failed/skipped, every failure's message, benchmark rows, peers,
#         step wall times), bench-cuda.json (Google Benchmark JSON), logs.tar.xz (every log,
#         gtest JSON, MANIFEST, steps.tsv) and, for --full, peers.jsonl.
#       The summary and logs.tar.xz are rewritten after each step, so a run cut short by the
#       device tool's time limit still returns what it did.
#       Exit status: 0 all passed; 1 a test program or sanitizer run failed (or timed out);
#       2 the payload or the repo root is missing; 3 only the benchmark or a peer failed.
#   tools/gpu-check.sh --help
#
# Environment (all optional):
#   GPU_CHECK_ARCHS        stage: CMAKE_CUDA_ARCHITECTURES (default "80;90"; "90" builds faster)
#   GPU_CHECK_BUILD_DIR    stage: build folder (default build-gpu)
#   GPU_CHECK_JOBS_BUILD   stage: make -j (default nproc)
#   GPU_CHECK_SKIP_BUILD=1 stage: no configure/build, collect what the build folder holds
#   GPU_CHECK_DIFFUSERS_SRC stage: a diffusers source tree to pack as
#                          .gpu-stage/diffusers-src.tar.xz (an existing one is kept)
#   GPU_CHECK_JOBS         run: test programs at once (default 4; sanitizer runs are serial)
#   GPU_CHECK_BUDGET_S     run: whole-run seconds (default quick 170, pipeline 420, full 470, sanitize 470)
#   GPU_CHECK_BENCH_FILTER run: --benchmark_filter for --quick and --pipeline (default for --pipeline:
#                          PIPELINE_BENCH_FILTER below; for --quick QUICK_BENCH_FILTER below:
#                          BM_CudaFlashAttention<bf16> at img 4096, cap 32, no mask, batch 1 and 2,
#                          every version; BM_CudaDitStep_bf16, every row (auto at caption 128
#                          and 512, mma, mma_wide, the breakdown, no graph, timed GEMM algorithms);
#                          one block; BM_CudaLinear<bf16> and BM_CudaLinearTimed_bf16 at 4128
#                          tokens; --benchmark_min_time=0.2)
#   GPU_CHECK_PEERS=1      run: the peers (torch's fp32 SDPA error, diffusers' DiT step) in --quick too;
#                          =diffusers: only diffusers' DiT step
#   GPU_CHECK_PEER_CAPS    run: caption lengths of the diffusers peer (default "128 512")
#   GPU_CHECK_SAN_TOOLS    run: sanitizer tools (default "memcheck racecheck initcheck synccheck")
#   GPU_CHECK_TESTS        run: test programs to run (default: every bin/test_cuda_*)
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STAGE="$ROOT/.gpu-stage"
LIMIT=$((64 * 1024 * 1024))
WORK=/tmp/gpu-check
QUICK_BENCH_FILTER='^BM_CudaFlashAttention<bf16>/img:4096/cap:32/mask:0/|^BM_CudaDitStep_bf16/1024x1024/|^BM_CudaTransformerBlock<bf16>/img:4096/cap:32/|^BM_CudaLinear(<bf16>|Timed_bf16)/N:4128/'
PIPELINE_BENCH_FILTER='^BM_CudaImage|^BM_CudaVaeConv<bf16>|^BM_CudaUpsampleNearest<bf16>'

usage() { sed -n '2,/^set -uo pipefail/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() { echo "gpu-check: $*" >&2; exit 2; }
mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }

# ------------------------------------------------------------------------------------------ stage

# Sum of the "total" lines of `du -cb` over NUL-separated paths on stdin (xargs may split them).
du_total() { xargs -0 -r du -cb 2>/dev/null | awk -F'\t' '$2 == "total" { s += $1 } END { print s + 0 }'; }

# Libraries the GPU machine has or must take from its own install: never copied.
SKIP_LIBS='^(linux-vdso|linux-gate|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libutil\.so|libstdc\+\+\.so|libgcc_s\.so|libcuda\.so|libnvidia-|libcublas|libcudnn|libnvrtc|libnvJitLink)'

cmd_stage() {
  cd "$ROOT" || die "no repo root"
  local build=${GPU_CHECK_BUILD_DIR:-build-gpu} archs=${GPU_CHECK_ARCHS:-80;90}
  case "$build" in /*) ;; *) build="$ROOT/$build" ;; esac
  local tests=() src
  for src in "$ROOT"/tests/cuda/test_*.cpp; do [ -e "$src" ] && tests+=("$(basename "$src" .cpp)"); done
  [ ${#tests[@]} -gt 0 ] || die "no tests/cuda/test_*.cpp"
  local flags=(-DCMAKE_BUILD_TYPE=Release -DZIMAGE_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$archs"
               -DZIMAGE_BUILD_SLOW_TESTS=OFF -DZIMAGE_NATIVE=OFF -DCMAKE_CXX_FLAGS=-march=x86-64-v4)
  local t0=$SECONDS
  if [ "${GPU_CHECK_SKIP_BUILD:-0}" = 1 ]; then
    echo "gpu-check stage: GPU_CHECK_SKIP_BUILD=1: collecting what $build holds"
  else
    echo "gpu-check stage: configuring $build: ${flags[*]}"
    cmake -S "$ROOT" -B "$build" "${flags[@]}" >/dev/null || { echo "gpu-check stage: configure failed" >&2; exit 1; }
    echo "gpu-check stage: building zimage zimage_bench_cuda zimage_golden_weights ${tests[*]}"
    cmake --build "$build" -j "${GPU_CHECK_JOBS_BUILD:-$(nproc)}" --target zimage zimage_bench_cuda zimage_golden_weights "${tests[@]}" ||
      { echo "gpu-check stage: build failed" >&2; exit 1; }
    echo "gpu-check stage: built in $((SECONDS - t0)) s"
  fi
  # What the binaries have compiled in: the cache's values, not what was asked for.
  local cache="$build/CMakeCache.txt" srcdir="$ROOT" cache_archs="?" cache_type="?" cache_cxx="?"
  if [ -f "$cache" ]; then
    srcdir=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$cache")
    cache_archs=$(sed -n 's/^CMAKE_CUDA_ARCHITECTURES:[A-Z]*=//p' "$cache")
    cache_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$cache")
    cache_cxx=$(sed -n 's/^CMAKE_CXX_FLAGS:[A-Z]*=//p' "$cache")
    [ "$cache_archs" = "$archs" ] || echo "gpu-check stage: warning: $build has CUDA archs '$cache_archs', not '$archs'" >&2
  fi

  # .gpu-stage: emptied, except a packed diffusers tree.
  mkdir -p "$STAGE"
  find "$STAGE" -mindepth 1 -maxdepth 1 ! -name diffusers-src.tar.xz -exec rm -rf {} +
  mkdir -p "$STAGE/bin" "$STAGE/lib"
  local name missing=0
  for name in zimage zimage_bench_cuda zimage_golden_weights "${tests[@]}"; do
    if [ -x "$build/bin/$name" ]; then
      cp "$build/bin/$name" "$STAGE/bin/$name" && strip --strip-unneeded "$STAGE/bin/$name"
    else
      echo "gpu-check stage: missing $build/bin/$name" >&2; missing=1
    fi
  done
  [ $missing = 0 ] || { echo "gpu-check stage: binaries missing (build first)" >&2; exit 1; }

  # Shared libraries: ldd of every staged binary, the real file copied under its soname.
  local libs_note="" so path real
  while read -r so path; do
    [[ $so =~ $SKIP_LIBS ]] && continue
    if [ "$path" = "not" ] || [ ! -e "$path" ]; then echo "gpu-check stage: warning: $so not found by ldd" >&2; continue; fi
    real=$(readlink -f "$path")
    cp "$real" "$STAGE/lib/$so" && strip --strip-unneeded "$STAGE/lib/$so" 2>/dev/null
    libs_note+="$so<-$(basename "$real") "
  done < <(for b in "$STAGE"/bin/*; do ldd "$b"; done | awk '$2 == "=>" { print $1, $3 }' | sort -u)
  for so in libgomp.so.1 libpng16.so.16 libcudart.so.13; do
    [ -e "$STAGE/lib/$so" ] || echo "gpu-check stage: warning: $so is not among the staged libraries" >&2
  done
  compgen -G "$STAGE/lib/libbenchmark.so.1*" >/dev/null || echo "gpu-check stage: warning: no libbenchmark.so.1* staged" >&2

  if [ -n "${GPU_CHECK_DIFFUSERS_SRC:-}" ]; then
    [ -d "$GPU_CHECK_DIFFUSERS_SRC" ] || die "GPU_CHECK_DIFFUSERS_SRC=$GPU_CHECK_DIFFUSERS_SRC is no folder"
    echo "gpu-check stage: packing diffusers from $GPU_CHECK_DIFFUSERS_SRC"
    tar -C "$GPU_CHECK_DIFFUSERS_SRC" --exclude=.git --exclude=tests --exclude=docs --exclude=examples \
      --exclude=__pycache__ -cf - . | xz -9 >"$STAGE/diffusers-src.tar.xz"
  fi

  {
    echo "commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "dirty=$(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l)"
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "build_type=$cache_type"
    echo "cuda_archs=$cache_archs"
    echo "cxx_flags=$cache_cxx"
    echo "cmake_flags=${flags[*]}"
    echo "source_dir=$srcdir"
    echo "build_dir=$build"
    echo "golden_dir=$srcdir/golden"
    echo "cli=$build/bin/zimage"
    echo "programs=$(cd "$STAGE/bin" && echo *)"
    echo "libs=${libs_note% }"
    echo "nvcc=$(nvcc --version 2>/dev/null | sed -n 's/^Cuda compilation tools, //p')"
    echo "cxx=$(c++ --version 2>/dev/null | head -1)"
    echo "builder=$(uname -n) $(nproc) cores"
  } >"$STAGE/MANIFEST"

  local unpacked
  unpacked=$(du -sb "$STAGE/bin" "$STAGE/lib" | awk '{ s += $1 } END { print s }')
  tar -C "$STAGE" -cf - bin lib | xz -9 -T0 >"$STAGE/payload.tar.xz" || { echo "gpu-check stage: packing failed" >&2; exit 1; }
  rm -rf "${STAGE:?}/bin" "${STAGE:?}/lib"
  local payload tracked untracked stage total
  payload=$(stat -c %s "$STAGE/payload.tar.xz")
  echo "payload_bytes=$payload" >>"$STAGE/MANIFEST"
  tracked=$(git -C "$ROOT" ls-files -z | du_total)
  untracked=$(git -C "$ROOT" ls-files -z --others --exclude-standard | du_total)
  stage=$(find "$STAGE" -type f -print0 | du_total)
  total=$((tracked + untracked + stage))
  echo "gpu-check stage: binaries and libraries $(mib "$unpacked") unpacked, payload.tar.xz $(mib "$payload")"
  echo "gpu-check stage: would travel: tracked $(mib "$tracked") + untracked-not-ignored $(mib "$untracked")" \
       "+ .gpu-stage $(mib "$stage") = $(mib "$total") of $(mib $LIMIT)"
  if [ "$total" -gt "$LIMIT" ]; then
    echo "gpu-check stage: OVER the 64 MiB limit by $(mib $((total - LIMIT)))" >&2
    exit 1
  fi
  echo "gpu-check stage: ok ($(mib $((LIMIT - total))) to spare). On the GPU machine:"
  echo "  run(command=\"bash tools/gpu-check.sh run --quick\", carry=[\".gpu-stage\"], timeout_s=300)"
}

# ------------------------------------------------------------------------------------------ run

manifest() { sed -n "s/^$1=//p" "$STAGE/MANIFEST" | head -1; }
now() { date +%s.%N; }

# Remaining whole-run budget in whole seconds.
remaining() { awk -v s="$RUN_T0" -v n="$(now)" -v b="$BUDGET" 'BEGIN { r = b - (n - s); print (r > 0 ? int(r) : 0) }'; }

# Record one step: name kind status wall_s log gtest_json note (tab-separated; status is the
# exit code, or "skipped").
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$LOGS/steps.tsv"; }

# run_step NAME KIND TIMEOUT LOG JSON CMD...: the command under `timeout`, its output in LOG.
run_step() {
  local name=$1 kind=$2 limit=$3 log=$4 json=$5; shift 5
  local left; left=$(remaining)
  if [ "$left" -lt 15 ]; then
    echo "[$(date +%T)] $name: skipped (run budget spent)"
    record "$name" "$kind" skipped 0 "" "" "run budget of ${BUDGET}s spent"
    return 0
  fi
  [ "$limit" -le $((left - 5)) ] || limit=$((left - 5))
  echo "[$(date +%T)] $name: start (timeout ${limit}s)"
  local t0 rc wall note=""
  t0=$(now)
  timeout -k 10 "$limit" "$@" >"$LOGS/$log" 2>&1
  rc=$?
  wall=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
  [ $rc = 124 ] || [ $rc = 137 ] && note="timed out after ${limit}s"
  echo "[$(date +%T)] $name: rc=$rc ${wall}s${note:+ ($note)}"
  record "$name" "$kind" "$rc" "$wall" "$log" "$json" "$note"
  return 0
}

# Summary and logs, rewritten after each step (a run cut short still returns them).
checkpoint() {
  [ -f "$LOGS/peers.jsonl" ] && [ -s "$LOGS/peers.jsonl" ] && cp "$LOGS/peers.jsonl" "$DIR/peers.jsonl"
  python3 "$ROOT/tools/gpu_check_summary.py" --work "$LOGS" --out "$DIR" --mode "$MODE" >"$LOGS/summary-script.log" 2>&1 ||
    echo "gpu-check: gpu_check_summary.py failed (see summary-script.log in logs.tar.xz)" >&2
  tar -C "$WORK" -cJf "$DIR/.logs.tar.xz.tmp" logs 2>/dev/null && mv -f "$DIR/.logs.tar.xz.tmp" "$DIR/logs.tar.xz"
}

# Folders holding the libraries the binaries load from the machine's own install.
find_lib_dirs() {
  # The Python environment's nvidia/* wheels (torch's cuBLASLt 13, cuDNN 9, NVRTC 13).
  env -u LD_LIBRARY_PATH python3 - <<'EOF' 2>/dev/null
import os, site
roots = []
try:
    import nvidia
    roots += list(nvidia.__path__)
except Exception:
    pass
try:
    roots += [os.path.join(p, "nvidia") for p in site.getsitepackages()]
except Exception:
    pass
seen = set()
for r in roots:
    for sub in ("cu13/lib", "cudnn/lib", "cublas/lib", "cuda_nvrtc/lib", "nvjitlink/lib"):
        p = os.path.realpath(os.path.join(r, sub))
        if os.path.isdir(p) and p not in seen:
            seen.add(p)
            print(p)
EOF
}

# The first folder of LD_LIBRARY_PATH (or the quick find) that has a file matching $1.
lib_dir_for() {
  local pat=$1 d f
  local IFS=:
  for d in $LDP; do
    for f in "$d"/$pat; do [ -e "$f" ] && { echo "$d"; return 0; }; done
  done
  f=$(timeout 20 find /usr /opt /root /usr/local -xdev -name "$pat" \( -type f -o -type l \) 2>/dev/null | sort | head -1)
  [ -n "$f" ] && dirname "$f"
}

# lib_version KIND DIR PATTERN: "<file> <version> in <dir>", the version asked from the library
# itself (pip's wheels name their files by soname only).
lib_version() {
  local kind=$1 dir=$2 pat=$3 f v
  [ -n "$dir" ] || { echo "not found"; return; }
  f=$(find "$dir" -maxdepth 1 -name "$pat" | sort | head -1)
  [ -n "$f" ] || { echo "not found in $dir"; return; }
  v=$(env -u LD_LIBRARY_PATH python3 - "$kind" "$f" <<'EOF' 2>/dev/null
import ctypes, sys
kind, path = sys.argv[1], sys.argv[2]
lib = ctypes.CDLL(path)
if kind == "cudart":
    v = ctypes.c_int()
    lib.cudaRuntimeGetVersion(ctypes.byref(v))  # 13000 = 13.0
    print(f"{v.value // 1000}.{v.value % 1000 // 10}")
elif kind in ("cudnn", "cublaslt"):
    fn = lib.cudnnGetVersion if kind == "cudnn" else lib.cublasLtGetVersion
    fn.restype = ctypes.c_size_t
    v = fn()  # cudnn 91900 = 9.19.0; cublasLt 130100 = 13.1.0
    print(f"{v // 10000}.{v // 100 % 100}.{v % 100}")
else:
    a, b = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(a), ctypes.byref(b))
    print(f"{a.value}.{b.value}")
EOF
)
  echo "$(basename "$(readlink -f "$f")") ${v:-version ?} in $dir"
}

# Sanitizer filter table: a short subset of each program, so that four tools over every program
# fit the budget (each run also has its own timeout). A program not listed runs whole.
san_filter() {
  case "$1" in
    test_cuda_gemm) echo '*ExactGemm*_N97_M64_K64*:*ExactGemm*_N33_M64_K97*:*RealGemm*_N1_M15360_K256*' ;;
    test_cuda_norms) echo '*RmsNormModulate*_B2_L97_C64:*GatedResidual*_B2_L97_C64:*FinalLayerNorm*_B2_L97_C64:*SwiGlu*_N97:*TimestepEmbedding*' ;;
    test_cuda_layout_rope) echo '*Patchify*:*CudaRopeGather*:*QkNormRope*_L97_*:WeightLayout.*' ;;
    test_cuda_attention) echo '*AgainstSdpa/*_B2_L97_H2_D32_*:*AgainstSdpa/*_B3_L67_H3_D32_*:CudaFlashAttention.*' ;;
    test_cuda_attention_cudnn) echo 'CudnnAttention.*' ;;
    test_cuda_model) echo 'Goldens/*tiny_single*:CudaFp16.*' ;;
    test_cuda_cli) echo 'CudaCli.*' ;;
    test_cuda_qwen3) echo '*Qwen3QkNormRope*_B2_L12_H8_G2_D16:*Qwen3Attention*_L12_H8_G2_D16_*:*Qwen3CudaGolden*te_tiny_right:EmbeddingGather.*:Qwen3CudaConfig.*' ;;
    test_cuda_vae) echo 'Im2colNhwc.*:SoftmaxRows.*:TransposeBatched.*:*GroupNormNhwc*_B2_17x9_C64_G8*:*VaeCudaGolden*vae_tiny__decoder_mid_block*:VaeCudaConfig.*' ;;
    test_cuda_generate) echo 'Goldens/CudaGenerate.*pipeline_turbo:CudaGenerateCli.BadOptions*' ;;
    test_cuda_graph) echo 'StepGraphPolicy.*:*CudaStepGraph*tiny_batch2_f32' ;;
    *) echo '*' ;;
  esac
}

# diffusers' ZImagePipeline, prompt to PNG (tools/gpu_peers/peer_pipeline.py), for --pipeline.
run_pipeline_peer() {
  if ! env -u LD_LIBRARY_PATH python3 -c 'import torch; assert torch.cuda.is_available()' >/dev/null 2>&1; then
    record peer_pipeline peer skipped 0 "" "" "python3 has no torch with CUDA"
    return
  fi
  if [ ! -f "$STAGE/diffusers-src.tar.xz" ]; then
    record peer_pipeline peer skipped 0 "" "" "no .gpu-stage/diffusers-src.tar.xz staged"
    return
  fi
  mkdir -p "$WORK/diffusers-src"
  xz -dc "$STAGE/diffusers-src.tar.xz" | tar -C "$WORK/diffusers-src" -xf -
  local dsrc extra=()
  dsrc=$(find "$WORK/diffusers-src" -maxdepth 3 -path '*/diffusers/__init__.py' | head -1)
  if [ -z "$dsrc" ]; then
    record peer_pipeline peer skipped 0 "" "" "no diffusers/__init__.py in diffusers-src.tar.xz"
    return
  fi
  [ "${GPU_CHECK_PEER_COMPILE:-0}" != 0 ] && extra=(--compile)
  run_step peer_pipeline peer 180 peer-pipeline.log "" env -u LD_LIBRARY_PATH PYTHONUNBUFFERED=1 \
    python3 "$ROOT/tools/gpu_peers/peer_pipeline.py" --diffusers-src "$(dirname "$(dirname "$dsrc")")" ${extra[@]+"${extra[@]}"}
  grep -h '^{' "$LOGS/peer-pipeline.log" >>"$LOGS/peers.jsonl" 2>/dev/null
  checkpoint
}

cmd_run() {
  MODE=quick
  DIR=${OUT:-}
  local default_dir=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --quick) MODE=quick ;;
      --full) MODE=full ;;
      --sanitize) MODE=sanitize ;;
      --pipeline) MODE=pipeline ;;
      --out) [ $# -ge 2 ] || die "--out needs a folder"; DIR=$2; shift ;;
      -h|--help) usage; exit 0 ;;
      *) die "unknown run option '$1' (see --help)" ;;
    esac
    shift
  done
  if [ -z "$DIR" ]; then DIR="$ROOT/gpu-check-out"; default_dir=1; fi
  if [ ! -f "$STAGE/payload.tar.xz" ] || [ ! -f "$STAGE/MANIFEST" ]; then
    die "no $STAGE/payload.tar.xz or MANIFEST: run 'tools/gpu-check.sh stage' on the build machine and carry .gpu-stage"
  fi
  case $MODE in quick) BUDGET=${GPU_CHECK_BUDGET_S:-170} ;; pipeline) BUDGET=${GPU_CHECK_BUDGET_S:-420} ;; *) BUDGET=${GPU_CHECK_BUDGET_S:-470} ;; esac
  RUN_T0=$(now)
  mkdir -p "$DIR" || die "cannot create $DIR"
  DIR=$(cd "$DIR" && pwd)
  rm -f "$DIR"/summary.md "$DIR"/summary.json "$DIR"/bench-cuda.json "$DIR"/logs.tar.xz "$DIR"/peers.jsonl
  # The default folder sits in the checkout: it ignores itself.
  [ $default_dir = 1 ] && echo '*' >"$DIR/.gitignore"

  rm -rf "$WORK"
  mkdir -p "$WORK/logs"
  LOGS="$WORK/logs"
  cd "$WORK" || die "cannot enter $WORK"  # the programs' working folder: scratch, not the checkout
  : >"$LOGS/steps.tsv"
  cp "$STAGE/MANIFEST" "$LOGS/MANIFEST"
  echo "gpu-check run --$MODE: commit $(manifest commit) (dirty $(manifest dirty)), out $DIR, budget ${BUDGET}s"
  xz -dc "$STAGE/payload.tar.xz" | tar -C "$WORK" -xf - || die "cannot unpack $STAGE/payload.tar.xz"
  local BIN="$WORK/bin"

  # The binaries read golden/ and run the CLI at the build's absolute paths.
  local srcdir builddir cli
  srcdir=$(manifest source_dir); builddir=$(manifest build_dir); cli=$(manifest cli)
  {
    echo "repo root: $ROOT; build's source dir: $srcdir"
    if [ -n "$srcdir" ] && [ ! -e "$srcdir" ]; then
      mkdir -p "$(dirname "$srcdir")" && ln -s "$ROOT" "$srcdir" && echo "linked $srcdir -> $ROOT"
    elif [ -n "$srcdir" ] && [ "$(readlink -f "$srcdir")" != "$(readlink -f "$ROOT")" ]; then
      echo "WARNING: $srcdir exists and is not this checkout: the tests read its golden/"
    fi
    if [ -n "$cli" ] && [ -e "$cli" ] && [ ! -L "$cli" ]; then
      echo "WARNING: $cli exists and is not our link: test_cuda_cli runs that file"
    elif [ -n "$cli" ]; then
      mkdir -p "$(dirname "$cli")" && ln -sfn "$BIN/zimage" "$cli" && echo "linked $cli -> $BIN/zimage"
    fi
    echo "build dir recorded: $builddir"
  } >"$LOGS/paths.log" 2>&1
  cat "$LOGS/paths.log"

  # LD_LIBRARY_PATH for our binaries only (python runs without it).
  LDP="$WORK/lib"
  local d
  while read -r d; do LDP+=":$d"; done < <(find_lib_dirs)
  local want cublas_dir cudnn_dir nvrtc_dir
  cublas_dir=$(lib_dir_for 'libcublasLt.so.13*'); cudnn_dir=$(lib_dir_for 'libcudnn.so.9*'); nvrtc_dir=$(lib_dir_for 'libnvrtc.so.13*')
  for want in "$cublas_dir" "$cudnn_dir" "$nvrtc_dir"; do
    [ -n "$want" ] && case ":$LDP:" in *":$want:"*) ;; *) LDP+=":$want" ;; esac
  done
  for d in /usr/local/cuda/lib64 /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    [ -d "$d" ] && case ":$LDP:" in *":$d:"*) ;; *) LDP+=":$d" ;; esac
  done
  local san=""
  san=$(command -v compute-sanitizer || true)
  [ -n "$san" ] || for d in /usr/local/cuda/bin /usr/local/cuda/compute-sanitizer /usr/local/cuda-*/bin /opt/nvidia/*/compute-sanitizer; do
    [ -x "$d/compute-sanitizer" ] && { san="$d/compute-sanitizer"; break; }
  done

  # Environment: the summary reads env.txt (key=value), env.log has the raw output.
  {
    local smi gpu driver cuda_drv
    smi=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
    gpu=$(echo "$smi" | cut -d, -f1 | sed 's/^ *//'); driver=$(echo "$smi" | cut -d, -f2 | sed 's/^ *//')
    cuda_drv=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -1)
    echo "gpu=${gpu:-unknown (nvidia-smi failed)}"
    echo "gpu_memory=$(echo "$smi" | cut -d, -f3 | sed 's/^ *//')"
    echo "driver=${driver:-unknown}"
    echo "driver_cuda=${cuda_drv:-unknown}"
    echo "cudart=$(lib_version cudart "$WORK/lib" 'libcudart.so.13*')"
    echo "cublaslt=$(lib_version cublaslt "$cublas_dir" 'libcublasLt.so.13*')"
    echo "cudnn=$(lib_version cudnn "$cudnn_dir" 'libcudnn.so.9*')"
    echo "nvrtc=$(lib_version nvrtc "$nvrtc_dir" 'libnvrtc.so.13*')"
    echo "compute_sanitizer=${san:-not found}"
    echo "ld_library_path=$LDP"
    echo "host=$(uname -n) $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo 2>/dev/null | head -1)"
    echo "python=$(env -u LD_LIBRARY_PATH python3 -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)"
    echo "torch=$(env -u LD_LIBRARY_PATH python3 -c 'import torch; print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version())' 2>/dev/null || echo none)"
  } >"$LOGS/env.txt"
  {
    nvidia-smi 2>&1 || echo "nvidia-smi failed"
    echo; cat "$LOGS/env.txt"
    for b in "$BIN"/*; do echo "== ldd $(basename "$b")"; LD_LIBRARY_PATH=$LDP ldd "$b" 2>&1; done
  } >"$LOGS/env.log"
  grep -E '^(gpu|driver|driver_cuda|cudart|cublaslt|cudnn|nvrtc|compute_sanitizer)=' "$LOGS/env.txt"
  if LD_LIBRARY_PATH=$LDP ldd "$BIN"/* 2>/dev/null | grep -q 'not found'; then
    echo "WARNING: unresolved libraries:"; LD_LIBRARY_PATH=$LDP ldd "$BIN"/* 2>/dev/null | grep 'not found' | sort -u
  fi
  record env env 0 "$(awk -v a="$RUN_T0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')" env.log "" "unpack, paths, libraries, versions"
  checkpoint

  # golden/models' synthetic weight files are not tracked: write them as the build does
  # (docs/goldens.md, "Materialized weights"; --force: a warm machine may keep an older commit's
  # files) and check them against the digests of diffusers' files.
  run_step golden_weights golden 60 golden-weights.log "" bash -c \
    'LD_LIBRARY_PATH="$1" "$2" "$3/golden" --force && cd "$3/golden" && sha256sum -c --quiet weights/SHA256SUMS && echo "golden weights: sha256 ok"' \
    _ "$LDP" "$BIN/zimage_golden_weights" "$ROOT"
  checkpoint

  local tests=() t
  if [ -n "${GPU_CHECK_TESTS:-}" ]; then
    read -r -a tests <<<"$GPU_CHECK_TESTS"
  elif [ "$MODE" = pipeline ]; then
    for t in test_cuda_generate test_cuda_qwen3 test_cuda_vae; do [ -x "$BIN/$t" ] && tests+=("$t"); done
  else
    for t in "$BIN"/test_cuda_*; do [ -x "$t" ] && tests+=("$(basename "$t")"); done
  fi
  local X=(env "LD_LIBRARY_PATH=$LDP")

  if [ "$MODE" = sanitize ]; then
    local tool
    if [ -z "$san" ]; then
      record compute-sanitizer sanitize skipped 0 "" "" "compute-sanitizer not found"
    else
      for tool in ${GPU_CHECK_SAN_TOOLS:-memcheck racecheck initcheck synccheck}; do
        for t in "${tests[@]}"; do
          run_step "$tool:$t" sanitize 90 "san-$tool-$t.log" "san-$tool-$t.gtest.json" \
            "${X[@]}" "$san" --tool "$tool" --error-exitcode 86 --print-limit 20 \
            "$BIN/$t" "--gtest_filter=$(san_filter "$t")" "--gtest_output=json:$LOGS/san-$tool-$t.gtest.json"
          checkpoint
        done
      done
    fi
  else
    # Test programs, GPU_CHECK_JOBS at once (correctness only: they share the GPU).
    # Each program's timeout leaves the benchmark (and the peers) a share of the budget.
    local jobs=${GPU_CHECK_JOBS:-4} limit=150 reserve=60
    [ "$MODE" = full ] && limit=240 reserve=240
    [ "$MODE" = pipeline ] && limit=120 reserve=300
    [ "$limit" -le $(($(remaining) - reserve)) ] || limit=$(($(remaining) - reserve))
    [ "$limit" -ge 30 ] || limit=30
    for t in "${tests[@]}"; do
      while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
      run_step "$t" test "$limit" "$t.log" "$t.gtest.json" \
        "${X[@]}" "$BIN/$t" "--gtest_output=json:$LOGS/$t.gtest.json" &
    done
    wait
    checkpoint

    local bench_args=(--benchmark_out="$DIR/bench-cuda.json" --benchmark_out_format=json)
    if [ "$MODE" = quick ]; then
      bench_args+=("--benchmark_filter=${GPU_CHECK_BENCH_FILTER:-$QUICK_BENCH_FILTER}" --benchmark_min_time=0.2)
      run_step zimage_bench_cuda bench 150 bench-cuda.log "" "${X[@]}" "$BIN/zimage_bench_cuda" "${bench_args[@]}"
    elif [ "$MODE" = pipeline ]; then
      bench_args+=("--benchmark_filter=${GPU_CHECK_BENCH_FILTER:-$PIPELINE_BENCH_FILTER}")
      run_step zimage_bench_cuda bench 200 bench-cuda.log "" "${X[@]}" "$BIN/zimage_bench_cuda" "${bench_args[@]}"
    else
      run_step zimage_bench_cuda bench 270 bench-cuda.log "" "${X[@]}" "$BIN/zimage_bench_cuda" "${bench_args[@]}"
    fi
    checkpoint

    if [ "$MODE" = pipeline ]; then
      run_pipeline_peer
    elif [ "$MODE" = full ] || [ "${GPU_CHECK_PEERS:-0}" != 0 ]; then
      if ! env -u LD_LIBRARY_PATH python3 -c 'import torch; assert torch.cuda.is_available()' >/dev/null 2>&1; then
        record peer_sdpa peer skipped 0 "" "" "python3 has no torch with CUDA"
        record peer_diffusers peer skipped 0 "" "" "python3 has no torch with CUDA"
      else
        if [ "${GPU_CHECK_PEERS:-}" = diffusers ]; then
          record peer_sdpa peer skipped 0 "" "" "GPU_CHECK_PEERS=diffusers"
        else
          run_step peer_sdpa peer 90 peer-sdpa.log "" env -u LD_LIBRARY_PATH PYTHONUNBUFFERED=1 \
            python3 "$ROOT/tools/gpu_peers/peer_sdpa.py" --shapes 1x1025x30x128 1x4128x30x128 1x4608x30x128
          grep -h '^{' "$LOGS/peer-sdpa.log" >>"$LOGS/peers.jsonl" 2>/dev/null
        fi
        checkpoint
        if [ -f "$STAGE/diffusers-src.tar.xz" ]; then
          mkdir -p "$WORK/diffusers-src"
          xz -dc "$STAGE/diffusers-src.tar.xz" | tar -C "$WORK/diffusers-src" -xf -
          local dsrc
          dsrc=$(find "$WORK/diffusers-src" -maxdepth 3 -path '*/diffusers/__init__.py' | head -1)
          if [ -n "$dsrc" ]; then
            # shellcheck disable=SC2086  # GPU_CHECK_PEER_CAPS is a list of numbers, split on purpose
            run_step peer_diffusers peer 200 peer-diffusers.log "" env -u LD_LIBRARY_PATH PYTHONUNBUFFERED=1 \
              python3 "$ROOT/tools/gpu_peers/peer_diffusers.py" --diffusers-src "$(dirname "$(dirname "$dsrc")")" \
              --caps ${GPU_CHECK_PEER_CAPS:-128 512} --compile
            grep -h '^{' "$LOGS/peer-diffusers.log" >>"$LOGS/peers.jsonl" 2>/dev/null
          else
            record peer_diffusers peer skipped 0 "" "" "no diffusers/__init__.py in diffusers-src.tar.xz"
          fi
        else
          record peer_diffusers peer skipped 0 "" "" "no .gpu-stage/diffusers-src.tar.xz staged"
        fi
      fi
      checkpoint
    fi
  fi

  checkpoint
  echo "gpu-check run --$MODE: done in $(awk -v s="$RUN_T0" -v n="$(now)" 'BEGIN { printf "%.0f", n - s }') s"
  [ -f "$DIR/summary.md" ] && sed -n '/^## Machine/,/^## Tests/d; 1,/^## \(Skipped\|compute-sanitizer\|Benchmark\)/p' "$DIR/summary.md" | sed '$d' | head -80
  # Exit status from the recorded steps.
  awk -F'\t' '
    $3 != "skipped" && $3 != "0" { if ($2 == "test" || $2 == "sanitize") t = 1; else if ($2 != "env") o = 1 }
    END { exit t ? 1 : (o ? 3 : 0) }' "$LOGS/steps.tsv"
}

case "${1:-}" in
  stage) shift; [ $# = 0 ] || die "stage takes no arguments (see --help)"; cmd_stage ;;
  run) shift; cmd_run "$@" ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac

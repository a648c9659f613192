#!/usr/bin/env bash
# Builds the libFuzzer targets (preset "fuzz": clang, ASan + UBSan, build-fuzz/)
# and runs each one in turn on a scratch copy of its seed corpus.
#
#   tools/fuzz.sh [SECONDS_PER_TARGET] [--runs N] [--target NAME]... [--jobs J]
#
# SECONDS_PER_TARGET defaults to 60; --runs N also stops a target after N
# executions (whichever comes first). --target limits the run to the named
# targets (default: all). --jobs J runs up to J targets at once (default 1;
# CI uses the core count, so each target still gets its full time). Prints, per target, the executions, the seconds and
# whether it crashed. Exit status: 0 when every target built and ran without a
# finding; 1 when any target crashed (artifact under build-fuzz/artifacts/),
# hit a timeout / out-of-memory, or failed to build; 2 on bad arguments.
#
# The committed seed corpus (fuzz/corpus/<target>/) is never written: each run
# copies it to build-fuzz/corpus/<target>/ (emptied first) and libFuzzer adds
# what it finds there. Logs: build-fuzz/logs/<target>.log. See
# docs/reliability.md, section "Fuzzing".
set -uo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

seconds=60
runs=""
jobs=1
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) [ $# -ge 2 ] || usage; runs="$2"; shift 2 ;;
    --runs=*) runs="${1#--runs=}"; shift ;;
    --target) [ $# -ge 2 ] || usage; targets+=("$2"); shift 2 ;;
    --jobs) [ $# -ge 2 ] || usage; jobs="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) [[ "$1" =~ ^[0-9]+$ ]] || usage; seconds="$1"; shift ;;
  esac
done
[ -z "$runs" ] || [[ "$runs" =~ ^[0-9]+$ ]] || usage
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || usage
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_safetensors fuzz_shard_index fuzz_config fuzz_tokenizer fuzz_vae_config)

# Per target: max input length and dictionary.
declare -A max_len=([fuzz_safetensors]=65536 [fuzz_shard_index]=16384 [fuzz_config]=8192
                    [fuzz_tokenizer]=65536 [fuzz_vae_config]=8192)
declare -A dict=([fuzz_safetensors]=fuzz/dict/safetensors.dict [fuzz_shard_index]=fuzz/dict/json.dict
                 [fuzz_config]=fuzz/dict/json.dict [fuzz_tokenizer]=fuzz/dict/tokenizer.dict
                 [fuzz_vae_config]=fuzz/dict/vae_config.dict)
for t in "${targets[@]}"; do
  [ -n "${max_len[$t]:-}" ] || { echo "fuzz.sh: unknown target '$t'" >&2; exit 2; }
done

build=build-fuzz
echo "== configure + build (preset fuzz)"
mkdir -p "$build"
if ! cmake --preset fuzz >"$build/configure.log" 2>&1; then
  cat "$build/configure.log" >&2
  echo "fuzz.sh: configure failed" >&2
  exit 1
fi
if ! cmake --build --preset fuzz -j"$(nproc)"; then
  echo "fuzz.sh: build failed" >&2
  exit 1
fi

mkdir -p "$build/artifacts" "$build/logs" "$build/corpus"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# One target: writes its summary line to $build/logs/<target>.summary and
# returns non-zero on a finding.
run_target() {
  local t=$1 bin="$build/bin/$1" scratch="$build/corpus/$1" log="$build/logs/$1.log" line rc
  if [ ! -x "$bin" ]; then
    printf '%-18s %14s %8s  %s\n' "$t" "-" "-" "NOT BUILT" >"$build/logs/$t.summary"
    return 1
  fi
  rm -rf "$scratch" && mkdir -p "$scratch" && cp fuzz/corpus/"$t"/* "$scratch"/
  # fuzz_shard_index's fixture folder lives in TMPDIR: one per target.
  export TMPDIR="$PWD/$build/tmp/$t"
  rm -rf "$TMPDIR" && mkdir -p "$TMPDIR"
  local args=(-max_len="${max_len[$t]}" -dict="${dict[$t]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048
        -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-")
  [ -z "$runs" ] || args+=(-runs="$runs")
  echo "== $t: ${seconds}s${runs:+ or $runs runs}, max_len ${max_len[$t]} (log: $log)"
  local start; start=$(date +%s)
  "$bin" "${args[@]}" "$scratch" >"$log" 2>&1
  rc=$?
  local elapsed=$(( $(date +%s) - start ))
  local execs secs result
  execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  [ -n "$execs" ] || execs=$(sed -n 's/^Done \([0-9]*\) runs in .*/\1/p' "$log" | tail -1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  [ -n "$secs" ] || secs=$elapsed
  if [ $rc -eq 0 ]; then
    result="ok, no crash"
  else
    local artifact kind
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    kind=$(grep -m1 -oE 'ERROR: (libFuzzer|AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer): [a-z-]+|runtime error: .*|FUZZ FINDING: .*|terminate called.*' "$log" || true)
    result="CRASH (rc $rc) ${kind:-see log}${artifact:+; artifact: $artifact}"
    grep -B2 -A25 -m1 -E '==[0-9]+==ERROR|runtime error|FUZZ FINDING|terminate called|deadly signal' "$log" | head -40 >&2
  fi
  rm -rf "$TMPDIR"
  printf '%-18s %14s %8s  %s\n' "$t" "${execs:-?}" "$secs" "$result" >"$build/logs/$t.summary"
  [ $rc -eq 0 ]
}

status=0
for t in "${targets[@]}"; do
  rm -f "$build/logs/$t.summary"
  run_target "$t" &
  # At most $jobs targets at once.
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
done
wait
# The summary files carry each target's result (exit statuses of reaped jobs do not).
summary=()
for t in "${targets[@]}"; do
  if [ -f "$build/logs/$t.summary" ]; then
    summary+=("$(cat "$build/logs/$t.summary")")
    grep -q ' ok, no crash$' "$build/logs/$t.summary" || status=1
  else summary+=("$(printf '%-18s %14s %8s  %s' "$t" "-" "-" "NO RESULT")"); status=1; fi
done

echo
echo "== fuzz summary ($(clang++ --version | head -1))"
printf '%-18s %14s %8s  %s\n' target executions seconds result
printf '%s\n' "${summary[@]}"
exit $status

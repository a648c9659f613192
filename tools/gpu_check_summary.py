#!/usr/bin/env python3
"""Summary of a tools/gpu-check.sh run: writes OUT/summary.md and OUT/summary.json.

    python3 tools/gpu_check_summary.py --work /tmp/gpu-check/logs --out DIR --mode quick

Reads, from WORK (the run's log folder): MANIFEST (the stage's commit, flags, paths), env.txt
(key=value: GPU, driver, CUDA runtime, cuBLASLt, cuDNN, ...), steps.tsv (one step a line: name,
kind, status, wall seconds, log, gtest JSON, note), each step's gtest JSON and log, peers.jsonl;
from OUT: bench-cuda.json (Google Benchmark's JSON; a file cut short by a killed run is
repaired as far as it goes). Standard library only; safe to run while the run is still going
(gpu-check.sh calls it after every step).
"""
import argparse
import json
import os
import re
import sys

STD_BENCH_KEYS = {
    "name", "run_name", "run_type", "repetitions", "repetition_index", "threads", "iterations",
    "real_time", "cpu_time", "time_unit", "family_index", "per_family_instance_index",
    "aggregate_name", "aggregate_unit", "label", "error_occurred", "error_message",
}
MAX_FAILURE_LINES = 40


def read_kv(path):
    out = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    out.setdefault(k.strip(), v.strip())
    except OSError:
        pass
    return out


def read_steps(work):
    steps = []
    try:
        with open(os.path.join(work, "steps.tsv"), encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) < 3:
                    continue
                parts += [""] * (7 - len(parts))
                name, kind, status, wall, log, gjson, note = parts[:7]
                try:
                    wall_s = float(wall)
                except ValueError:
                    wall_s = None
                steps.append({"name": name, "kind": kind, "status": status, "wall_s": wall_s,
                              "log": log, "gtest_json": gjson, "note": note})
    except OSError:
        pass
    return steps


def tail(path, n=30):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [l.rstrip("\n") for l in f.readlines()[-n:]]
    except OSError:
        return []


def load_gtest(path):
    """(counts, failures, skipped) from a gtest JSON file, or None when it is absent/unreadable."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    counts = {"passed": 0, "failed": 0, "skipped": 0, "disabled": 0, "total": 0}
    failures, skipped = [], []
    for suite in data.get("testsuites", []):
        for case in suite.get("testsuite", []):
            full = f"{case.get('classname', suite.get('name', '?'))}.{case.get('name', '?')}"
            counts["total"] += 1
            if case.get("status") == "NOTRUN":
                counts["disabled"] += 1
                continue
            fails = case.get("failures") or []
            if fails:
                counts["failed"] += 1
                msgs = []
                for fl in fails:
                    lines = str(fl.get("failure", "")).splitlines()
                    if len(lines) > MAX_FAILURE_LINES:
                        lines = lines[:MAX_FAILURE_LINES] + [f"... ({len(lines) - MAX_FAILURE_LINES} more lines)"]
                    msgs.append(lines)
                failures.append({"test": full, "time": case.get("time"), "messages": msgs})
            elif case.get("result") == "SKIPPED":
                counts["skipped"] += 1
                msg = ""
                sk = case.get("skipped")
                if isinstance(sk, list) and sk:
                    msg = str(sk[0].get("message", ""))
                elif isinstance(sk, dict):
                    msg = str(sk.get("message", ""))
                skipped.append({"test": full, "message": msg.strip()})
            else:
                counts["passed"] += 1
    return counts, failures, skipped


def skip_reasons_from_log(path):
    """gtest prints a skip's reason on the line(s) before '[  SKIPPED ] Test (n ms)'."""
    reasons = {}
    lines = tail(path, 100000)
    for i, line in enumerate(lines):
        m = re.match(r"\[  SKIPPED \] (\S+) \(", line)
        if m and i > 0:
            prev = lines[i - 1].strip()
            if prev and not prev.startswith("["):
                reasons[m.group(1)] = prev
    return reasons


SAN_PATTERNS = [
    re.compile(r"=+ (ERROR SUMMARY: .*)"),
    re.compile(r"=+ (RACECHECK SUMMARY: .*)"),
    re.compile(r"=+ (.*Device not supported.*)", re.I),
    re.compile(r"=+ (Error: .*)"),
]


def sanitizer_lines(path):
    out = []
    for line in tail(path, 100000):
        for p in SAN_PATTERNS:
            m = p.search(line)
            if m and m.group(1) not in out:
                out.append(m.group(1))
    return out


SIGNALS = {4: "SIGILL", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 11: "SIGSEGV", 15: "SIGTERM"}


def describe_status(status):
    """'exit status 134 (SIGABRT)', 'exit status 124 (timed out)', ..."""
    try:
        rc = int(status)
    except ValueError:
        return f"status {status}"
    if rc == 124:
        return "exit status 124 (timed out)"
    if rc == 86:
        return "exit status 86 (compute-sanitizer found errors)"
    if 128 < rc < 160:
        return f"exit status {rc} (killed by {SIGNALS.get(rc - 128, f'signal {rc - 128}')})"
    return f"exit status {rc}"


def load_bench(path):
    """Google Benchmark JSON; a file cut short (the run killed) is closed and read as far as it goes."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return None, "no bench-cuda.json"
    try:
        return json.loads(text), ""
    except ValueError:
        pass
    # Cut short: drop the last incomplete row, close the list and the object.
    cut = text.rfind("}")
    while cut > 0:
        candidate = text[:cut + 1].rstrip().rstrip(",") + "\n]\n}"
        try:
            return json.loads(candidate), "bench-cuda.json was cut short; rows read up to the cut"
        except ValueError:
            cut = text.rfind("}", 0, cut)
    return None, "bench-cuda.json unreadable"


def bench_rows(data):
    rows = []
    for b in (data or {}).get("benchmarks", []):
        if b.get("run_type", "iteration") != "iteration":
            continue
        counters = {k: v for k, v in b.items() if k not in STD_BENCH_KEYS and isinstance(v, (int, float))}
        row = {"name": b.get("name"), "real_time": b.get("real_time"), "time_unit": b.get("time_unit"),
               "iterations": b.get("iterations"), "label": b.get("label", ""), "counters": counters}
        if "B/s" in counters:
            counters["GB/s"] = counters.pop("B/s") / 1e9
        if "FLOP/s" in counters:
            row["TFLOP/s"] = counters["FLOP/s"] / 1e12
        if b.get("error_occurred"):
            row["error"] = b.get("error_message", "error")
        rows.append(row)
    return rows


def load_peers(path):
    peers = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        peers.append(json.loads(line))
                    except ValueError:
                        peers.append({"unparsed": line})
    except OSError:
        pass
    return peers


def fmt(v, digits=4):
    if v is None:
        return ""
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return f"{v:.{digits - 1}e}"
        return f"{v:.{digits}g}"
    return str(v)


def md_cell(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


def build(work, out, mode):
    manifest = read_kv(os.path.join(work, "MANIFEST"))
    env = read_kv(os.path.join(work, "env.txt"))
    steps = read_steps(work)
    programs, sanitize = [], []
    totals = {"passed": 0, "failed": 0, "skipped": 0, "disabled": 0, "total": 0}
    for s in steps:
        if s["kind"] not in ("test", "sanitize"):
            continue
        entry = {"program": s["name"], "status": s["status"], "wall_s": s["wall_s"], "note": s["note"]}
        g = load_gtest(os.path.join(work, s["gtest_json"])) if s["gtest_json"] else None
        if g:
            counts, failures, skipped = g
            reasons = skip_reasons_from_log(os.path.join(work, s["log"])) if s["log"] else {}
            for sk in skipped:
                if not sk["message"]:
                    sk["message"] = reasons.get(sk["test"], "")
            entry.update(counts=counts, failures=failures, skipped=skipped)
        else:
            entry.update(counts=None, failures=[], skipped=[])
        ok = s["status"] in ("0", "skipped") and not entry["failures"]
        if s["status"] not in ("0", "skipped") and not entry["failures"]:
            # Crashed, timed out or failed outside a test: the log's end says why.
            why = s["note"] or describe_status(s["status"]) + ("" if g else ", no gtest JSON")
            log = os.path.join(work, s["log"]) if s["log"] else ""
            lines = tail(log, 25)
            if s["kind"] == "sanitize" and s["status"] == "86":
                # The sanitizer's own reports (lines "========= ..."), not the end of the log.
                reports = [l for l in tail(log, 100000) if l.startswith("=========") and "COMPUTE-SANITIZER" not in l]
                lines = reports[:MAX_FAILURE_LINES] + ([f"... ({len(reports) - MAX_FAILURE_LINES} more lines)"]
                                                       if len(reports) > MAX_FAILURE_LINES else [])
            entry["failures"].append({"test": f"{s['name']} (whole program)", "time": None, "messages": [[why] + lines]})
        entry["ok"] = ok
        if s["kind"] == "sanitize":
            entry["sanitizer"] = sanitizer_lines(os.path.join(work, s["log"])) if s["log"] else []
            sanitize.append(entry)
        else:
            programs.append(entry)
            if entry["counts"]:
                for k in totals:
                    totals[k] += entry["counts"][k]
    bench_data, bench_note = load_bench(os.path.join(out, "bench-cuda.json"))
    bench = {"context": {k: v for k, v in ((bench_data or {}).get("context") or {}).items()
                         if k in ("date", "executable", "device", "l2_bytes", "peak_bf16_gemm_tflops",
                                  "peak_fp32_gemm_tflops", "peak_copy_gbs", "cudnn_attention",
                                  "attention_version", "library_build_type")},
             "rows": bench_rows(bench_data), "note": bench_note}
    peers = load_peers(os.path.join(work, "peers.jsonl"))
    failed_steps = [s["name"] for s in steps if s["status"] not in ("0", "skipped")]
    other_failures = [{"step": s["name"], "why": s["note"] or describe_status(s["status"]),
                       "log_tail": tail(os.path.join(work, s["log"]), 15) if s["log"] else []}
                      for s in steps if s["kind"] in ("bench", "peer", "golden") and s["status"] not in ("0", "skipped")]
    return {
        "mode": mode,
        "commit": manifest.get("commit", "?"),
        "dirty": manifest.get("dirty", "?"),
        "staged": manifest.get("date", "?"),
        "build": {k: manifest.get(k, "") for k in ("build_type", "cuda_archs", "cxx_flags", "cmake_flags",
                                                  "source_dir", "nvcc", "cxx", "libs", "payload_bytes")},
        "machine": {k: env.get(k, "") for k in ("gpu", "gpu_memory", "driver", "driver_cuda", "cudart",
                                               "cublaslt", "cudnn", "nvrtc", "compute_sanitizer", "host",
                                               "python", "torch")},
        "tests": {"totals": totals, "programs": sorted(programs, key=lambda p: p["program"])},
        "sanitize": sanitize,
        "bench": bench,
        "peers": peers,
        "steps": steps,
        "failed_steps": failed_steps,
        "other_failures": other_failures,
        "ok": not failed_steps,
    }


def markdown(r):
    m = r["machine"]
    L = [f"# GPU check --{r['mode']}: commit {r['commit'][:12]} (dirty files: {r['dirty']})", ""]
    t = r["tests"]["totals"]
    san_bad = [s for s in r["sanitize"] if not s["ok"]]
    verdict = "all steps passed" if r["ok"] else "FAILED steps: " + ", ".join(r["failed_steps"])
    L += [f"**{verdict}.** Tests: {t['passed']} passed, {t['failed']} failed, {t['skipped']} skipped"
          f" ({t['total']} in {len(r['tests']['programs'])} programs)"
          + (f"; sanitizer runs: {len(r['sanitize']) - len(san_bad)} clean, {len(san_bad)} not" if r["sanitize"] else "")
          + ".", ""]
    L += ["## Machine", "", "| | |", "| --- | --- |"]
    for k, label in (("gpu", "GPU"), ("gpu_memory", "GPU memory"), ("driver", "driver"),
                     ("driver_cuda", "CUDA (driver)"), ("cudart", "CUDA runtime (staged)"),
                     ("cublaslt", "cuBLASLt"), ("cudnn", "cuDNN"), ("nvrtc", "NVRTC"),
                     ("compute_sanitizer", "compute-sanitizer"), ("host", "host"), ("python", "python"),
                     ("torch", "torch (version, CUDA, cuDNN)")):
        L.append(f"| {label} | {md_cell(m.get(k, ''))} |")
    b = r["build"]
    L += [f"| build | {md_cell(b['build_type'])}, CUDA archs {md_cell(b['cuda_archs'])}, "
          f"CXX flags {md_cell(b['cxx_flags'])}, {md_cell(b['nvcc'])}, staged {md_cell(r['staged'])} |", ""]
    if r["tests"]["programs"]:
        L += ["## Tests", "", "| program | passed | failed | skipped | total | exit | wall s | note |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for p in r["tests"]["programs"]:
            c = p["counts"] or {}
            L.append(f"| {p['program']} | {c.get('passed', '-')} | {c.get('failed', '-')} | {c.get('skipped', '-')} | "
                     f"{c.get('total', '-')} | {p['status']} | {fmt(p['wall_s'])} | {md_cell(p['note'])} |")
        L.append("")
    fails = [(p["program"], f) for p in r["tests"]["programs"] + r["sanitize"] for f in p["failures"]]
    if fails:
        L += ["## Failures", ""]
        for prog, f in fails:
            L.append(f"### {prog}: {f['test']}" + (f" ({f['time']})" if f.get("time") else ""))
            L.append("```")
            for msg in f["messages"]:
                L += msg
            L += ["```", ""]
    skips = [(p["program"], s) for p in r["tests"]["programs"] for s in p["skipped"]]
    if skips:
        L += ["## Skipped", ""]
        groups = {}
        for prog, sk in skips:
            groups.setdefault((prog, sk["message"]), []).append(sk["test"])
        for (prog, msg), names in groups.items():
            shown = names if len(names) <= 3 else names[:2] + [f"... {len(names) - 2} more"]
            L.append(f"- {prog}: {len(names)} skipped ({', '.join(shown)})" + (f": {msg}" if msg else ""))
        L.append("")
    if r["sanitize"]:
        L += ["## compute-sanitizer", "", "| tool:program | exit | wall s | tests run | summary |",
              "| --- | --- | --- | --- | --- |"]
        for s in r["sanitize"]:
            c = s["counts"] or {}
            L.append(f"| {s['program']} | {s['status']} | {fmt(s['wall_s'])} | {c.get('total', '-')} | "
                     f"{md_cell('; '.join(s.get('sanitizer', [])) or s['note'])} |")
        L.append("")
    bench = r["bench"]
    L += ["## Benchmark", ""]
    if bench["context"]:
        L += ["; ".join(f"{k} {v}" for k, v in bench["context"].items()), ""]
    if bench["note"]:
        L += [bench["note"], ""]
    if bench["rows"]:
        L += ["| row | time | unit | iters | TFLOP/s | %peak_flops | other counters |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
        for row in bench["rows"]:
            c = dict(row["counters"])
            c.pop("FLOP/s", None)
            pk = c.pop("%peak_flops", None)
            other = ", ".join(f"{k} {fmt(v)}" for k, v in c.items())
            if row.get("label"):
                other = f"[{row['label']}] " + other
            if row.get("error"):
                L.append(f"| {md_cell(row['name'])} | ERROR | | | | | {md_cell(row['error'])} |")
            else:
                L.append(f"| {md_cell(row['name'])} | {fmt(row['real_time'])} | {row['time_unit']} | {row['iterations']} | "
                         f"{fmt(row.get('TFLOP/s'))} | {fmt(pk)} | {md_cell(other)} |")
        L.append("")
    if r["peers"]:
        L += ["## Peers", "", "```"] + [json.dumps(p, sort_keys=True) for p in r["peers"]] + ["```", ""]
    for f in r["other_failures"]:
        L += [f"## {f['step']} failed: {f['why']}", "", "```"] + f["log_tail"] + ["```", ""]
    L += ["## Steps", "", "| step | kind | status | wall s | note |", "| --- | --- | --- | --- | --- |"]
    for s in r["steps"]:
        L.append(f"| {s['name']} | {s['kind']} | {s['status']} | {fmt(s['wall_s'])} | {md_cell(s['note'])} |")
    L.append("")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/gpu-check/logs", help="the run's log folder")
    ap.add_argument("--out", default=os.environ.get("OUT") or "gpu-check-out", help="where summary.* go")
    ap.add_argument("--mode", default="?", help="quick, full, pipeline or sanitize")
    a = ap.parse_args()
    r = build(a.work, a.out, a.mode)
    os.makedirs(a.out, exist_ok=True)
    for name, text in (("summary.json", json.dumps(r, indent=1)), ("summary.md", markdown(r))):
        tmp = os.path.join(a.out, "." + name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, os.path.join(a.out, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())

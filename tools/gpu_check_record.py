#!/usr/bin/env python3
"""Writes docs/perf/cuda_h200.json (the DiT step's record, docs/cuda.md) from one tools/gpu-check.sh run's output
folder (summary.json, bench-cuda.json, peers.jsonl): commit, machine, the DiT step at caption
128 / 512 (the dispatcher's choice and the mma kernel forced), its FLOP-count bound, the per-step
breakdown, diffusers' step from the same run (null where the run did not measure it), each
attention version's rate at 4096 + 32 tokens (batch 1, no mask), and (the whole image, from a --pipeline
run) the whole image at 1024x1024 in 8 steps with its breakdown, the peak device memory of the
zimage generate --device cuda flow, and diffusers' ZImagePipeline from the same run.

    python3 tools/gpu_check_record.py RUN_DIR [--out docs/perf/cuda_h200.json]

Only numbers present in RUN_DIR are written; a missing one is null with its reason in "notes".
An existing --out is merged: fields this run did not measure keep their earlier values, and
"measured_at" maps each measured field to the commit of the run that measured it (--replace
writes this run alone). Standard library only.
"""
import argparse
import json
import os
import sys


def rows_by_name(bench):
    return {r["name"]: r for r in bench.get("benchmarks", []) if not r.get("error_occurred")}


def find(rows, prefix):
    for name, r in rows.items():
        if name.startswith(prefix):
            return r
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--out", default="docs/perf/cuda_h200.json")
    ap.add_argument("--replace", action="store_true", help="write only this run's fields (no merge with --out)")
    a = ap.parse_args()
    try:
        summary = json.load(open(os.path.join(a.run_dir, "summary.json")))
        bench = json.load(open(os.path.join(a.run_dir, "bench-cuda.json")))
    except (OSError, ValueError) as e:
        print(f"gpu_check_record: {a.run_dir}: {e}", file=sys.stderr)
        return 2
    peers = []
    pj = os.path.join(a.run_dir, "peers.jsonl")
    if os.path.exists(pj):
        peers = [json.loads(line) for line in open(pj) if line.strip().startswith("{")]
    rows = rows_by_name(bench)
    m = summary.get("machine", {})
    notes = []

    def ms(prefix, what):
        r = find(rows, prefix)
        if r is None:
            notes.append(f"{what}: no row {prefix}* in bench-cuda.json")
            return None, None
        assert r.get("time_unit") == "ms", r
        return round(r["real_time"], 3), r

    rec = {
        "commit": summary.get("commit"),
        "run_mode": summary.get("mode"),
        "date": bench.get("context", {}).get("date"),
        "gpu": m.get("gpu"),
        "driver": m.get("driver"),
        "cuda": m.get("driver_cuda"),
        "cudnn": m.get("cudnn"),
        "cublaslt": m.get("cublaslt"),
        "peak_bf16_gemm_tflops": float(bench.get("context", {}).get("peak_bf16_gemm_tflops", "nan")),
        "tests": summary.get("tests", {}).get("totals"),
    }
    base = "BM_CudaDitStep_bf16/1024x1024/"
    rec["step_ms_cap128"], r128 = ms(base + "cap:128/attn:0/", "step cap 128")
    rec["step_ms_cap512"], r512 = ms(base + "cap:512/attn:0/", "step cap 512")
    rec["step_ms_cap128_mma"], _ = ms(base + "cap:128/attn:1/", "step cap 128, mma")
    rec["step_ms_cap128_no_graph"], _ = ms(base + "cap:128/attn:3/", "step cap 128, no CUDA graph")
    rec["step_ms_cap128_mma_wide"], _ = ms(base + "cap:128/attn:4/", "step cap 128, mma_wide")
    rec["step_ms_cap128_gemm_timed"], _ = ms(base + "cap:128/attn:5/", "step cap 128, timed GEMM algorithms")
    rec["bound_ms_cap128"] = round(1e3 * r128["bound_s"], 3) if r128 else None
    rec["bound_ms_cap512"] = round(1e3 * r512["bound_s"], 3) if r512 else None
    rec["step_attention"] = (r128 or {}).get("label")
    _, rb = ms(base + "cap:128/attn:2/", "step breakdown")
    rec["breakdown_cap128_ms"] = (
        {**{k: round(rb[k + "_ms"], 2) for k in ("gemm", "attention", "norms", "qk_norm_rope", "swiglu", "rest")
            if k + "_ms" in rb},  # norms, qk_norm_rope, swiglu: counted from 2026-12-07 on
         "step_with_events": round(rb["real_time"], 2)} if rb else None)

    def peer(mode, cap):
        for p in peers:
            if p.get("peer") == "diffusers" and p.get("mode") == mode and p.get("cap") == cap and "median_ms" in p:
                return round(p["median_ms"], 2)
        notes.append(f"diffusers {mode} cap {cap}: not measured in this run")
        return None

    rec["diffusers_eager_ms_cap128"] = peer("eager", 128)
    # peer_diffusers.py names the mode "torch.compile" (before 2026-12-07 this looked for "compile",
    # which it never prints: the field stayed null).
    rec["diffusers_compile_ms_cap128"] = peer("torch.compile", 128)
    rec["diffusers_eager_ms_cap512"] = peer("eager", 512)

    # The whole image (tools/gpu-check.sh run --pipeline).
    _, ri = ms("BM_CudaImage_bf16/1024x1024/steps:8/", "image 1024x1024, 8 steps")
    rec["image_s_1024_8steps"] = round(ri["image_s"], 4) if ri else None
    rec["image_breakdown_ms"] = (
        {k: round(ri[k + "_ms"], 2) for k in ("encode", "denoise", "step", "decode", "png", "rest")} if ri else None)
    _, rl = ms("BM_CudaImageLean_bf16/1024x1024/steps:8/", "image memory, the zimage generate --device cuda flow")
    rec["memory_gib_1024_8steps"] = (
        {k: round(rl[k], 3) for k in ("peak_used_gib", "peak_allocated_gib", "baseline_used_gib", "encode_peak_used_gib",
                                      "load_peak_used_gib", "denoise_peak_used_gib", "decode_peak_used_gib") if k in rl}
        if rl else None)

    def pipeline_peer(mode):
        for p in peers:
            if p.get("peer") == "diffusers_pipeline" and p.get("mode") == mode and "median_s" in p:
                return p
        notes.append(f"diffusers pipeline {mode}: not measured in this run")
        return None

    pe = pipeline_peer("eager")
    rec["diffusers_image_s_1024_8steps"] = round(pe["median_s"], 4) if pe else None
    # torch's allocator with every model resident: not the same quantity as our lean flow's peak.
    rec["diffusers_resident_max_memory_allocated_gib"] = pe.get("max_memory_allocated_gib") if pe else None
    pc = next((p for p in peers if p.get("peer") == "diffusers_pipeline" and p.get("mode") == "torch.compile"
               and "median_s" in p), None)
    rec["diffusers_compile_image_s_1024_8steps"] = round(pc["median_s"], 4) if pc else None
    att = {}
    for ver, name in ((0, "v1_simt"), (1, "mma"), (2, "cudnn"), (3, "mma_wide")):
        r = find(rows, f"BM_CudaFlashAttention<bf16>/img:4096/cap:32/mask:0/B:1/ver:{ver}/")
        att[name] = round(r["FLOP/s"] / 1e12, 1) if r else None
        if r is None:
            notes.append(f"attention {name}: no row at 4096 + 32 tokens")
    rec["attention_tflops_4128"] = att
    rec["notes"] = notes
    # A run measures some fields only (--quick: the step and attention; --pipeline: the image): the
    # record keeps the others from earlier runs, and "measured_at" says which commit each came from.
    meta = ("commit", "run_mode", "date", "gpu", "driver", "cuda", "cudnn", "cublaslt", "peak_bf16_gemm_tflops", "tests",
            "notes")
    old = {}
    if os.path.exists(a.out) and not a.replace:
        with open(a.out) as f:
            old = json.load(f)
    merged = dict(old)
    measured_at = dict(old.get("measured_at", {}))
    if old and "measured_at" not in old:  # a record from before the merge: all of it from its own commit
        measured_at = {k: old.get("commit") for k, v in old.items() if k not in meta and v is not None}
    for k, v in rec.items():
        if k in meta:
            merged[k] = v
        elif v is not None and v != {} and not (isinstance(v, dict) and all(x is None for x in v.values())):
            merged[k] = v
            measured_at[k] = rec["commit"]
        elif k not in merged:
            merged[k] = v
    merged["measured_at"] = measured_at
    rec = merged
    with open(a.out, "w") as f:
        json.dump(rec, f, indent=1)
        f.write("\n")
    print(json.dumps(rec, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

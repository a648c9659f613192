#!/usr/bin/env python3
"""Draws docs/perf/cuda_h200_step.png: the DiT step (1024x1024, bf16, caption 128) on an H200,
this project's CUDA path at each recorded GPU run against its FLOP-count bound, the 85 ms goal
and diffusers (eager measured in the same run as the latest; torch.compile from the first run,
marked as such). Every number is read from docs/perf/cuda_h200.json and the run folders under
docs/gpu-runs/ (bench-cuda.json, peers.jsonl); none is typed in here.

    python3 tools/plot_cuda_step.py [--out docs/perf/cuda_h200_step.png]

Needs matplotlib (the golden env has it: ../shared/golden-env/run python3 tools/plot_cuda_step.py).
"""
import argparse
import glob
import json
import os
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROW = "BM_CudaDitStep_bf16/1024x1024/cap:128"


def step_ms(run_dir):
    """(date, ms, iterations) of our step at caption 128 (the dispatcher's attention) in one run
    folder, or None."""
    p = os.path.join(run_dir, "bench-cuda.json")
    if not os.path.exists(p):
        return None
    j = json.load(open(p))
    for r in j.get("benchmarks", []):
        n = r["name"]
        if n.startswith(ROW) and ("attn:0" in n or "attn:" not in n) and not r.get("error_occurred"):
            if r.get("time_unit") != "ms":
                return None
            return j.get("context", {}).get("date", ""), r["real_time"], r.get("iterations")
    return None


def diffusers_compile_first_run():
    """diffusers + torch.compile at caption 128 from the first run's log (its own, older format)."""
    p = "docs/gpu-runs/2026-12-04-h200-2c2465f/peer-diffusers.log"
    for line in open(p):
        m = re.search(r"torch\.compile bf16 1024x1024 cap128: median ([0-9.]+) ms", line)
        if m:
            return float(m.group(1))
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs/perf/cuda_h200_step.png")
    a = ap.parse_args()
    rec = json.load(open("docs/perf/cuda_h200.json"))
    runs = []
    for d in glob.glob("docs/gpu-runs/*-h200-*"):
        r = step_ms(d)
        if r is not None:
            runs.append((r[0], d.rsplit("-", 1)[-1], r[1], r[2]))
    runs.sort()  # by the benchmark's own date
    labels = [f"ours {c}\n({n} step{'s' if n != 1 else ''} timed)" for _, c, _, n in runs]
    values = [ms for _, _, ms, _ in runs]
    colors = ["#4c72b0"] * len(values)
    if rec.get("diffusers_eager_ms_cap128"):
        labels.append(f"diffusers eager\n(same run as {rec['commit'][:7]})")
        values.append(rec["diffusers_eager_ms_cap128"])
        colors.append("#dd8452")
    comp = rec.get("diffusers_compile_ms_cap128") or diffusers_compile_first_run()
    if comp:
        same = rec.get("diffusers_compile_ms_cap128") is not None
        labels.append("diffusers\n+ torch.compile" + ("" if same else "\n(first run 2c2465f)"))
        values.append(comp)
        colors.append("#c44e52")
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    bars = ax.bar(range(len(values)), values, color=colors)
    for b, v in zip(bars, values):
        ax.text(b.get_x() + b.get_width() / 2, min(v, 190) + 3, f"{v:.1f}", ha="center", fontsize=9)
    ax.axhline(rec["bound_ms_cap128"], color="k", ls="--", lw=1)
    ax.text(len(values) - 0.5, rec["bound_ms_cap128"] - 9, f"FLOP bound {rec['bound_ms_cap128']:.1f} ms", ha="right", fontsize=8)
    ax.axhline(85, color="g", ls=":", lw=1)
    ax.text(len(values) - 0.5, 87, "goal 85 ms", ha="right", fontsize=8, color="g")
    ax.set_ylim(0, 200)
    ax.set_xticks(range(len(values)), labels, fontsize=8)
    ax.set_ylabel("ms per step")
    ax.set_title(f"Z-Image DiT step, 1024x1024 bf16, caption 128, {rec['gpu']} (bars above 200 ms clipped)", fontsize=9)
    fig.tight_layout()
    fig.savefig(a.out)
    print(f"wrote {a.out}: " + ", ".join(f"{lab.splitlines()[0]} {v:.1f}" for lab, v in zip(labels, values)))


if __name__ == "__main__":
    main()

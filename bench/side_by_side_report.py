#!/usr/bin/env python3
"""Pairs bench/side_by_side.sh's rounds: best time per benchmark on each side,
the ratio torch / reference per row, a table on stdout, side_by_side.json,
and with --png a bar chart (PIL, from the golden env)."""
import argparse
import glob
import json
import os


def best(paths):
    out, ctx = {}, {}
    for p in paths:
        with open(p) as f:
            doc = json.load(f)
        ctx = doc.get("context", ctx)
        for b in doc["benchmarks"]:
            if b.get("run_type") == "aggregate":
                continue
            t = float(b["real_time"]) * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]
            name = b.get("run_name", b["name"])
            out[name] = min(out.get(name, t), t)
    return out, ctx


def plot(rows, path):
    from PIL import Image, ImageDraw

    w, row_h, left = 1100, 22, 520
    img = Image.new("RGB", (w, 60 + row_h * len(rows)), "white")
    d = ImageDraw.Draw(img)
    d.text((10, 10), "torch CPU time / reference time (bar right of the line: reference faster)", fill="black")
    top = max([r["ratio"] for r in rows] + [2.0])
    scale = (w - left - 40) / top
    x1 = left + scale * 1.0
    for i, r in enumerate(rows):
        y = 40 + i * row_h
        d.text((10, y + 4), r["name"][:80], fill="black")
        d.rectangle([left, y + 3, left + scale * r["ratio"], y + row_h - 3],
                    fill=(60, 140, 60) if r["ratio"] >= 1 else (190, 70, 60))
        d.text((left + scale * r["ratio"] + 4, y + 4), f"{r['ratio']:.2f}", fill="black")
    d.line([x1, 35, x1, 40 + row_h * len(rows)], fill="black", width=1)
    img.save(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--rounds", type=int, required=True)
    ap.add_argument("--png")
    a = ap.parse_args()
    ours, octx = best(sorted(glob.glob(os.path.join(a.out, "ours.*.json"))))
    theirs, tctx = best(sorted(glob.glob(os.path.join(a.out, "torch.*.json"))))
    rows = [{"name": n, "reference_ms": ours[n], "torch_ms": theirs[n], "ratio": theirs[n] / ours[n]}
            for n in sorted(set(ours) & set(theirs))]
    if a.png:
        plot(rows, a.png)
        return
    print(f"{'benchmark':60s} {'reference':>12s} {'torch':>12s} {'torch/ref':>10s}")
    for r in rows:
        print(f"{r['name']:60s} {r['reference_ms']:10.2f}ms {r['torch_ms']:10.2f}ms {r['ratio']:10.2f}")
    for n in sorted(set(ours) ^ set(theirs)):
        print(f"{n:60s} (one side only)")
    with open(os.path.join(a.out, "side_by_side.json"), "w") as f:
        json.dump({"reference_context": octx, "torch_context": tctx, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()

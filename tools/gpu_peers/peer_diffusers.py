#!/usr/bin/env python3
"""Times diffusers' ZImageTransformer2DModel (Z-Image-Turbo's config, bf16, random weights) on
this GPU: one DiT step at SIDE x SIDE (latent [16, 1, SIDE/8, SIDE/8]) for each caption length,
eager and (with --compile) torch.compile in its default mode. CUDA events around each call;
--warmup untimed calls, then --reps timed ones (at least 5); the median is the figure.

    python3 tools/gpu_peers/peer_diffusers.py --diffusers-src DIR [--caps 128 512] [--side 1024]
                                              [--warmup 3] [--reps 10] [--compile]

DIR holds the diffusers package (DIR/diffusers/__init__.py, e.g. a checkout's src/). One JSON
line per measurement on stdout, printed as soon as it is measured (a run cut short keeps those
done), e.g.
{"peer": "diffusers", "mode": "eager", "cap": 128, "side": 1024, "median_ms": 145.0, "min_ms": ...,
 "max_ms": ..., "reps": 10, "torch": "2.11.0", "diffusers": "0.40.0.dev0", "gpu": "NVIDIA H200"}
A mode that fails prints {"...", "error": "..."} and the others go on.
"""
import argparse
import json
import os
import statistics
import sys
import time

CFG = dict(dim=3840, n_layers=30, n_refiner_layers=2, n_heads=30, n_kv_heads=30, cap_feat_dim=2560,
           axes_dims=[32, 48, 48], axes_lens=[1536, 512, 512], in_channels=16, rope_theta=256.0, t_scale=1000.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--diffusers-src", default=os.environ.get("DIFFUSERS_SRC", ""))
    ap.add_argument("--caps", nargs="+", type=int, default=[128, 512])
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile(model)")
    a = ap.parse_args()
    a.reps = max(a.reps, 5)
    if a.diffusers_src:
        sys.path.insert(0, a.diffusers_src)
    import torch
    import diffusers
    from diffusers import ZImageTransformer2DModel

    base = {"peer": "diffusers", "side": a.side, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "gpu": torch.cuda.get_device_name(0)}
    t0 = time.time()
    with torch.device("cuda"):
        model = ZImageTransformer2DModel(**CFG).to(torch.bfloat16).eval()
    print(f"# params {sum(p.numel() for p in model.parameters())}, built in {time.time() - t0:.1f}s", flush=True)
    g = torch.Generator("cuda").manual_seed(0)
    lat = a.side // 8
    inputs = {}
    for cap in a.caps:
        x = [torch.randn(16, 1, lat, lat, device="cuda", generator=g, dtype=torch.bfloat16)]
        c = [torch.randn(cap, CFG["cap_feat_dim"], device="cuda", generator=g, dtype=torch.bfloat16)]
        t = torch.tensor([0.5], device="cuda", dtype=torch.float32)
        inputs[cap] = (x, t, c)

    def measure(fn, mode, cap):
        row = dict(base, mode=mode, cap=cap)
        try:
            w0 = time.time()
            with torch.no_grad():
                for _ in range(a.warmup):
                    fn()
                torch.cuda.synchronize()
                row["warmup_s"] = round(time.time() - w0, 2)
                ts = []
                for _ in range(a.reps):
                    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    s.record()
                    fn()
                    e.record()
                    torch.cuda.synchronize()
                    ts.append(s.elapsed_time(e))
            row.update(median_ms=statistics.median(ts), min_ms=min(ts), max_ms=max(ts), reps=len(ts))
        except Exception as ex:
            row["error"] = f"{type(ex).__name__}: {str(ex).splitlines()[0][:300] if str(ex) else ''}"
        print(json.dumps(row), flush=True)

    for cap in a.caps:
        x, t, c = inputs[cap]
        measure(lambda: model(x, t, c, return_dict=False), "eager", cap)
    if a.compile:
        compiled = torch.compile(model)
        for cap in a.caps:
            x, t, c = inputs[cap]
            measure(lambda: compiled(x, t, c, return_dict=False), "torch.compile", cap)
    return 0


if __name__ == "__main__":
    sys.exit(main())

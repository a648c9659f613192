#!/usr/bin/env python3
"""torch's fp32 (or bf16) SDPA backends against an fp64 reference on this GPU, at the shapes given.

    python3 tools/gpu_peers/peer_sdpa.py --shapes 1x1025x30x128 1x4128x30x128 [--backends math,efficient,cudnn]
                                         [--dtype float32] [--heads 0,29] [--scale 2.0] [--seed 0]

Shapes are BxLxHxD; q, k, v are randn * scale (the attention test's inputs), softmax scale
1/sqrt(D), no mask. Metrics as the project's compare, over the heads kept (--heads; default the
first and the last): rel_rms = rms(d) / rms(ref), max_n = max|d| / rms(ref). One JSON line per
shape and backend on stdout, e.g.
{"peer": "torch_sdpa", "backend": "MATH", "dtype": "float32", "B": 1, "L": 1025, "H": 30, "D": 128,
 "rel_rms": 1.2e-06, "max_n": 1.6e-05, "torch": "2.11.0", "gpu": "NVIDIA H200"}
A backend that refuses the shape gives {"...", "error": "..."}.
"""
import argparse
import json
import sys

BACKENDS = {"math": "MATH", "efficient": "EFFICIENT_ATTENTION", "cudnn": "CUDNN_ATTENTION", "flash": "FLASH_ATTENTION"}


def shape(s):
    parts = s.lower().split("x")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"shape '{s}' is not BxLxHxD")
    return tuple(int(p) for p in parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="+", type=shape, default=[(1, 1025, 30, 128), (1, 4128, 30, 128), (1, 4608, 30, 128)])
    ap.add_argument("--backends", default="math,efficient,cudnn")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--heads", default="", help="heads compared, comma-separated (default: first and last)")
    ap.add_argument("--scale", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    for name in a.backends.split(","):
        if name not in BACKENDS:
            ap.error(f"unknown backend '{name}' (known: {', '.join(BACKENDS)})")
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    dt = getattr(torch, a.dtype)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(a.seed)
    base = {"peer": "torch_sdpa", "dtype": a.dtype, "torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}
    for (B, L, H, D) in a.shapes:
        heads = [int(h) for h in a.heads.split(",")] if a.heads else sorted({0, H - 1})
        q, k, v = (torch.randn(B, H, L, D, device="cuda", dtype=torch.float64) * a.scale for _ in range(3))
        ref = F.scaled_dot_product_attention(q, k, v)[:, heads]
        rms = ref.pow(2).mean().sqrt()
        for name in a.backends.split(","):
            backend = getattr(SDPBackend, BACKENDS[name])
            row = dict(base, backend=backend.name, B=B, L=L, H=H, D=D, heads=heads)
            try:
                with sdpa_kernel(backend):
                    o = F.scaled_dot_product_attention(q.to(dt), k.to(dt), v.to(dt))
                d = o[:, heads].double() - ref
                row.update(rel_rms=(d.pow(2).mean().sqrt() / rms).item(), max_n=(d.abs().max() / rms).item())
            except Exception as e:  # a backend that does not take this shape or dtype
                row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            print(json.dumps(row), flush=True)
        del q, k, v, ref
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())

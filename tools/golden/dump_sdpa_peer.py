#!/usr/bin/env python3
"""torch's own fp32 SDPA error at the CUDA attention test's shapes: the fp32 peer of the
FlashAttention rule for flash_attention v1_simt (docs/attention.md).

For each L in (1025, 4128, 4608), B 1, H 2, D 128:

    g = torch.Generator().manual_seed(seed_L)                    # seed_L = 1015000 + L
    x = torch.randn(3 * L * H * D, generator=g, dtype=torch.float32) * 2
    q, k, v = x.view(3, 1, L, H, D)                              # [B, L, H, D] each, contiguous

(one contiguous randn of numel >= 16: reference/pipeline/torch_generator.h reproduces it bit for
bit with TorchCpuGenerator::randn under the AVX2/AVX512 capability; x 2 is exact), then
torch.nn.functional.scaled_dot_product_attention on the CPU over [B, H, L, D] views, in fp32
(the math backend, and torch's default CPU choice) and in fp64 (math backend: the reference r).
Recorded per L (metadata `sdpa_peer`, JSON): rel_rms = ||a - r|| / ||r|| and
max_n = max|a - r| / rms(r) over every element of both heads (the project's definitions,
reference/numerics/tolerance.h), the worst element's [B, L, H, D] flat index and values; the
inputs' fnv1a64 (float32 little-endian bytes, row-major [1, L, H, D]), float64 sum and sum of
squares and first 4 values, so the C++ side can prove it regenerated the same inputs; and the
fp64 output's sum, sum of squares and first 4 values. Stored tensors: `qkv.head.L{L}` [3, 8],
the first 8 values of q, k, v (float32, exact).

    OMP_NUM_THREADS=1 ../shared/golden-env/run python3 -B tools/golden/dump_sdpa_peer.py --out golden
    ... dump_sdpa_peer.py --check golden/sdpa_fp32_peer.safetensors   # recompute and compare

Checked by tests/golden/test_sdpa_peer_golden.cpp (inputs, CPU) and by
tests/cuda/test_cuda_attention.cpp (FlashAttentionFp32Peer: the peer rule on the GPU).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

import golden_io as gio  # noqa: E402
from synthetic import fnv1a64_hex as digest  # noqa: E402

LENGTHS = (1025, 4128, 4608)
B, H, D = 1, 2, 128
SEED_BASE = 1015000
SCALE = 2.0
CASE = "sdpa_fp32_peer"


def seed_of(L: int) -> int:
    return SEED_BASE + L


def inputs(L: int):
    g = torch.Generator().manual_seed(seed_of(L))
    x = torch.randn(3 * L * H * D, generator=g, dtype=torch.float32) * SCALE
    q, k, v = x.view(3, B, L, H, D)
    return q, k, v


def summary(t: torch.Tensor, fnv: bool) -> dict:
    d = t.detach().to(torch.float64).reshape(-1)
    out = {"sum": float(d.sum()), "sumsq": float((d * d).sum()), "head": [float(x) for x in d[:4]]}
    if fnv:
        out["fnv1a64"] = digest(t)
    return out


def sdpa(q, k, v, backend):
    """SDPA over [B, L, H, D] tensors (transposed to torch's [B, H, L, D]); result back as [B, L, H, D]."""
    qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))
    if backend is None:
        o = F.scaled_dot_product_attention(qt, kt, vt)
    else:
        with sdpa_kernel(backend):
            o = F.scaled_dot_product_attention(qt, kt, vt)
    return o.transpose(1, 2).contiguous()


def compare(a: torch.Tensor, r: torch.Tensor) -> dict:
    """The project's compare (reference/numerics/tolerance.h) in float64."""
    a = a.to(torch.float64).reshape(-1)
    r = r.to(torch.float64).reshape(-1)
    diff = (a - r).abs()
    rn = float(torch.linalg.vector_norm(r))
    rms = rn / np.sqrt(r.numel())
    worst = int(torch.argmax(diff))
    return {"n": r.numel(), "nonfinite": int((~torch.isfinite(a)).sum()),
            "rel_rms": float(torch.linalg.vector_norm(a - r)) / rn, "max_n": float(diff[worst]) / rms,
            "worst": worst, "worst_a": float(a[worst]), "worst_r": float(r[worst]), "ref_rms": rms}


def default_backend_name(q, k, v) -> str:
    """The backend torch's CPU dispatch picks for these inputs (torch._fused_sdp_choice)."""
    qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))
    idx = torch._fused_sdp_choice(qt, kt, vt)
    for name, b in SDPBackend.__members__.items():
        if int(b.value) == int(idx):
            return name
    return str(idx)


def measure(L: int) -> tuple[dict, torch.Tensor]:
    q, k, v = inputs(L)
    r = sdpa(q.double(), k.double(), v.double(), SDPBackend.MATH)
    a_math = sdpa(q, k, v, SDPBackend.MATH)
    a_default = sdpa(q, k, v, None)
    rec = {
        "seed": seed_of(L),
        "shape": [B, L, H, D],
        "generator": f"torch.randn({3 * L * H * D}, generator=torch.Generator().manual_seed({seed_of(L)}), "
                     f"dtype=torch.float32) * {SCALE}, viewed as [3, {B}, {L}, {H}, {D}] -> q, k, v",
        "inputs": {"q": summary(q, True), "k": summary(k, True), "v": summary(v, True)},
        "fp64_out": summary(r, False),
        "fp32_math": compare(a_math, r),
        "fp32_default": {**compare(a_default, r), "backend": default_backend_name(q, k, v)},
        "fp32_math_out": summary(a_math, True),
    }
    for key in ("fp32_math", "fp32_default"):
        if rec[key]["nonfinite"]:
            raise gio.GoldenError(f"L {L}: {key} has NaN/Inf")
    heads = torch.stack([q.reshape(-1)[:8], k.reshape(-1)[:8], v.reshape(-1)[:8]])
    return rec, heads


def provenance(records: dict) -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    meta = {
        "format": gio.FORMAT,
        "case": CASE,
        "kind": "sdpa_peer",
        "torch_version": str(torch.__version__),
        "numpy_version": str(np.__version__),
        "safetensors_version": gio._version("safetensors"),
        "python_version": platform.python_version(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_model": cpu,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "script": "tools/golden/dump_sdpa_peer.py",
        "dtype": "float32",
        "reference_dtype": "float64",
        "seed": str(SEED_BASE),
        "command": " ".join(sys.argv),
        "threads": str(torch.get_num_threads()),
        "tf32": "off",
        "device": "cpu",
        "attention_backend": "math",
        "layout": "q, k, v [B, L, H, D] row-major (transposed to [B, H, L, D] for SDPA); outputs back to [B, L, H, D]",
        "definitions": "rel_rms = ||a - r|| / ||r||, max_n = max|a - r| / rms(r), over all B*L*H*D elements "
                       "(reference/numerics/tolerance.h compare); r = fp64 SDPA (math) of the same inputs",
        "sdpa_peer": json.dumps(records, separators=(",", ":")),
    }
    if meta["threads"] != "1":
        raise gio.GoldenError(f"not in reference mode: threads={meta['threads']}")
    if meta["torch_cpu_capability"] not in ("AVX2", "AVX512"):
        raise gio.GoldenError(f"torch CPU capability {meta['torch_cpu_capability']}: dump on an AVX2 machine "
                              "(TorchCpuGenerator's Avx2 mode reproduces that randn)")
    return meta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="golden")
    ap.add_argument("--check", default=None, help="recompute and compare with this file instead of writing")
    args = ap.parse_args(argv)
    gio.determinism(SEED_BASE)
    records, tensors = {}, {}
    for L in LENGTHS:
        rec, heads = measure(L)
        records[f"L{L}"] = rec
        tensors[f"qkv.head.L{L}"] = heads
        m, d = rec["fp32_math"], rec["fp32_default"]
        print(f"L {L}: fp32 math rel_rms {m['rel_rms']:.4e} max_n {m['max_n']:.4e}; "
              f"default ({d['backend']}) rel_rms {d['rel_rms']:.4e} max_n {d['max_n']:.4e}", flush=True)
    if args.check:
        with gio.open_golden(args.check) as f:
            stored = json.loads(f.metadata()["sdpa_peer"])
            for k, t in tensors.items():
                if not torch.equal(f.get_tensor(k), t):
                    raise gio.GoldenError(f"{args.check}: {k} differs")
        if stored != records:
            raise gio.GoldenError(f"{args.check}: recorded figures differ from this run")
        print(f"{args.check}: reproduced exactly")
        return
    path = os.path.join(args.out, f"{CASE}.safetensors")
    gio.save(path, tensors, provenance(records))
    print(gio.summarize(path))


if __name__ == "__main__":
    main()

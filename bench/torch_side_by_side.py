#!/usr/bin/env python3
"""PyTorch CPU timings of the shapes bench/bench_dit.cpp times, named like
Google Benchmark rows so bench/side_by_side.sh can pair them.

Runs diffusers' own modules where they exist (ZImageTransformerBlock, its
Attention with ZSingleStreamAttnProcessor, FeedForward, RMSNorm), torch's
F.linear and F.scaled_dot_product_attention (default CPU backend) otherwise:
what a user would run instead of the reference. float32, no grad.

    DIFFUSERS_SRC=... ../shared/golden-env/run python3 bench/torch_side_by_side.py \
        --threads 2 --out torch.json [--filter REGEX] [--min-time 0.5]

Output: {"context": {...}, "benchmarks": [{"name", "run_name", "real_time", "time_unit": "ms"}]}.
"""
import argparse
import json
import re
import time

import torch
import torch.nn.functional as F

C, FF, H, D, A, CAP = 3840, 10240, 30, 128, 256, 2560
SEQ = [(img, cap) for img in (1024, 4096) for cap in (32, 512)]


def timeit(fn, min_time):
    fn()  # warm-up
    times, start = [], time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start >= min_time and len(times) >= 1:
            break
    times.sort()
    return times[len(times) // 2]


def cases():
    from diffusers.models.transformers.transformer_z_image import ZImageTransformerBlock

    g = torch.Generator().manual_seed(0)
    for n in (1056, 4128):
        for k, m in ((C, C), (C, FF), (FF, C)):
            x, w = torch.randn(n, k, generator=g) * 0.05, torch.randn(m, k, generator=g) / k**0.5
            yield f"BM_Linear<float>/N:{n}/K:{k}/M:{m}/real_time", lambda x=x, w=w: F.linear(x, w)
    x, w = torch.randn(512, CAP, generator=g), torch.randn(C, CAP, generator=g) / CAP**0.5
    yield f"BM_Linear<float>/N:512/K:{CAP}/M:{C}/real_time", lambda x=x, w=w: F.linear(x, w)

    block = ZImageTransformerBlock(0, C, H, H, 1e-5, True, modulation=True).eval()
    for img, cap in SEQ:
        L = img + cap
        tag = f"img:{img}/cap:{cap}/real_time"
        q = torch.randn(1, H, L, D, generator=g) * 0.05
        yield f"BM_Sdpa<float>/{tag}", lambda q=q: F.scaled_dot_product_attention(q, q, q)
        x = torch.randn(1, L, C, generator=g) * 0.05
        yield f"BM_RmsNorm<float>/{tag}", lambda x=x: block.attention_norm1(x)
        yield f"BM_FeedForward<float>/{tag}", lambda x=x: block.feed_forward(x)
        angles = torch.rand(1, L, D // 2, generator=g)
        freqs = torch.polar(torch.ones_like(angles), angles)  # complex64 [B, L, D/2], as diffusers' RopeEmbedder gives
        mask = torch.ones(1, L, dtype=torch.bool)
        yield f"BM_Attention<float>/{tag}", lambda x=x, f=freqs, m=mask: block.attention(x, attention_mask=m, freqs_cis=f)
        c = torch.randn(1, A, generator=g)
        yield f"BM_TransformerBlock<float>/{tag}", lambda x=x, f=freqs, m=mask, c=c: block(x, m, f, c)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--filter", default=".")
    ap.add_argument("--min-time", type=float, default=0.5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with torch.no_grad():
        for name, fn in cases():
            if not re.search(args.filter, name):
                continue
            t = timeit(fn, args.min_time)
            rows.append({"name": name, "run_name": name, "run_type": "iteration", "real_time": t * 1e3, "time_unit": "ms"})
            print(f"{name:60s} {t * 1e3:10.2f} ms", flush=True)
    with open("/proc/self/maps") as f:
        blas = sorted({line.split()[-1] for line in f if "blas" in line.lower() and "/" in line})
    ctx = {"library": "torch", "blas_libraries": blas, "torch_version": torch.__version__, "threads": torch.get_num_threads(),
           "mkldnn": torch.backends.mkldnn.is_available(), "config": torch.__config__.show()[:400]}
    with open(args.out, "w") as f:
        json.dump({"context": ctx, "benchmarks": rows}, f, indent=1)


if __name__ == "__main__":
    main()

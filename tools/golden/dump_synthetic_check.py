#!/usr/bin/env python3
"""Writes golden/synthetic_check.safetensors: tensors made by synthetic.py that the
C++ test tests/unit/test_synthetic_crosscheck.cpp regenerates with
zimage::synthetic_fill and compares bit for bit.

Metadata `synthetic_check` holds, per check, the generator call:
{"<check>": {"seed": S, "name": "<hashed name>", "shape": [...], "offset": o, "scale": s}}.
Small checks are stored as tensors named <check>. The large check (> 2^20 elements) is not
stored: its entry adds "fnv1a64": "0x<16 hex digits>", the FNV-1a 64 (offset basis
0xcbf29ce484222325, prime 0x100000001b3, the generator's name hash) of its float32
little-endian bytes in row-major order.

    ../shared/golden-env/run python3 tools/golden/dump_synthetic_check.py [--out golden]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import golden_io as gio  # noqa: E402
from synthetic import fnv1a64_hex as digest, synthetic  # noqa: E402

# (check, seed, hashed name, shape, offset, scale)
CHECKS = [
    ("check.pad_token", 0, "x_pad_token", [1, 64], 0.0, 1.0),
    ("check.linear", 1001, "layers.0.attention.to_q.weight", [64, 64], 0.0, 1.0 / math.sqrt(64)),
    ("check.rmsnorm", 1005, "cap_embedder.0.weight", [2560], 1.0, 0.2),
    ("check.bias_seed_2p63", 2**63, "t_embedder.mlp.0.bias", [1024], 0.0, 0.05),
    ("check.seed_max_utf8", 2**64 - 1, "ünïcode.wëight/κ", [3, 5, 7], -0.5, 3.7e-3),
    ("check.empty_name", 7, "", [100], 0.1, 1.0 / 3.0),
    ("check.offset_dominated", 42, "noise_refiner.1.adaLN_modulation.0.weight", [17, 31], 3.0, 3e-7),
    # > 2^20 elements: crosses the Python chunking and any C++ blocking. Digest only.
    ("check.big", 123456789, "layers.29.feed_forward.w2.weight", [1025, 1024], 0.0, 1.0 / math.sqrt(10240)),
]
# Checks with more elements than this are stored as an fnv1a64 digest instead of a tensor.
DIGEST_ABOVE = 2**20


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="golden")
    args = ap.parse_args(argv)

    tensors, spec, values = {}, {}, {}
    for key, seed, name, shape, offset, scale in CHECKS:
        v = synthetic(seed, name, shape, offset, scale)
        assert v.dtype == np.float32 and list(v.shape) == shape
        values[key] = v
        spec[key] = {"seed": seed, "name": name, "shape": shape, "offset": offset, "scale": scale}
        if v.size > DIGEST_ABOVE:
            spec[key]["fnv1a64"] = digest(v)
        else:
            tensors[key] = v
    assert any(math.prod(s["shape"]) > 2**20 and "fnv1a64" in s for s in spec.values())

    import safetensors
    import torch

    meta = {
        "format": gio.FORMAT,
        "case": "synthetic_check",
        "kind": "synthetic",
        "dtype": "float32",
        "numpy_version": str(np.__version__),
        "torch_version": str(torch.__version__),
        "safetensors_version": str(getattr(safetensors, "__version__", "")),
        "command": " ".join(sys.argv),
        "synthetic_check": json.dumps(spec, ensure_ascii=False, separators=(",", ":")),
        "generator": "docs/goldens.md: synthetic weights (tools/golden/synthetic.py)",
    }
    path = os.path.join(args.out, "synthetic_check.safetensors")
    gio.save(path, tensors, meta)
    print(gio.summarize(path))
    for key, s in spec.items():
        v = values[key].reshape(-1)
        how = f"fnv1a64={s['fnv1a64']} (not stored)" if "fnv1a64" in s else "stored"
        print(f"  {key}: seed={s['seed']} name={s['name']!r} shape={s['shape']} offset={s['offset']!r} "
              f"scale={s['scale']!r} first={v[:2].tolist()} bits0={int(v.view(np.uint32)[0]):#010x} {how}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Splits the synthetic-weight files of golden/models/ into what git keeps (docs/goldens.md,
"Materialized weights").

Every weight file listed in WEIGHTS below was written by diffusers' save_pretrained from a
module whose parameters tools/golden/synthetic.py filled by rule, and the golden next to it
records that rule (its `synthetic_weights` metadata). Its tensor bytes are therefore
recomputable; its header (the safetensors JSON: names, dtypes, shapes, offsets, order,
padding) is not, and is kept verbatim. For each file this writes

    golden/weights/<path>.header.json   the file's header bytes as diffusers wrote them
    golden/weights/MANIFEST.tsv         <path> TAB <golden holding the spec> TAB <bytes>
    golden/weights/SHA256SUMS           sha256sum lines of the files diffusers wrote

(<path> relative to golden/). The build's golden_weights target (tools/golden/golden_weights.cpp)
writes each file back from its header and spec, and checks it against SHA256SUMS: the file a
test reads is then byte for byte the one diffusers wrote.

Run it after the dumpers (tools/golden/regenerate.sh does), on the files they just wrote:

    python3 tools/golden/split_weights.py --golden golden

No third-party module is needed.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import struct
import sys

# (glob of weight files under golden/, the golden whose synthetic_weights made them); the
# repository's .gitignore lists the same files: change both together.
WEIGHTS = [
    ("models/tiny_single/diffusion_pytorch_model.safetensors", "tiny_single.safetensors"),
    ("models/tiny_batch2/diffusion_pytorch_model-*-of-*.safetensors", "tiny_batch2.safetensors"),
    ("models/pipeline_tiny/transformer/diffusion_pytorch_model.safetensors", "pipeline_turbo.safetensors"),
    ("models/vae_tiny/diffusion_pytorch_model.safetensors", "vae_tiny.safetensors"),
    ("models/vae_flux_like/diffusion_pytorch_model-*-of-*.safetensors", "vae_flux_like.safetensors"),
]


def read_header(path: str) -> tuple[bytes, dict, int]:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        raw = f.read(n)
    header = json.loads(raw)
    return raw, header, 8 + n


def spec_of(golden_file: str) -> dict:
    _, header, _ = read_header(golden_file)
    return json.loads(header["__metadata__"]["synthetic_weights"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--golden", default="golden")
    args = ap.parse_args()
    root = args.golden
    out = os.path.join(root, "weights")
    shutil.rmtree(os.path.join(out, "models"), ignore_errors=True)  # no header of a file that is gone
    rows, sums = [], []
    for pattern, spec_golden in WEIGHTS:
        files = sorted(glob.glob(os.path.join(root, pattern)))
        if not files:
            sys.exit(f"split_weights.py: no file matches {pattern} under {root}")
        spec = spec_of(os.path.join(root, spec_golden))["tensors"]
        for path in files:
            rel = os.path.relpath(path, root)
            raw, header, data_start = read_header(path)
            end = 0
            for name, t in header.items():
                if name == "__metadata__":
                    continue
                # Only float32 tensors the spec describes, with its shape, can be written back.
                if t["dtype"] != "F32":
                    sys.exit(f"split_weights.py: {rel}: tensor {name} is {t['dtype']}, not F32")
                if name not in spec or spec[name]["shape"] != t["shape"]:
                    sys.exit(f"split_weights.py: {rel}: tensor {name} {t['shape']} is not in {spec_golden}'s spec")
                end = max(end, t["data_offsets"][1])
            size = os.path.getsize(path)
            if size != data_start + end:
                sys.exit(f"split_weights.py: {rel}: {size} bytes, the header accounts for {data_start + end}")
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            hdr = os.path.join(out, rel + ".header.json")
            os.makedirs(os.path.dirname(hdr), exist_ok=True)
            with open(hdr, "wb") as f:
                f.write(raw)
            rows.append(f"{rel}\t{spec_golden}\t{size}\n")
            sums.append(f"{digest}  {rel}\n")
    with open(os.path.join(out, "MANIFEST.tsv"), "w") as f:
        f.write("# path (under golden/)\tgolden holding its synthetic_weights\tbytes\n")
        f.writelines(rows)
    with open(os.path.join(out, "SHA256SUMS"), "w") as f:
        f.writelines(sums)
    print(f"split_weights.py: {len(rows)} files -> {out}/ (headers, MANIFEST.tsv, SHA256SUMS)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

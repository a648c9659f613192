#!/usr/bin/env python3
"""Thins a shipped golden in place, byte for byte: keeps the tensors a rule keeps,
copies their bytes unchanged, and records the rule in the metadata.

Pure python3 (no torch, numpy or safetensors): a safetensors file is an 8-byte
little-endian header length, a JSON header (dtype, shape, data_offsets per
tensor, plus "__metadata__"), then the raw data. Values stay diffusers' own;
only whole tensors are left out. The dumpers apply the same rules when they
write the golden (dump_dit.py: THIN_RULES), so a regenerated golden equals a
thinned one; this script exists so the shipped files can be thinned without a
rerun and so the result can be checked (--check: every kept tensor's bytes,
dtype and shape equal the original's).

  tools/golden/thin_golden.py golden/tiny_batch2.safetensors --rule later-block-leaves
  tools/golden/thin_golden.py golden/tiny_wide.safetensors --drop-model-dir
"""
from __future__ import annotations

import argparse
import json
import os
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from thin_rules import RULES, drop_by_rule  # noqa: E402


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    return header, meta, data


def tensor_bytes(header, data, name):
    a, b = header[name]["data_offsets"]
    return data[a:b]


def write(path, header, meta, data, keep):
    out_header = {"__metadata__": meta}
    chunks, off = [], 0
    for name in keep:  # keep the original order of the data
        raw = tensor_bytes(header, data, name)
        out_header[name] = {"dtype": header[name]["dtype"], "shape": header[name]["shape"],
                            "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    hjson = json.dumps(out_header, separators=(",", ":")).encode()
    hjson += b" " * (-len(hjson) % 8)  # 8-byte aligned data, as safetensors writes it
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("golden")
    ap.add_argument("--rule", choices=sorted(RULES), help="tensor thinning rule (tools/golden/thin_rules.py)")
    ap.add_argument("--drop-model-dir", action="store_true",
                    help="drop the model_dir metadata: the weights come from the synthetic_weights spec")
    args = ap.parse_args()

    header, meta, data = read(args.golden)
    order = sorted(header, key=lambda n: header[n]["data_offsets"][0])
    keep = order
    if args.rule:
        if meta.get("thinned"):
            sys.exit(f"{args.golden}: already thinned ({meta['thinned']})")
        dropped = set(drop_by_rule(args.rule, order))
        keep = [n for n in order if n not in dropped]
        meta["thinned"] = f"{args.rule}: {RULES[args.rule]} ({len(dropped)} tensors left out)"
        if "modules" in meta:
            kept_paths = {n.split(":", 1)[0] for n in keep}
            meta["modules"] = json.dumps([m for m in json.loads(meta["modules"]) if m in kept_paths],
                                         separators=(",", ":"))
    if args.drop_model_dir:
        if "synthetic_weights" not in meta:
            sys.exit(f"{args.golden}: no synthetic_weights spec; its model_dir cannot be dropped")
        meta.pop("model_dir", None)
    before = os.path.getsize(args.golden)
    write(args.golden, header, meta, data, keep)

    # Check: every kept tensor's bytes, dtype and shape are the original's.
    h2, _, d2 = read(args.golden)
    assert list(h2) == keep, "tensor set differs"
    for n in keep:
        assert h2[n]["dtype"] == header[n]["dtype"] and h2[n]["shape"] == header[n]["shape"], n
        assert tensor_bytes(h2, d2, n) == tensor_bytes(header, data, n), f"{n}: bytes differ"
    print(f"{args.golden}: {len(order)} -> {len(keep)} tensors, {before} -> {os.path.getsize(args.golden)} bytes; "
          "kept tensors byte-identical")


if __name__ == "__main__":
    main()

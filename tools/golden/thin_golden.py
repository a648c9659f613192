#!/usr/bin/env python3
"""Thins a shipped golden in place, byte for byte: keeps the tensors a rule keeps,
copies their bytes unchanged, and records the rule in the metadata.

Pure python3 (no torch, numpy or safetensors): a safetensors file is an 8-byte
little-endian header length, a JSON header (dtype, shape, data_offsets per
tensor, plus "__metadata__"), then the raw data. Values stay diffusers' own;
only whole tensors are left out. The dumpers apply the same rules when they
write the golden (dump_dit.py: THIN_RULES), so a regenerated golden equals a
thinned one; this script exists so the shipped files can be thinned without a
rerun and so the result can be checked (after writing, every kept tensor's bytes,
dtype and shape are checked against the original's).

--dedupe stores each tensor that is byte-identical to another (same dtype, shape
and bytes) once, under the first of its names in sorted order, and lists the
others in the metadata key "zimage_aliases" (thin_rules.dedupe; golden_io.save
does the same when a dumper writes). A file that is already deduplicated stays
so under --rule / --drop-model-dir: aliases are resolved on reading and the kept
tensors deduplicated again on writing.

  tools/golden/thin_golden.py golden/tiny_batch2.safetensors --rule later-block-leaves
  tools/golden/thin_golden.py golden/tiny_wide.safetensors --drop-model-dir
  tools/golden/thin_golden.py golden/tiny_single.safetensors --dedupe
"""
from __future__ import annotations

import argparse
import json
import os
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from thin_rules import ALIASES_KEY, DEDUPED_KEY, RULES, dedupe, dedupe_metadata, drop_by_rule  # noqa: E402


def read(path):
    """(header, meta, data) with aliases resolved: an alias's header entry is a copy of
    its stored tensor's (same data_offsets); meta lacks ALIASES_KEY."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    aliases = json.loads(meta.pop(ALIASES_KEY, "{}"))
    for alias, stored in aliases.items():
        if alias in header or stored not in header:
            sys.exit(f"{path}: bad {ALIASES_KEY} entry {alias!r} -> {stored!r}")
        header[alias] = dict(header[stored])
    return header, meta, data


def tensor_bytes(header, data, name):
    a, b = header[name]["data_offsets"]
    return data[a:b]


def write(path, header, meta, data, keep, deduplicate=False):
    """Writes the tensors `keep` (in that order); with deduplicate, byte-identical
    ones are stored once and the rest listed in meta[ALIASES_KEY]."""
    meta = {k: v for k, v in meta.items() if k not in (ALIASES_KEY, DEDUPED_KEY)}
    aliases = {}
    if deduplicate:
        aliases = dedupe({n: (header[n]["dtype"], header[n]["shape"], tensor_bytes(header, data, n)) for n in keep})
        saved = sum(len(tensor_bytes(header, data, n)) for n in aliases)
        meta.update(dedupe_metadata(aliases, saved))
    out_header = {"__metadata__": meta}
    chunks, off = [], 0
    for name in keep:  # keep the original order of the data
        if name in aliases:
            continue
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
    ap.add_argument("--dedupe", action="store_true",
                    help="store byte-identical tensors once (the others become zimage_aliases entries)")
    args = ap.parse_args()

    header, meta, data = read(args.golden)
    deduplicated = DEDUPED_KEY in meta
    if args.dedupe and deduplicated:
        sys.exit(f"{args.golden}: already deduplicated ({meta[DEDUPED_KEY]})")
    order = sorted(header, key=lambda n: (header[n]["data_offsets"][0], n))
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
    write(args.golden, header, meta, data, keep, deduplicate=args.dedupe or deduplicated)

    # Check: every kept tensor's bytes, dtype and shape are the original's (aliases resolved).
    h2, m2, d2 = read(args.golden)
    assert sorted(h2) == sorted(keep), "tensor set differs"
    assert {k: v for k, v in m2.items() if k != DEDUPED_KEY} == \
        {k: v for k, v in meta.items() if k != DEDUPED_KEY}, "metadata differs"
    for n in keep:
        assert h2[n]["dtype"] == header[n]["dtype"] and h2[n]["shape"] == header[n]["shape"], n
        assert tensor_bytes(h2, d2, n) == tensor_bytes(header, data, n), f"{n}: bytes differ"
    stored = len(keep) - len(json.loads(_raw_meta(args.golden).get(ALIASES_KEY, "{}")))
    print(f"{args.golden}: {len(order)} -> {len(keep)} tensors ({stored} stored), {before} -> "
          f"{os.path.getsize(args.golden)} bytes; kept tensors byte-identical")


def _raw_meta(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)).get("__metadata__", {})


if __name__ == "__main__":
    main()

"""Tensor thinning rules shared by the dumpers (dump_dit.py) and thin_golden.py,
and the deduplication every golden gets when written (golden_io.save, thin_golden.py).

A rule names the captures a golden leaves out; the golden's metadata key
"thinned" names the rule. Every rule keeps at least one case of each kind of
module the golden covers (docs/goldens.md, "Thinned goldens").

Deduplication: a tensor byte-identical to another (same dtype, shape and bytes;
the dumpers record a module's input and the previous module's output, the same
tensor) is stored once, under the first of its names in sorted order; the others
are listed in the metadata key "zimage_aliases" ({"alias": "stored name"}), which
every reader resolves (reference/io/safetensors.h, golden_io.open_golden).
"""
from __future__ import annotations

import hashlib
import json
import re

ALIASES_KEY = "zimage_aliases"
DEDUPED_KEY = "deduplicated"

# later-block-leaves: the sub-module captures (outputs and `:in.*` inputs) inside
# layers.N / noise_refiner.N / context_refiner.N for N >= 1. Block 0 keeps every
# leaf, and every block keeps its own whole-block capture (`layers.1`,
# `layers.1:in.*`), so each kind of module still has a case in the golden.
_LATER_LEAF = re.compile(r"^(layers|noise_refiner|context_refiner)\.[1-9][0-9]*\.")

# middle-blocks: the whole-block captures (outputs and `:in.*` inputs) of layers.N for
# 1 < N < last. layers.0, layers.1 and the last layer keep theirs; the whole-model
# sample (which runs through every layer) is kept, so depth is still covered end to end.
_LAYER = re.compile(r"^layers\.([0-9]+)(\.|$)")

RULES = {
    "later-block-leaves": "sub-module captures inside layers.N, noise_refiner.N, context_refiner.N for N >= 1 "
                          "(block 0 keeps every leaf; every block keeps its whole-block capture)",
    "middle-blocks": "captures of layers.N for 1 < N < last (layers.0, layers.1 and the last layer keep theirs; "
                     "sample.* runs through every layer)",
}


def _last_layer(names) -> int:
    idx = [int(m.group(1)) for m in (_LAYER.match(n.split(":", 1)[0]) for n in names) if m]
    return max(idx) if idx else -1


def keep_capture(rule: str, name: str, last_layer: int = -1) -> bool:
    path = name.split(":", 1)[0]
    if rule == "later-block-leaves":
        return not _LATER_LEAF.match(path)
    if rule == "middle-blocks":
        m = _LAYER.match(path)
        return not m or int(m.group(1)) in (0, 1, last_layer)
    raise ValueError(f"unknown thinning rule {rule!r}")


def drop_by_rule(rule: str, names) -> list[str]:
    names = list(names)
    last = _last_layer(names)
    return [n for n in names if not keep_capture(rule, n, last)]


def dedupe(entries) -> dict:
    """entries: {name: (dtype, shape, raw bytes)}. Returns {alias: stored}: every tensor
    byte-identical (dtype, shape, bytes) to one earlier in sorted name order is an
    alias of the first such name, which stays stored."""
    first = {}
    aliases = {}
    for name in sorted(entries):
        dtype, shape, raw = entries[name]
        key = (dtype, tuple(shape), len(raw), hashlib.sha256(raw).digest())
        stored = first.setdefault(key, name)
        if stored != name:
            if entries[stored][2] != raw:  # (a sha256 collision: never expected)
                raise ValueError(f"{name} and {stored}: equal sha256, different bytes")
            aliases[name] = stored
    return aliases


def dedupe_metadata(aliases: dict, saved_bytes: int) -> dict:
    """The metadata a deduplicated golden carries (empty when nothing was deduplicated)."""
    if not aliases:
        return {}
    return {ALIASES_KEY: json.dumps(aliases, sort_keys=True, separators=(",", ":")),
            DEDUPED_KEY: f"{len(aliases)} tensors byte-identical (dtype, shape, bytes) to a stored one are "
                         f"{ALIASES_KEY} entries ({saved_bytes} bytes not stored twice)"}

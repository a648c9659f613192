"""Tensor thinning rules shared by the dumpers (dump_dit.py) and thin_golden.py.

A rule names the captures a golden leaves out; the golden's metadata key
"thinned" names the rule. Every rule keeps at least one case of each kind of
module the golden covers (docs/goldens.md, "Thinned goldens").
"""
from __future__ import annotations

import re

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

#!/usr/bin/env python3
"""Which code points the tokenizers library's NFC knows: it normalizes with the crate
unicode-normalization-alignments 0.1.12, whose tables are Unicode 9.0, while Python's
unicodedata (and the C++ tables before this probe) are Unicode 16. Normalization data of an
assigned character never changes (Unicode's stability policy), so tokenizers' tables are
Python's restricted to the characters it knows; a later character is, to it, unassigned:
combining class 0, no decomposition, no composition. This prints, one per line, the code
points that carry NFC data in Python's unicodedata but that tokenizers' NFC ignores, found
black-box with tokenizers itself (run in the golden env):

    ../shared/golden-env/run python3 -B tools/text_encoder/probe_tokenizers_nfc.py \\
        > tools/text_encoder/nfc_unknown_to_tokenizers.txt

A mark is known when tokenizers reorders it against a mark of a higher class placed before it;
a decomposable character is known when tokenizers' NFD decomposes it."""
import sys
import unicodedata as ud

import tokenizers
from tokenizers import normalizers

nfc, nfd = normalizers.NFC(), normalizers.NFD()
unknown = []
for cp in range(0x110000):
    if 0xD800 <= cp <= 0xDFFF:
        continue
    c = chr(cp)
    k = ud.combining(c)
    canonical = ud.decomposition(c) and not ud.decomposition(c).startswith("<")
    if canonical and not (0xAC00 <= cp <= 0xD7A3):
        if nfd.normalize_str(c) == c:
            unknown.append(cp)
    elif k:
        if k >= 240:
            continue  # U+0345 only (Unicode 1.1): nothing sorts after it
        mark = "\u0345" if k >= 230 else "\u0301"
        out = nfd.normalize_str("q" + mark + c)
        if out.index(c) > out.index(mark):  # not reordered: tokenizers sees class 0
            unknown.append(cp)
print(f"# code points with NFC data in Python unicodedata {ud.unidata_version} that tokenizers {tokenizers.__version__}'s NFC ignores",)
for cp in unknown:
    print(f"{cp:04X} {ud.name(chr(cp), '?')}")
print(f"# {len(unknown)} code points", file=sys.stderr)

#!/usr/bin/env python3
"""A large tokenizer corpus for Qwen3TokenizerReal.FuzzCorpusFromEnvironment: every code point
in runs of 48 (cycling separators) and 4000 seeded random mixtures, with the ids of the tokenizers
library (golden env). Not committed (about 3 MB); regenerate and replay:

    ../shared/golden-env/run python3 -B tools/text_encoder/dump_qwen3_fuzz.py \
        build-cpu/qwen3_tokenizer/package/models/tokenizer.json build-cpu/fuzz.json
    ZIMAGE_QWEN3_FUZZ=build-cpu/fuzz.json build-cpu/bin/test_qwen3_tokenizer_real --gtest_filter=*Fuzz*
"""
import json, random, sys, unicodedata
from tokenizers import Tokenizer
tk = Tokenizer.from_file(sys.argv[1])
rnd = random.Random(19)
texts = []
cps = [cp for cp in range(0x20, 0x323B0) if not (0xD800 <= cp < 0xE000)]
seps = [" ", "", "\n", "  ", "\t", "a", "1", "'s ", "!"]
for i in range(0, len(cps), 48):
    chunk = cps[i:i+48]
    sep = seps[(i // 48) % len(seps)]
    texts.append(sep.join(chr(c) for c in chunk))
pool = [chr(c) for c in cps if unicodedata.category(chr(c))[0] in "LMNPSZC"] 
special = [" ", "  ", "\n", "\r\n", "\t", "\u00a0", "\u3000", "'", "'S", "'ll", "<|im_start|>", "</think>", "\u200d", "\ufe0f", "\U0001F3FD", "\u0301", "1", "22"]
for i in range(4000):
    n = rnd.randint(1, 30)
    s = "".join(rnd.choice(special) if rnd.random() < 0.3 else rnd.choice(pool) for _ in range(n))
    texts.append(s)
out = [{"text": t, "ids": tk.encode(t, add_special_tokens=False).ids} for t in texts]
json.dump(out, open(sys.argv[2], "w"), ensure_ascii=False)
print(len(out))

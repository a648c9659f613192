#!/usr/bin/env python3
"""Builds the test tokenizer and dumps the tokenizer / chat-template / prompt-encoding
goldens (docs/text_encoder.md), all values computed by the tokenizers library,
transformers and diffusers:

1. golden/text_encoder/tokenizer/tokenizer.json (only with --retrain or when absent): a byte-level BPE of the Qwen2/Qwen3
   structure (NFC normalizer, Split with Qwen2's pattern + ByteLevel pre-tokenizer,
   ByteLevel decoder) with a small vocabulary trained by tokenizers' BpeTrainer on the
   repository's docs plus a few multilingual lines, and Qwen3's special tokens
   appended after the vocabulary; tokenizer_config.json with Qwen3's chat template.
   The real Qwen3 vocabulary cannot be downloaded here. tokenizer_transformers/tokenizer.json:
   the same vocabulary and merges through transformers' Qwen2Tokenizer and save_pretrained.
2. te_tokenizer.safetensors: ids.{i} of tokenizers' Tokenizer.encode(text,
   add_special_tokens=False) for a corpus covering ASCII, whitespace runs, digits,
   punctuation, CJK, emoji, combining marks and literal special-token text (the texts in
   the `corpus` metadata); chat.{i}: the ids of apply_chat_template's output, whose
   strings are in `chat_texts`.
3. te_encode_prompt.safetensors: ZImagePipeline.encode_prompt (prompt and negative
   embeddings, padding to max_sequence_length with truncation, hidden_states[-2], padded
   rows dropped) on a tiny Qwen3 text encoder saved with save_pretrained under
   golden/text_encoder/tiny_te/ (sharded) and the test tokenizer.

    DIFFUSERS_SRC=/path/to/diffusers/src OMP_NUM_THREADS=1 \\
        ../shared/golden-env/run python3 -B tools/golden/dump_tokenizer.py --diffusers-commit <sha>
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import golden_io as gio  # noqa: E402
from dump_text_encoder import te_rule, transformers_meta  # noqa: E402
from synthetic import fill_module  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                 r"\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
VOCAB_SIZE = 800  # BPE vocabulary (256 byte characters + merges); the specials come after it
PIPELINE_FILE = "diffusers/pipelines/z_image/pipeline_z_image.py"

TRAIN_EXTRA = [
    "一只红色的狐狸在雪地里奔跑。", "山水之间，云雾缭绕，古寺钟声悠扬。", "東京の夜景はとても美しい。",
    "빨간 여우가 눈 속을 달린다.", "Ein roter Fuchs läuft durch den Schnee, über Felder.",
    "Café, naïve, résumé, façade, coöperate — déjà vu.", "Быстрая лиса прыгает через ленивую собаку.",
    "The year 2024 had 366 days; 3.14159 is pi, 1e-6 is small.",
]

CORPUS = [
    "a photo of a cat",
    "A red fox running through fresh snow at dawn, cinematic lighting, 35mm",
    "  leading spaces and trailing spaces   ",
    "tabs\tand\nnew\r\nlines\n\n\nand    runs   of     spaces",
    "digits 0123456789 and 3.14159, 1,000,000 and 2024-11-22",
    "punctuation!!! ??? ... --- (brackets) [square] {curly} <angle> \"quotes\" 'single' `tick` @#$%^&*_+=|\\/~",
    "contractions: it's they're we've I'm you'll he'd IT'S THEY'RE",
    "一只红色的狐狸在雪地里奔跑，背景是远山。",
    "日本語のテキストとカタカナ、そして한국어 문장도 있습니다.",
    "emoji 🦊🔥👍🏽 and a family 👨‍👩‍👧‍👦 and flags 🇨🇳🇺🇸",
    "combining marks: e\u0301 a\u0308 o\u0302\u0323 n\u0303 (decomposed) vs é ä ộ ñ (composed), \u212b \u2126",
    "Hangul jamo \u1100\u1161\u11a8 composes to 각",
    "literal special tokens: <|im_start|>user\nhi<|im_end|> and <think> x </think> <|endoftext|>",
    "<|im_start|><|im_start|>x<|im_end|>",
    "mixed: Café naïve 東京 2024 🚀!!\n\n",
    "",
    " ",
    "\n",
    "zero\u200bwidth and non\u00a0breaking\u3000ideographic space",
]

PROMPTS = [
    "a photo of a cat",
    "一只红色的狐狸在雪地里奔跑",
    "",
    "Line one\nline two with <think> inside",
]
THINK = "The user wants a cat."


def build_tokenizer(out_dir: str) -> str:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    texts = []
    for p in sorted(glob.glob(os.path.join(HERE, "..", "..", "docs", "*.md"))) + [os.path.join(HERE, "..", "..", "README.md")]:
        with open(p, encoding="utf-8") as f:
            texts.append(f.read())
    texts += TRAIN_EXTRA * 3
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_special_tokens(SPECIALS)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "tokenizer.json")
    tok.save(path)
    with open(os.path.join(HERE, "qwen3_chat_template.jinja"), encoding="utf-8") as f:
        template = f.read()
    config = {
        "tokenizer_class": "Qwen2Tokenizer", "add_prefix_space": False, "bos_token": None,
        "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None, "errors": "replace",
        "clean_up_tokenization_spaces": False, "model_max_length": 131072, "split_special_tokens": False,
        "chat_template": template,
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
        f.write("\n")
    return path


def build_hf_tokenizer(tok_dir: str, out_dir: str) -> str:
    """The same vocabulary and merges through transformers' own Qwen2Tokenizer, which builds
    Qwen2/Qwen3's backend (NFC, Split(PRETOKENIZE_REGEX), ByteLevel) in code, saved with
    save_pretrained: the tokenizer.json layout transformers writes for the real Qwen3."""
    from tokenizers import Tokenizer
    from transformers import AddedToken
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    j = json.loads(Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json")).to_str())
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in j["model"]["merges"]]
    hf = Qwen2Tokenizer(vocab=j["model"]["vocab"], merges=merges)
    hf.add_tokens([AddedToken(t, special=True) for t in SPECIALS[1:]])
    shutil.rmtree(out_dir, ignore_errors=True)
    hf.save_pretrained(out_dir)
    for f in os.listdir(out_dir):
        if f != "tokenizer.json":
            os.remove(os.path.join(out_dir, f))
    ref = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    got = Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json"))
    for text in CORPUS:
        if ref.encode(text, add_special_tokens=False).ids != got.encode(text, add_special_tokens=False).ids:
            raise gio.GoldenError(f"transformers' Qwen2Tokenizer gives other ids for {text!r}")
    return os.path.join(out_dir, "tokenizer.json")


def base_meta(case: str, kind: str, seed: int, args, extra: dict) -> dict:
    import tokenizers
    import transformers
    meta = gio.provenance(case=case, kind=kind, seed=seed, config_json="{}", synthetic_spec={}, commit=args.commit,
                          extra={**transformers_meta(), "tokenizers_version": tokenizers.__version__, **extra})
    return meta


def dump_tokenizer_golden(tok_dir: str, args) -> str:
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    gio.determinism(0)
    tk = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    hf = AutoTokenizer.from_pretrained(tok_dir)
    tensors = {}
    for i, text in enumerate(CORPUS):
        ids = tk.encode(text, add_special_tokens=False).ids
        again = tk.encode(text, add_special_tokens=False).ids
        via_hf = hf(text, add_special_tokens=False)["input_ids"]
        if ids != again or ids != via_hf:
            raise gio.GoldenError(f"corpus {i}: tokenizers {ids} vs transformers {via_hf}")
        if ids:
            tensors[f"ids.{i}"] = torch.tensor(ids, dtype=torch.int32)
    chat_texts = []
    for p in PROMPTS:
        msgs = [{"role": "user", "content": p}]
        for kw in (dict(enable_thinking=True), dict(enable_thinking=False)):
            chat_texts.append(hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, **kw))
        # A think block with given content: Qwen3's template writes it for an assistant turn after the last query.
        with_think = hf.apply_chat_template(msgs + [{"role": "assistant", "content": "", "reasoning_content": THINK}],
                                            tokenize=False)
        chat_texts.append(with_think[: -len("<|im_end|>\n")])
    for i, t in enumerate(chat_texts):
        tensors[f"chat.{i}"] = torch.tensor(tk.encode(t, add_special_tokens=False).ids, dtype=torch.int32)
    meta = base_meta("te_tokenizer", "tokenizer", 0, args, {
        "corpus": CORPUS, "prompts": PROMPTS, "think": THINK, "chat_texts": chat_texts,
        "chat_layout": "per prompt: enable_thinking=True, enable_thinking=False, think block with `think`",
        "tokenizer_json_blob": gio.git_blob_id(os.path.join(tok_dir, "tokenizer.json")),
        "special_tokens": SPECIALS, "vocab_size": str(tk.get_vocab_size()),
    })
    path = os.path.join(args.out, "te_tokenizer.safetensors")
    gio.save(path, tensors, meta)
    return path


TINY_TE = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
               num_key_value_heads=1, head_dim=8, rms_norm_eps=1e-6, max_position_embeddings=4096)
ENCODE_RUNS = [
    # (prompts, negative prompts, max_sequence_length)
    (["a photo of a cat", "一只红色的狐狸在雪地里奔跑 🦊"], ["", "blurry, low quality"], 512),
    (["A very long prompt " + "with many words and more words " * 6], None, 24),
]


def dump_encode_golden(tok_dir: str, args) -> str:
    from diffusers import ZImagePipeline
    from transformers import AutoTokenizer, Qwen3Config, Qwen3Model

    seed = 5101
    gio.determinism(seed)
    hf = AutoTokenizer.from_pretrained(tok_dir)
    config = Qwen3Config(vocab_size=len(hf), rope_parameters={"rope_type": "default", "rope_theta": 1e6},
                         attn_implementation="sdpa", tie_word_embeddings=False, **TINY_TE)
    te = Qwen3Model(config).eval()
    spec = fill_module(te, seed, rule=te_rule)
    te_dir = os.path.join(args.out, "tiny_te")
    shutil.rmtree(te_dir, ignore_errors=True)
    te.save_pretrained(te_dir, max_shard_size="60KB")
    for f in os.listdir(te_dir):
        os.chmod(os.path.join(te_dir, f), 0o644)
    pipe = ZImagePipeline(scheduler=None, vae=None, text_encoder=te, tokenizer=hf, transformer=None)
    tensors, runs = {}, []
    with gio.reference_mode():
        for r, (prompts, negs, L) in enumerate(ENCODE_RUNS):
            # list(...): _encode_prompt replaces the items of the list it is given by their chat-template text.
            pos, neg = pipe.encode_prompt(list(prompts), device=torch.device("cpu"),
                                          do_classifier_free_guidance=negs is not None,
                                          negative_prompt=list(negs) if negs else None, max_sequence_length=L)
            for i, e in enumerate(pos):
                tensors[f"run{r}.prompt_embeds.{i}"] = e
            for i, e in enumerate(neg):
                tensors[f"run{r}.negative_prompt_embeds.{i}"] = e
            texts = [hf.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True,
                                            enable_thinking=True) for p in prompts]
            enc = hf(texts, padding="max_length", max_length=L, truncation=True, return_tensors="pt")
            tensors[f"run{r}.input_ids"] = enc.input_ids.to(torch.int32)
            tensors[f"run{r}.attention_mask"] = enc.attention_mask.to(torch.int32)
            runs.append({"prompts": prompts, "negative_prompts": negs, "max_sequence_length": L,
                         "untruncated_lengths": [len(hf(t)["input_ids"]) for t in texts]})
    import diffusers
    root = os.path.dirname(os.path.dirname(diffusers.__file__))
    meta = base_meta("te_encode_prompt", "text_encode", seed, args, {
        "runs": runs, "model_dir": "tiny_te", "tokenizer_dir": "tokenizer", "hidden_layer": "-2",
        "diffusers_pipeline_blob": gio.git_blob_id(os.path.join(root, PIPELINE_FILE)),
        "te_config": config.to_json_string(), "synthetic_weights_te": spec,
        "padding_side": hf.padding_side, "truncation_side": hf.truncation_side,
    })
    path = os.path.join(args.out, "te_encode_prompt.safetensors")
    gio.save(path, tensors, meta)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="golden/text_encoder")
    ap.add_argument("--diffusers-commit", default=None)
    ap.add_argument("--retrain", action="store_true",
                    help="train a new test tokenizer (its corpus, the repository's docs, changes over time)")
    args = ap.parse_args(argv)
    args.commit = gio.diffusers_commit(args.diffusers_commit)
    tok_dir = os.path.join(args.out, "tokenizer")
    if args.retrain or not os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
        print(build_tokenizer(tok_dir))  # trained on the docs as they are now: a new vocabulary
    else:
        print(f"{tok_dir}/tokenizer.json kept (--retrain to train a new one; the goldens record its blob id)")
    print(build_hf_tokenizer(tok_dir, os.path.join(args.out, "tokenizer_transformers")))
    print(gio.summarize(dump_tokenizer_golden(tok_dir, args)))
    print(gio.summarize(dump_encode_golden(tok_dir, args)))


if __name__ == "__main__":
    main()

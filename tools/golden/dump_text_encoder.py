#!/usr/bin/env python3
"""Dumps Qwen3 text-encoder goldens from real transformers (docs/text_encoder.md,
zimage-golden-v1, kind text_encoder) into golden/text_encoder/.

Every golden value is computed by transformers / torch: this script builds
transformers' Qwen3Model from a config, fills its parameters with the
counter-based synthetic generator (synthetic.py), feeds seeded token ids with
left or right padding, and records what the modules receive and return through
forward (pre-)hooks, plus every entry of output_hidden_states.

    DIFFUSERS_SRC=/path/to/diffusers/src OMP_NUM_THREADS=1 \\
        ../shared/golden-env/run python3 -B tools/golden/dump_text_encoder.py \\
        --diffusers-commit <sha> [--case NAME ...] [--out golden/text_encoder]

Cases: te_tiny_left (KV-group ratio 4, batch 3, left padding, every module
hooked), te_tiny_right (same config, right padding, layer outputs only),
te_real_layer (Qwen3-4B's layer sizes, one layer, synthetic weights).
"""

from __future__ import annotations

import argparse
import glob
import inspect
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import golden_io as gio  # noqa: E402
from synthetic import fill_module  # noqa: E402

QWEN3_FILE = "models/qwen3/modeling_qwen3.py"  # relative to the transformers package

# Tiny Qwen3: KV-group ratio 4 (8 query heads on 2 KV heads), head_dim 16 != hidden / heads.
TINY = dict(vocab_size=300, hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=8,
            num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6, rope_theta=1e6, max_position_embeddings=4096)
# Qwen3-4B's layer (docs/zimage-facts.md); one layer, a small vocabulary (the embedding is not what is tested).
REAL = dict(vocab_size=512, hidden_size=2560, intermediate_size=9728, num_hidden_layers=1, num_attention_heads=32,
            num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-6, rope_theta=1e6, max_position_embeddings=40960)

CASES = {
    # lengths: real tokens per item; the batch is padded to the longest on `side`.
    "te_tiny_left": dict(seed=5001, config=TINY, lengths=[12, 7, 3], side="left", hooks="all"),
    "te_tiny_right": dict(seed=5002, config=TINY, lengths=[5, 11, 9], side="right", hooks="layers"),
    "te_real_layer": dict(seed=5003, config=REAL, lengths=[7, 4], side="left", hooks="real"),
}
# te_real_layer: the leaf Linears' outputs are left out (q_norm / k_norm inputs, the
# attention and mlp outputs cover them); the mlp's [B, L, 9728] intermediates too.
REAL_HOOKS = ("layers.0", "layers.0.input_layernorm", "layers.0.self_attn", "layers.0.self_attn.q_norm",
              "layers.0.self_attn.k_norm", "layers.0.post_attention_layernorm", "layers.0.mlp", "norm")


def te_rule(name: str, shape, module_type: str):
    """(offset, scale) per parameter: embeddings U(+-1), RMSNorm weights 1 + U(+-0.2),
    Linear weights U(+-1/sqrt(fan_in)), biases U(+-0.05)."""
    leaf = name.rsplit(".", 1)[-1]
    if module_type == "Embedding":
        return 0.0, 1.0
    if module_type == "Qwen3RMSNorm":
        return 1.0, 0.2
    if module_type == "Linear" and leaf == "weight":
        return 0.0, 1.0 / math.sqrt(int(shape[1]))
    if module_type == "Linear" and leaf == "bias":
        return 0.0, 0.05
    raise ValueError(f"text-encoder synthetic rule: no rule for {name} {list(shape)} of {module_type}")


def transformers_meta() -> dict:
    import transformers

    root = os.path.dirname(transformers.__file__)
    return {"transformers_version": str(transformers.__version__),
            "transformers_qwen3_blob": gio.git_blob_id(os.path.join(root, QWEN3_FILE)),
            "transformers_qwen3_file": "transformers/" + QWEN3_FILE}


def build_model(cfg: dict, seed: int):
    from transformers import Qwen3Config, Qwen3Model

    c = dict(cfg)
    theta = c.pop("rope_theta")
    config = Qwen3Config(**c, rope_parameters={"rope_type": "default", "rope_theta": theta},
                         attn_implementation="sdpa", tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = Qwen3Model(config).eval()
    spec = fill_module(model, seed, rule=te_rule)
    if model.config._attn_implementation != "sdpa":
        raise gio.GoldenError(f"attention implementation {model.config._attn_implementation}, expected sdpa")
    return model, spec


def make_batch(lengths, side: str, vocab: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    L = max(lengths)
    ids = torch.zeros(len(lengths), L, dtype=torch.int64)
    mask = torch.zeros(len(lengths), L, dtype=torch.int64)
    pad_id = vocab - 1  # what a tokenizer would put there; masked anyway
    for b, n in enumerate(lengths):
        real = torch.randint(0, vocab - 1, (n,), generator=g)
        row = torch.full((L,), pad_id, dtype=torch.int64)
        if side == "left":
            row[L - n:] = real
            mask[b, L - n:] = 1
        else:
            row[:n] = real
            mask[b, :n] = 1
        ids[b] = row
    return ids, mask


class Recorder(dict):
    def put(self, name, value):
        if name in self:
            raise gio.GoldenError(f"{name} captured twice")
        self[name] = value.detach().clone()


INPUT_ARGS = ("hidden_states", "x", "input")


def hook(model: nn.Module, paths, rec: Recorder, with_inputs=True):
    mods = dict(model.named_modules())
    handles = []
    for p in paths:
        mod = mods[p]
        sig = inspect.signature(mod.forward)

        def pre(m, args, kwargs, p=p, sig=sig):
            bound = sig.bind(*args, **kwargs)
            for arg in INPUT_ARGS:
                if arg in bound.arguments and isinstance(bound.arguments[arg], torch.Tensor):
                    rec.put(f"{p}:in.{arg}", bound.arguments[arg])

        def post(m, args, out, p=p):
            if isinstance(out, tuple):  # Qwen3Attention returns (attn_output, attn_weights)
                out = out[0]
            rec.put(p, out)

        if with_inputs:
            handles.append(mod.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(mod.register_forward_hook(post))
    return handles


def hook_paths(model, which: str):
    names = [n for n, m in model.named_modules()
             if n and not isinstance(m, (nn.ModuleList, nn.SiLU)) and type(m).__name__ not in ("Qwen3RotaryEmbedding",)
             and not n.endswith("act_fn")]
    if which == "all":
        return names, True
    if which == "layers":
        return [n for n in names if n.count(".") == 1 and n.startswith("layers.")] + ["norm"], True
    return list(REAL_HOOKS), True


def run_case(name: str, case: dict, args) -> str:
    gio.determinism(case["seed"])
    model, spec = build_model(case["config"], case["seed"])
    ids, mask = make_batch(case["lengths"], case["side"], case["config"]["vocab_size"], case["seed"] + 1)
    rec = Recorder()
    paths, with_inputs = hook_paths(model, case["hooks"])
    handles = hook(model, paths, rec, with_inputs)
    with gio.reference_mode():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        cos, sin = model.rotary_emb(torch.zeros(1, dtype=torch.float32), torch.arange(ids.shape[1])[None])
    for h in handles:
        h.remove()
    n = case["config"]["num_hidden_layers"]
    hs = out.hidden_states
    if len(hs) != n + 1:
        raise gio.GoldenError(f"{name}: {len(hs)} hidden_states for {n} layers")
    # The indexing this golden pins down: [-1] is the final norm's output, [-2] the output of layer n-2.
    if not torch.equal(hs[-1], out.last_hidden_state) or not torch.equal(hs[-1], rec["norm"]):
        raise gio.GoldenError(f"{name}: hidden_states[-1] is not the final norm's output")
    if n >= 2 and "layers.%d" % (n - 2) in rec and not torch.equal(hs[-2], rec["layers.%d" % (n - 2)]):
        raise gio.GoldenError(f"{name}: hidden_states[-2] is not layers.{n - 2}'s output")
    tensors = dict(rec)
    for k, t in enumerate(hs):
        tensors[f"hidden_states.{k}"] = t
    tensors["input_ids"] = ids.to(torch.int32)
    tensors["attention_mask"] = mask.to(torch.int32)
    tensors["rotary_emb.cos"] = cos[0]
    tensors["rotary_emb.sin"] = sin[0]
    for k in list(tensors):
        if tensors[k].is_floating_point() and not bool(torch.isfinite(tensors[k]).all()):
            raise gio.GoldenError(f"{name}: {k} holds NaN/Inf (fully masked rows?)")
    # Inputs equal to another stored tensor (a layer's input is its input_layernorm's, the
    # input_layernorm's output is self_attn's input, ...) are stored once: "input_aliases"
    # maps the left-out name to the stored one, bit-identical (torch.equal).
    aliases = {}
    kept = [k for k in tensors if ":in." not in k]
    for k in sorted(k for k in tensors if ":in." in k):
        twin = next((o for o in kept if tensors[o].shape == tensors[k].shape and torch.equal(tensors[o], tensors[k])), None)
        if twin is None:
            kept.append(k)
        else:
            aliases[k] = twin
    for k in aliases:
        del tensors[k]
    meta = gio.provenance(case=name, kind="text_encoder", seed=case["seed"], config_json=model.config.to_json_string(),
                          synthetic_spec=spec, commit=args.commit,
                          extra={**transformers_meta(), "padding_side": case["side"], "lengths": case["lengths"],
                                 "attn_implementation": "sdpa", "hooks": case["hooks"],
                                 "input_aliases": aliases})
    path = os.path.join(args.out, name + ".safetensors")
    gio.save(path, tensors, meta)
    return path


TE_KEYS = ["format", "case", "kind", "transformers_version", "transformers_qwen3_blob", "torch_version", "dtype",
           "seed", "config", "synthetic_weights", "command", "threads", "tf32", "attention_backend", "device",
           "diffusers_commit"]


def verify(folder: str) -> None:
    """Loads every golden under `folder` back and checks it: format and kind, provenance keys, the
    recorded modeling_qwen3.py blob against the installed transformers, every tensor finite and not
    constant, input_aliases naming stored tensors, the test tokenizer's blob, and the shipped tiny_te
    weights against their synthetic regeneration."""
    from synthetic import fnv1a64_hex, synthetic

    installed = transformers_meta()["transformers_qwen3_blob"]
    for path in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
        with gio.open_golden(path) as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        kind = meta.get("kind")
        if meta.get("format") != gio.FORMAT or kind not in ("text_encoder", "tokenizer", "text_encode",
                                                                     "tokenizer_real", "text_knobs", "text_encoder_bf16"):
            raise gio.GoldenError(f"{path}: format {meta.get('format')!r} kind {kind!r}")
        for k in TE_KEYS:
            if k not in meta and not (kind == "text_encoder_bf16" and k == "synthetic_weights"):
                raise gio.GoldenError(f"{path}: metadata lacks {k}")
        if kind == "text_encoder_bf16":  # dump_text_encoder_bf16.py: pairs with its fp32 golden
            with gio.open_golden(os.path.join(folder, meta["fp32_golden"])) as f32:
                m32 = f32.metadata()
                for k, want in json.loads(meta["inputs_fnv1a64"]).items():
                    if fnv1a64_hex(f32.get_tensor(k), "<i4") != want:
                        raise gio.GoldenError(f"{path}: input {k} digest {want} is not {meta['fp32_golden']}'s")
            for k in ("seed", "config", "transformers_qwen3_blob", "diffusers_commit"):
                if meta[k] != m32[k]:
                    raise gio.GoldenError(f"{path}: {k} differs from {meta['fp32_golden']}'s")
            for k, t in tensors.items():
                if not torch.equal(t, t.to(torch.bfloat16).float()):
                    raise gio.GoldenError(f"{path}: {k} holds values that are not bfloat16 numbers")
        if meta["transformers_qwen3_blob"] != installed:
            raise gio.GoldenError(f"{path}: made with another modeling_qwen3.py ({meta['transformers_qwen3_blob']})")
        for k, t in tensors.items():
            gio.check_tensor(k, t)
        for k, v in json.loads(meta.get("input_aliases", "{}")).items():
            if v not in tensors:
                raise gio.GoldenError(f"{path}: input alias {k} -> {v} names no tensor")
        if kind == "tokenizer":
            blob = gio.git_blob_id(os.path.join(folder, "tokenizer", "tokenizer.json"))
            if blob != meta["tokenizer_json_blob"]:
                raise gio.GoldenError(f"{path}: tokenizer/tokenizer.json is not the file the golden was made with")
        if kind == "text_encode":
            from safetensors.torch import load_file
            spec = json.loads(meta["synthetic_weights_te"])
            te_dir = os.path.join(folder, meta["model_dir"])
            weights = {}
            for fn in sorted(os.listdir(te_dir)):
                if fn.endswith(".safetensors"):
                    weights.update(load_file(os.path.join(te_dir, fn)))
            if set(weights) != set(spec["tensors"]):
                raise gio.GoldenError(f"{te_dir}: tensor names differ from the synthetic spec")
            for k, sp in spec["tensors"].items():
                ref = torch.from_numpy(synthetic(spec["seed"], k, sp["shape"], sp["offset"], sp["scale"]))
                if not torch.equal(ref, weights[k]):
                    raise gio.GoldenError(f"{te_dir}: {k} differs from its synthetic regeneration")
        print(f"{os.path.basename(path)}: kind={kind} {len(tensors)} tensors, {os.path.getsize(path)} bytes: ok")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", action="append", choices=list(CASES) + ["all"])
    ap.add_argument("--out", default="golden/text_encoder")
    ap.add_argument("--diffusers-commit", default=None)
    ap.add_argument("--verify", action="store_true", help="check the goldens in --out instead of dumping")
    args = ap.parse_args(argv)
    if args.verify:
        verify(args.out)
        return
    args.commit = gio.diffusers_commit(args.diffusers_commit)
    cases = args.case or ["all"]
    if "all" in cases:
        cases = list(CASES)
    for c in cases:
        print(gio.summarize(run_case(c, CASES[c], args)))


if __name__ == "__main__":
    main()

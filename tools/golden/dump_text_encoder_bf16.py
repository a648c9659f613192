#!/usr/bin/env python3
"""transformers bf16 goldens of the Qwen3 text encoder: the peer of the CUDA bf16 encoder (tier T4,
docs/tolerances.md: max|cuda - ref| <= 2 max|peer - ref| + floor, same for RMS).

For each case it reads the fp32 golden golden/text_encoder/<case>.safetensors (dump_text_encoder.py),
rebuilds the SAME Qwen3Model (the case's config and seed through dump_text_encoder.build_model; the
synthetic_weights spec must equal the golden's), runs it once in fp32 on the golden's input_ids and
attention_mask and requires every hidden_states.{k} to equal the fp32 golden bit for bit (same
model, same inputs, same torch kernels). Then it saves that model with save_pretrained into a
temporary folder and loads it back with Qwen3Model.from_pretrained(torch_dtype=torch.bfloat16,
attn_implementation="sdpa"), the way ZImagePipeline's text_encoder is loaded for a bf16 pipeline,
and runs the same inputs with output_hidden_states=True. CPU, one thread, SDPA math backend.

It writes golden/text_encoder/<case>.bf16.safetensors (kind text_encoder_bf16) holding only
hidden_states.{k} (float32 values of the bf16 outputs) plus provenance; the inputs stay in the fp32
golden, and the metadata `inputs_fnv1a64` records the fnv1a64 of input_ids' and attention_mask's
int32 bytes so a reader can prove it pairs the file with the right fp32 golden. `rope_inv_freq_dtype`
records the dtype transformers kept for the rotary inverse frequencies after the bf16 load.

    DIFFUSERS_SRC=... OMP_NUM_THREADS=1 ../shared/golden-env/run \
        python3 -B tools/golden/dump_text_encoder_bf16.py --diffusers-commit <sha> [--case NAME ...] \
        [--golden golden/text_encoder]

Checked by tests/golden/test_text_encoder_goldens.cpp (CPU: within the absolute T4 bound of the fp64
reference, far above the fp32 golden's error, and leaving room for the bf16 weight rounding every
bf16 encoder carries) and tests/cuda/test_cuda_qwen3.cpp (the peer rule for the CUDA bf16 encoder).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import golden_io as gio  # noqa: E402
from dump_text_encoder import CASES as TE_CASES, build_model, transformers_meta  # noqa: E402
from synthetic import fnv1a64_hex  # noqa: E402

CASES = ("te_tiny_left", "te_tiny_right", "te_real_layer")


def hidden_states(model, ids, mask):
    with gio.reference_mode():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    return out.hidden_states


def run_case(name, args):
    src = os.path.join(args.golden, f"{name}.safetensors")
    meta, g = gio.load_fp32_golden(src, "text_encoder")
    case = TE_CASES[name]
    if int(meta["seed"]) != case["seed"]:
        raise gio.GoldenError(f"{src}: seed {meta['seed']}, dump_text_encoder.py's case has {case['seed']}")
    gio.determinism(case["seed"])
    model, spec = build_model(case["config"], case["seed"])
    if spec != json.loads(meta["synthetic_weights"]):
        raise gio.GoldenError(f"{name}: synthetic spec rebuilt from the case differs from the golden's")
    if transformers_meta()["transformers_qwen3_blob"] != meta["transformers_qwen3_blob"]:
        raise gio.GoldenError(f"{src}: made with another modeling_qwen3.py ({meta['transformers_qwen3_blob']})")
    ids = g["input_ids"].to(torch.int64)
    mask = g["attention_mask"].to(torch.int64)
    n = case["config"]["num_hidden_layers"]

    # 1. fp32: must reproduce the fp32 golden bit for bit.
    hs32 = hidden_states(model, ids, mask)
    if len(hs32) != n + 1:
        raise gio.GoldenError(f"{name}: {len(hs32)} hidden_states for {n} layers")
    for k, h in enumerate(hs32):
        want = g[f"hidden_states.{k}"]
        if not torch.equal(h, want):
            d = (h - want).abs().max().item()
            raise gio.GoldenError(f"{name}: fp32 rerun of hidden_states.{k} differs from {src} (max |diff| {d:.3e}): "
                                  "not the same model / inputs / kernels")

    # 2. bf16, as a pipeline loads its text encoder with torch_dtype=torch.bfloat16.
    from transformers import Qwen3Model

    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        m16 = Qwen3Model.from_pretrained(tmp, torch_dtype=torch.bfloat16, attn_implementation="sdpa").eval()
    if any(p.dtype != torch.bfloat16 for p in m16.parameters()):
        raise gio.GoldenError(f"{name}: parameters left outside bfloat16")
    sd32 = model.state_dict()
    for k, p in m16.state_dict().items():
        if not torch.equal(p, sd32[k].to(torch.bfloat16)):
            raise gio.GoldenError(f"{name}: {k} after the bf16 load is not the fp32 weight rounded to bfloat16")
    inv_freq_dtype = str(m16.rotary_emb.inv_freq.dtype).replace("torch.", "")
    hs16 = hidden_states(m16, ids, mask)
    tensors, errs = {}, []
    for k, h in enumerate(hs16):
        if h.dtype != torch.bfloat16:
            raise gio.GoldenError(f"{name}: hidden_states.{k} is {h.dtype}, expected bfloat16")
        tensors[f"hidden_states.{k}"] = h.float()
        ref = g[f"hidden_states.{k}"].double()
        errs.append(float(torch.linalg.vector_norm(h.double() - ref) / torch.linalg.vector_norm(ref)))

    out_meta = gio.bf16_metadata(case=name, kind="text_encoder_bf16", commit=args.commit, fp32_meta=meta, extra={
        **transformers_meta(),
        "stored_as": "float32 (every value is a bfloat16 output, exactly representable)",
        "model": "Qwen3Model.from_pretrained(save_pretrained of the fp32 model, torch_dtype=torch.bfloat16, "
                 "attn_implementation='sdpa')",
        "weights": "the fp32 synthetic weights rounded to bfloat16 (round to nearest even), checked after the load",
        "rope_inv_freq_dtype": inv_freq_dtype,
        "padding_side": meta["padding_side"],
        "inputs": "input_ids, attention_mask of the fp32 golden",
        "inputs_fnv1a64": json.dumps({k: fnv1a64_hex(g[k], "<i4") for k in ("input_ids", "attention_mask")},
                                     separators=(",", ":")),
        "rel_rms_vs_fp32_golden": json.dumps(errs),
    })
    path = gio.save_bf16(args.golden, name, tensors, out_meta)
    print(f"{name}: bf16 vs fp32 golden rel_rms {', '.join(f'{e:.3e}' for e in errs)}; inv_freq {inv_freq_dtype}")
    return path


def main(argv=None):
    gio.bf16_main(__doc__, CASES, run_case, argv, golden_default="golden/text_encoder")


if __name__ == "__main__":
    main()

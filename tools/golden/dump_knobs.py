#!/usr/bin/env python3
"""Goldens for the DiT-side research knobs (docs/experiments.md).

    DIFFUSERS_SRC=/path/to/diffusers/src \
        ../shared/golden-env/run python3 tools/golden/dump_knobs.py \
        --diffusers-commit <sha> [--case NAME ...] [--out golden]

Cases:
  skip_context_refiner (kind knob_skip_refiner): the model of tiny_single (same config, seed and
      synthetic weights, so golden/models/tiny_single holds its weights; checked here bit for bit)
      with `transformer.context_refiner = nn.ModuleList([])`: caption features go from cap_embedder
      straight into the unified sequence. Records x.0, cap_feats.0, t, sample.0 and the normal
      forward's sample.0 as `sample_with_refiner.0` (checked bitwise equal to tiny_single's).
  long_prompt (kind knob_long_prompt): torch's own resampling of prompt embeddings [L, C] to N rows:
      `interpolate.{L}_{N}` = F.interpolate(e.T[None], size=N, mode='linear', align_corners=False),
      `pool.{L}_{N}` = F.adaptive_avg_pool1d(e.T[None], N), for inputs `embeds.{L}_{N}`.
      `attention_pool.{L}_{N}` is the project's definition (docs/experiments.md) written in torch
      here, independently of the C++: it is not a diffusers function.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors import safe_open  # noqa: E402

import golden_io as gio  # noqa: E402
from dump_dit import MODEL_CASES, config_json_of  # noqa: E402
from synthetic import fill_module  # noqa: E402

ALL_CASES = ["skip_context_refiner", "long_prompt"]
LONG_SEED = 1901
# (L, N): one token over, a length several times N, an exact multiple, ragged ratios.
LONG_SIZES = [(5, 4), (7, 3), (12, 3), (13, 4), (10, 7), (33, 32), (40, 5)]
LONG_C = 6


def run_skip_context_refiner(args) -> list[str]:
    from diffusers.models.transformers.transformer_z_image import ZImageTransformer2DModel

    base = MODEL_CASES["tiny_single"]
    seed, cfg = base["seed"], base["config"]
    gio.determinism(seed)
    model = ZImageTransformer2DModel(**cfg).eval()
    spec = fill_module(model, seed)
    # Same inputs as dump_dit.py's tiny_single (same generator, same draws).
    gen = torch.Generator().manual_seed(seed)
    xs = [torch.randn((cfg["in_channels"], 1, h, w), generator=gen) for h, w, _ in base["items"]]
    caps = [torch.randn((lc, cfg["cap_feat_dim"]), generator=gen) for _, _, lc in base["items"]]
    t = 0.05 + 0.9 * torch.rand((len(base["items"]),), generator=gen)

    # The shipped folder holds these weights, and the normal forward is tiny_single's golden.
    shipped = os.path.join(args.out, "models", "tiny_single", "diffusion_pytorch_model.safetensors")
    with safe_open(shipped, framework="pt") as f:
        sd = model.state_dict()
        if set(f.keys()) != set(sd) or any(not torch.equal(f.get_tensor(k), sd[k]) for k in sd):
            raise gio.GoldenError(f"{shipped}: weights differ from tiny_single's synthetic weights")
    with gio.reference_mode():
        full = model([x.clone() for x in xs], t.clone(), [c.clone() for c in caps], return_dict=True).sample
    with gio.open_golden(os.path.join(args.out, "tiny_single.safetensors")) as f:
        for i, s in enumerate(full):
            if not torch.equal(f.get_tensor(f"x.{i}"), xs[i]) or not torch.equal(f.get_tensor(f"sample.{i}"), s):
                raise gio.GoldenError("tiny_single: inputs or sample differ from golden/tiny_single.safetensors")

    model.context_refiner = nn.ModuleList([])  # the knob, as users do it in diffusers
    with gio.reference_mode():
        out = model([x.clone() for x in xs], t.clone(), [c.clone() for c in caps], return_dict=True).sample

    rec = {}
    for i, (x, c) in enumerate(zip(xs, caps)):
        rec[f"x.{i}"] = x
        rec[f"cap_feats.{i}"] = c
        rec[f"sample.{i}"] = out[i]
        rec[f"sample_with_refiner.{i}"] = full[i]
        if torch.equal(out[i], full[i]):
            raise gio.GoldenError("skipping the context refiner changed nothing")
    rec["t"] = t
    meta = gio.provenance(
        case="skip_context_refiner", kind="knob_skip_refiner", seed=seed, config_json=config_json_of(model),
        synthetic_spec=spec, commit=args.commit, model_dir="models/tiny_single",
        extra={"knob": "transformer.context_refiner = nn.ModuleList([]) after loading (tiny_single's model)",
               "items": [{"H": h, "W": w, "cap_len": lc} for h, w, lc in base["items"]]},
    )
    path = os.path.join(args.out, "skip_context_refiner.safetensors")
    gio.save(path, rec, meta)
    return [path]


def attention_pool_torch(e: torch.Tensor, n: int) -> torch.Tensor:
    """docs/experiments.md: importance_i = 1 - mean cos(e_i, e_j) over 0 < |i-j| <= 2 (existing j),
    weighted mean over adaptive_avg_pool1d's groups; a group whose weights sum to 0 takes the plain mean.
    In float64."""
    e = e.double()
    L = e.shape[0]
    norms = e.norm(dim=1)
    imp = torch.empty(L, dtype=torch.float64)
    for i in range(L):
        cs = []
        for j in range(max(0, i - 2), min(L, i + 3)):
            if j == i:
                continue
            d = norms[i] * norms[j]
            cs.append((e[i] @ e[j]) / d if d > 0 else torch.tensor(0.0, dtype=torch.float64))
        imp[i] = max(0.0, 1.0 - float(torch.stack(cs).mean()))
    out = torch.empty(n, e.shape[1], dtype=torch.float64)
    for g in range(n):
        s, t = (g * L) // n, -((-(g + 1) * L) // n)
        w = imp[s:t]
        out[g] = (w[:, None] * e[s:t]).sum(0) / w.sum() if w.sum() > 0 else e[s:t].mean(0)
    return out.float()


def run_long_prompt(args) -> list[str]:
    gio.determinism(LONG_SEED)
    gen = torch.Generator().manual_seed(LONG_SEED)
    rec = {}
    for L, N in LONG_SIZES:
        e = torch.randn((L, LONG_C), generator=gen)
        k = f"{L}_{N}"
        rec[f"embeds.{k}"] = e
        with torch.no_grad():
            rec[f"interpolate.{k}"] = F.interpolate(e.T[None], size=N, mode="linear", align_corners=False)[0].T
            rec[f"pool.{k}"] = F.adaptive_avg_pool1d(e.T[None], N)[0].T
        rec[f"attention_pool.{k}"] = attention_pool_torch(e, N)
    meta = gio.provenance(
        case="long_prompt", kind="knob_long_prompt", seed=LONG_SEED, config_json="{}",
        synthetic_spec={"seed": LONG_SEED, "tensors": {}}, commit=args.commit,
        extra={"sizes": [list(s) for s in LONG_SIZES],
               "interpolate": "F.interpolate(e.T[None], size=N, mode='linear', align_corners=False)[0].T",
               "pool": "F.adaptive_avg_pool1d(e.T[None], N)[0].T",
               "attention_pool": "docs/experiments.md's definition in torch float64 (dump_knobs.attention_pool_torch), "
                                 "cast to float32; not a diffusers/torch function"},
    )
    path = os.path.join(args.out, "long_prompt.safetensors")
    gio.save(path, rec, meta)
    return [path]


def check_knob_golden(path, meta, tensors):
    """verify.py's checks for the kinds this script writes."""
    if meta["kind"] == "knob_skip_refiner":
        for k in ("x.0", "cap_feats.0", "t", "sample.0", "sample_with_refiner.0"):
            if k not in tensors:
                raise gio.GoldenError(f"{path}: lacks {k}")
        if torch.equal(tensors["sample.0"], tensors["sample_with_refiner.0"]):
            raise gio.GoldenError(f"{path}: the knob changed nothing")
    else:
        for L, N in json.loads(meta["sizes"]):
            for k in ("interpolate", "pool", "attention_pool"):
                if list(tensors[f"{k}.{L}_{N}"].shape) != [N, tensors[f"embeds.{L}_{N}"].shape[1]]:
                    raise gio.GoldenError(f"{path}: {k}.{L}_{N} misshapen")


def main(argv=None):
    ap = gio.case_parser(__doc__, ALL_CASES, out_help="golden folder (default golden; must hold tiny_single)")
    args = ap.parse_args(argv)
    written = []
    for c in gio.select_cases(args, ALL_CASES):
        written += run_skip_context_refiner(args) if c == "skip_context_refiner" else run_long_prompt(args)
    gio.print_written(written)


if __name__ == "__main__":
    main()

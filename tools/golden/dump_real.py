#!/usr/bin/env python3
"""Dumps every module's activations of a user's real Z-Image transformer, for
layer bisection with `zimage validate --model DIR --goldens FILE`
(docs/bisect.md).

The user's own checkpoint goes through diffusers' ZImageTransformer2DModel in
fp32 on the CPU (reference mode: one thread, math attention, TF32 off), with
the same hooks as dump_dit.py. The output is a zimage-golden-v1 file of kind
`model` without synthetic weights: the C++ side reads the weights from the
same folder (--model DIR).

    DIFFUSERS_SRC=/path/to/diffusers/src OMP_NUM_THREADS=1 \
        ../shared/golden-env/run python3 -B tools/golden/dump_real.py \
        --model PIPELINE_OR_TRANSFORMER_DIR --prompt-embeds EMBEDS.safetensors \
        --diffusers-commit <sha> --out real.safetensors [--height 512 --width 512 --t 0.5 --seed 0]
        [--hooks blocks|all]

EMBEDS.safetensors holds prompt_embeds.0 [tokens, cap_feat_dim] (float32), the
file `zimage generate --prompt-embeds` reads (hidden_states[-2] of the text
encoder for the chat-templated prompt, padding dropped). --hooks blocks (the
default) records the embedders, every transformer block and the final layer
with their inputs; --hooks all also records every sub-module (attention,
norms, feed-forward, Linears): at 512x512 on Turbo that is several GB, so
bisect in two passes: blocks first, then --expand BLOCK for the first block
that fails (docs/bisect.md).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import golden_io as gio  # noqa: E402
from dump_dit import NARROW_HOOKS, Recorder, all_hookable, config_json_of, forward_recorded  # noqa: E402


def model_folder(path: str) -> str:
    """A pipeline folder's transformer/, or the folder itself."""
    if os.path.exists(os.path.join(path, "model_index.json")):
        path = os.path.join(path, "transformer")
    if not os.path.exists(os.path.join(path, "config.json")):
        raise gio.GoldenError(f"{path}: no config.json (pass a pipeline folder or its transformer/ folder)")
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt-embeds", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--diffusers-commit")
    ap.add_argument("--height", type=int, default=512)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--t", type=float, default=0.5, help="the t the transformer receives (1 - sigma), before t_scale")
    ap.add_argument("--seed", type=int, default=0, help="seed of the input latents (torch.randn on the CPU)")
    ap.add_argument("--hooks", choices=("blocks", "all"), default="blocks")
    ap.add_argument("--expand", action="append", default=[], metavar="MODULE",
                    help="with --hooks blocks, also record every sub-module of MODULE (e.g. layers.7): "
                         "the second, finer pass of a bisection (repeatable)")
    args = ap.parse_args(argv)
    commit = gio.diffusers_commit(args.diffusers_commit)
    gio.determinism(args.seed)

    from diffusers.models.transformers.transformer_z_image import RopeEmbedder, ZImageTransformer2DModel

    folder = model_folder(args.model)
    model = ZImageTransformer2DModel.from_pretrained(folder, torch_dtype=torch.float32).eval()
    cfg = model.config
    with gio.open_golden(args.prompt_embeds) as f:
        if "prompt_embeds.0" not in f.keys():
            raise gio.GoldenError(f"{args.prompt_embeds}: no tensor prompt_embeds.0")
        cap = f.get_tensor("prompt_embeds.0")
    if cap.dtype != torch.float32 or cap.ndim != 2 or cap.shape[1] != cfg.cap_feat_dim:
        raise gio.GoldenError(f"{args.prompt_embeds}: prompt_embeds.0 is {cap.dtype} {list(cap.shape)}, "
                              f"expected float32 [tokens, {cfg.cap_feat_dim}]")
    # ZImagePipeline: latent side 2 * (size // 16) for the Flux VAE (factor 8) and patch 2.
    if args.height % 16 or args.width % 16:
        raise gio.GoldenError("--height and --width must be multiples of 16")
    h, w = 2 * (args.height // 16), 2 * (args.width // 16)
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn((cfg.in_channels, 1, h, w), generator=gen)
    t = torch.tensor([args.t], dtype=torch.float32)

    rec = Recorder()
    rec.put("x.0", x)
    rec.put("cap_feats.0", cap)
    rec.put("t", t)
    if args.hooks == "all":
        paths = [p for p in all_hookable(model) if p]
    else:
        paths = [p for p in all_hookable(model)
                 if p in NARROW_HOOKS or any(p.startswith(hk) and p[len(hk):].isdigit() for hk in NARROW_HOOKS)
                 or any(p.startswith(e + ".") for e in args.expand)]
        unknown = [e for e in args.expand if e not in dict(model.named_modules())]
        if unknown:
            raise gio.GoldenError(f"--expand {unknown[0]}: not a module of the model")
    out = forward_recorded(model, paths, rec, [x], t, [cap], RopeEmbedder)
    rec.put("sample.0", out[0])
    missing = sorted(set(paths) - set(rec.fired))
    if missing:
        raise gio.GoldenError(f"hooked modules never called: {missing}")

    weight_files = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors") or f.endswith(".json"))
    meta = gio.provenance(
        case="real_" + os.path.basename(os.path.abspath(args.model)), kind="model", seed=args.seed,
        config_json=config_json_of(model), synthetic_spec={"seed": args.seed, "tensors": {}}, commit=commit,
        extra={"modules": rec.fired, "items": [{"H": h, "W": w, "cap_len": int(cap.shape[0])}],
               "weights": "user checkpoint: pass the same folder to zimage validate --model",
               "model_folder": os.path.abspath(folder), "model_files": weight_files,
               "prompt_embeds_file": os.path.abspath(args.prompt_embeds)},
    )
    gio.save(args.out, rec.tensors, meta)
    print(f"{args.out}: {len(rec.tensors)} tensors, {len(rec.fired)} modules, latent {h}x{w}, "
          f"caption {cap.shape[0]} tokens")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Dumps end-to-end ZImagePipeline goldens from real diffusers (docs/pipeline.md).

A tiny pipeline (tiny ZImageTransformer2DModel with synthetic weights, a tiny
4-block AutoencoderKL with torch's seeded default init, the real Z-Image-Turbo
scheduler config) is saved with ZImagePipeline.save_pretrained under
golden/models/pipeline_tiny/ (no text_encoder/ or tokenizer/), reloaded with
ZImagePipeline.from_pretrained, and run on prompt embeddings with a seeded
torch.Generator("cpu"). Every value in the golden comes from that run:

    latents.init              the pipeline's initial latents (randn_tensor)
    latents.step.{k}          latents after step k (callback_on_step_end)
    model_output.{k}          what the pipeline passes to scheduler.step at step k
                              (CFG-combined, negated), recorded by wrapping step()
    timesteps, sigmas         the schedule the pipeline used
    image.decoded             vae.decode output [B, 3, H, W] (before postprocess)
    image.uint8               the PIL image's pixels [B, H, W, 3] (int32)
    prompt_embeds.{i}, negative_prompt_embeds.{i}   the inputs

    DIFFUSERS_SRC=/path/to/diffusers/src OMP_NUM_THREADS=1 \
        ../shared/golden-env/run python3 -B tools/golden/dump_pipeline.py \
        --diffusers-commit <sha> [--case NAME ...] [--out golden]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import golden_io as gio  # noqa: E402
from synthetic import fill_module  # noqa: E402

# The tiny transformer of dump_dit.py (TINY), with the real axes_lens.
TINY_DIT = dict(
    all_patch_size=[2], all_f_patch_size=[1], in_channels=16, dim=64, n_layers=2, n_refiner_layers=2,
    n_heads=2, n_kv_heads=2, norm_eps=1e-5, qk_norm=True, cap_feat_dim=32, rope_theta=256.0,
    t_scale=1000.0, axes_dims=[8, 12, 12], axes_lens=[1536, 512, 512],
)
# The Flux VAE's structure (4 blocks: vae_scale_factor 8, so images are multiples of 16) at
# width 32, with the Flux scaling and shift factors.
TINY_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=16,
    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[32, 32, 32, 32], layers_per_block=1, norm_num_groups=8, act_fn="silu",
    sample_size=64, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False,
    mid_block_add_attention=True, force_upcast=True,
)
# Z-Image-Turbo's scheduler/scheduler_config.json (docs/zimage-facts.md).
TURBO_SCHEDULER = dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False)

PIPELINE_SEED = 2001  # weights
CASES = {
    # Turbo defaults: guidance 0, 8 steps; one prompt.
    "pipeline_turbo": dict(seed=42, height=64, width=96, steps=8, guidance=0.0, cfg_normalization=False,
                           cfg_truncation=1.0, prompts=[9], negatives=None, per_prompt=1),
    # CFG: two prompts of different lengths, two images each, normalization that triggers and a
    # truncation that turns CFG off for the last steps.
    "pipeline_cfg": dict(seed=7, height=48, width=64, steps=6, guidance=4.0, cfg_normalization=1.2,
                         cfg_truncation=0.3, prompts=[5, 12], negatives=[3, 7], per_prompt=2),
}


def blob(rel: str) -> str:
    import diffusers

    return gio.git_blob_id(os.path.join(os.path.dirname(diffusers.__file__), rel))


def build_pipeline(out_dir: str, commit: str):
    """Builds the tiny pipeline, saves it with save_pretrained, reloads it."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImagePipeline
    from diffusers.models.transformers.transformer_z_image import ZImageTransformer2DModel

    gio.determinism(PIPELINE_SEED)
    transformer = ZImageTransformer2DModel(**TINY_DIT).eval()
    spec = fill_module(transformer, PIPELINE_SEED)
    torch.manual_seed(PIPELINE_SEED + 1)
    vae = AutoencoderKL(**TINY_VAE).eval()
    # torch's default init leaves GroupNorm at (1, 0) and conv biases small: perturb the norms so a
    # wrong affine or variance shows.
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    scheduler = FlowMatchEulerDiscreteScheduler(**TURBO_SCHEDULER)
    pipe = ZImagePipeline(scheduler=scheduler, vae=vae, text_encoder=None, tokenizer=None, transformer=transformer)
    dst = os.path.join(out_dir, "models", "pipeline_tiny")
    if os.path.exists(dst):
        shutil.rmtree(dst)
    pipe.save_pretrained(dst)
    for need in ("model_index.json", "transformer/config.json", "vae/config.json", "scheduler/scheduler_config.json"):
        if not os.path.exists(os.path.join(dst, need)):
            raise gio.GoldenError(f"{dst}: save_pretrained wrote no {need}")
    reloaded = ZImagePipeline.from_pretrained(dst, text_encoder=None, tokenizer=None)
    sd1, sd2 = transformer.state_dict(), reloaded.transformer.state_dict()
    if any(not torch.equal(sd1[k], sd2[k]) for k in sd1):
        raise gio.GoldenError(f"{dst}: reloaded transformer weights differ")
    sd1, sd2 = vae.state_dict(), reloaded.vae.state_dict()
    if any(not torch.equal(sd1[k], sd2[k]) for k in sd1):
        raise gio.GoldenError(f"{dst}: reloaded vae weights differ")
    return reloaded, dst, spec


def run_case(name: str, case: dict, pipe, model_dir: str, spec: dict, args) -> str:
    gio.determinism(case["seed"])
    cap = pipe.transformer.config.cap_feat_dim
    gen = torch.Generator("cpu").manual_seed(1000 + case["seed"])
    pos = [torch.randn((n, cap), generator=gen) for n in case["prompts"]]
    neg = [torch.randn((n, cap), generator=gen) for n in case["negatives"]] if case["negatives"] else None

    rec = {}
    for i, p in enumerate(pos):
        rec[f"prompt_embeds.{i}"] = p.clone()
    for i, p in enumerate(neg or []):
        rec[f"negative_prompt_embeds.{i}"] = p.clone()

    # Record what the pipeline hands the scheduler, and the first latents it steps from.
    steps_seen = []
    inner_step = pipe.scheduler.step

    def spy_step(model_output, timestep, sample, *a, **kw):
        k = len(steps_seen)
        if k == 0:
            rec["latents.init"] = sample.detach().clone()
        rec[f"model_output.{k}"] = model_output.detach().clone()
        steps_seen.append(float(timestep))
        return inner_step(model_output, timestep, sample, *a, **kw)

    pipe.scheduler.step = spy_step

    def on_step_end(p, i, t, kw):
        rec[f"latents.step.{i}"] = kw["latents"].detach().clone()
        return {}

    decoded = {}
    inner_decode = pipe.vae.decode

    def spy_decode(z, *a, **kw):
        rec["vae_input"] = z.detach().clone()
        out = inner_decode(z, *a, **kw)
        decoded["x"] = out[0] if isinstance(out, tuple) else out.sample
        return out

    pipe.vae.decode = spy_decode
    with gio.reference_mode():
        images = pipe(
            prompt_embeds=[p.clone() for p in pos],
            negative_prompt_embeds=[p.clone() for p in neg] if neg else None,
            height=case["height"], width=case["width"], num_inference_steps=case["steps"],
            guidance_scale=case["guidance"], cfg_normalization=case["cfg_normalization"],
            cfg_truncation=case["cfg_truncation"], num_images_per_prompt=case["per_prompt"],
            generator=torch.Generator("cpu").manual_seed(case["seed"]), output_type="pil",
            callback_on_step_end=on_step_end,
        ).images
    pipe.scheduler.step = inner_step
    pipe.vae.decode = inner_decode

    rec["timesteps"] = pipe.scheduler.timesteps.detach().clone()
    rec["sigmas"] = pipe.scheduler.sigmas.detach().clone()
    rec["image.decoded"] = decoded["x"].detach().clone()
    rec["image.uint8"] = torch.from_numpy(np.stack([np.asarray(im) for im in images]).astype(np.int32))
    if len(steps_seen) != case["steps"]:
        raise gio.GoldenError(f"{name}: {len(steps_seen)} scheduler steps, expected {case['steps']}")
    # Independent check of the seeded latents: the same generator call the pipeline makes.
    b = len(pos) * case["per_prompt"]
    shape = (b, 16, 2 * (case["height"] // 16), 2 * (case["width"] // 16))
    again = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(case["seed"]), dtype=torch.float32)
    if not torch.equal(again, rec["latents.init"]):
        raise gio.GoldenError(f"{name}: latents.init is not torch.randn of the seed")

    with open(os.path.join(args.out, model_dir, "model_index.json")) as f:
        model_index = f.read()
    with open(os.path.join(args.out, model_dir, "transformer", "config.json")) as f:
        dit_config = json.dumps(json.load(f), separators=(",", ":"))
    options = {k: case[k] for k in ("height", "width", "steps", "guidance", "cfg_normalization", "cfg_truncation",
                                    "per_prompt")}
    meta = gio.provenance(
        case=name, kind="pipeline", seed=case["seed"], config_json=dit_config,
        synthetic_spec=spec, commit=args.commit, model_dir=model_dir,
        extra={
            "options": options,
            "generator": "torch.Generator('cpu').manual_seed(seed)",
            "model_index": model_index,
            "vae_config": TINY_VAE,
            "scheduler_config": TURBO_SCHEDULER,
            "diffusers_pipeline_blob": blob("pipelines/z_image/pipeline_z_image.py"),
            "diffusers_scheduler_blob": blob("schedulers/scheduling_flow_match_euler_discrete.py"),
            "diffusers_vae_blob": blob("models/autoencoders/autoencoder_kl.py"),
            "pil_version": __import__("PIL").__version__,
        },
    )
    path = os.path.join(args.out, f"{name}.safetensors")
    gio.save(path, rec, meta)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--diffusers-commit", dest="commit")
    ap.add_argument("--case", action="append", choices=list(CASES) + ["all"])
    ap.add_argument("--out", default="golden")
    args = ap.parse_args(argv)
    args.commit = gio.diffusers_commit(args.commit)
    names = list(CASES) if not args.case or "all" in args.case else args.case
    pipe, dst, spec = build_pipeline(args.out, args.commit)
    model_dir = os.path.relpath(dst, args.out)
    for name in names:
        path = run_case(name, CASES[name], pipe, model_dir, spec, args)
        print(gio.summarize(path))
    print(f"pipeline folder: {dst}")


if __name__ == "__main__":
    main()

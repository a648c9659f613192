#!/usr/bin/env python3
"""diffusers bf16 pipeline goldens: the peer of `zimage generate --device cuda --dtype bfloat16`
(tier T5 of docs/tolerances.md: per-step latent drift against the fp64 run within 2x of
the peer's drift, final PSNR within 6 dB of the peer's).

For each case it reads the fp32 pipeline golden golden/<case>.safetensors (dump_pipeline.py),
loads the SAME tiny pipeline from the shipped folder golden/<model_dir> with
ZImagePipeline.from_pretrained, reruns it in fp32 and requires every latents.step.{k} to equal the
fp32 golden bit for bit (same pipeline, same inputs, same torch kernels). Then it runs it with the
transformer in bfloat16, as `zimage generate --device cuda --dtype bfloat16` does: the
transformer's weights model.to(torch.bfloat16) (ZImageTransformer2DModel has no
_keep_in_fp32_modules), the prompt embeddings cast to bfloat16 (what a bf16 text encoder hands
the pipeline), the latents, the scheduler and the VAE in float32 (the pipeline casts the latents
to the transformer's dtype for each call and its output back to float32). CPU, one thread, SDPA
math backend. It writes golden/<case>.bf16.safetensors with:

    latents.step.{k}    latents after step k (float32)
    model_output.{k}    what the pipeline hands scheduler.step (float32 of the bf16 outputs, CFG-combined)
    image.decoded       vae.decode of the final latents (float32 VAE)
    image.uint8         the PIL image's pixels [B, H, W, 3] (int32)

The inputs (latents.init, prompt_embeds.{i}, negative_prompt_embeds.{i}) stay in the fp32
golden; `inputs_fnv1a64` records each one's fnv1a64 so a reader can prove it pairs the files.

    DIFFUSERS_SRC=... OMP_NUM_THREADS=1 ../shared/golden-env/run \
        python3 -B tools/golden/dump_pipeline_bf16.py --diffusers-commit <sha> [--case NAME ...]

Checked by tests/golden/test_pipeline_bf16_golden.cpp (CPU: the peer's drift against our fp64
run lies above the fp32 golden's and within the accumulated bf16 model budget) and
tests/cuda/test_cuda_generate.cpp (the T5 rule for the CUDA bf16 loop).
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import golden_io as gio  # noqa: E402
from synthetic import fnv1a64_hex as digest  # noqa: E402

CASES = ("pipeline_turbo", "pipeline_cfg")


def run_pipeline(pipe, opts, seed, pos, neg):
    """One __call__ with the spies of dump_pipeline.py: per-step latents, model outputs, decode."""
    rec = {}
    inner_step = pipe.scheduler.step
    k_seen = []

    def spy_step(model_output, timestep, sample, *a, **kw):
        if not k_seen:
            rec["latents.init"] = sample.detach().clone()
        rec[f"model_output.{len(k_seen)}"] = model_output.detach().clone()
        k_seen.append(float(timestep))
        return inner_step(model_output, timestep, sample, *a, **kw)

    def on_step_end(p, i, t, kw):
        rec[f"latents.step.{i}"] = kw["latents"].detach().clone()
        return {}

    inner_decode = pipe.vae.decode

    def spy_decode(z, *a, **kw):
        out = inner_decode(z, *a, **kw)
        rec["image.decoded"] = (out[0] if isinstance(out, tuple) else out.sample).detach().clone()
        return out

    pipe.scheduler.step = spy_step
    pipe.vae.decode = spy_decode
    try:
        with gio.reference_mode():
            images = pipe(
                prompt_embeds=pos, negative_prompt_embeds=neg, height=opts["height"], width=opts["width"],
                num_inference_steps=opts["steps"], guidance_scale=opts["guidance"],
                cfg_normalization=opts["cfg_normalization"], cfg_truncation=opts["cfg_truncation"],
                num_images_per_prompt=opts["per_prompt"], generator=torch.Generator("cpu").manual_seed(seed),
                output_type="pil", callback_on_step_end=on_step_end,
            ).images
    finally:
        pipe.scheduler.step = inner_step
        pipe.vae.decode = inner_decode
    if len(k_seen) != opts["steps"]:
        raise gio.GoldenError(f"{len(k_seen)} scheduler steps, expected {opts['steps']}")
    rec["image.uint8"] = torch.from_numpy(np.stack([np.asarray(im) for im in images]).astype(np.int32))
    return rec


def rel_rms(a: torch.Tensor, r: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a.double() - r.double()) / torch.linalg.vector_norm(r.double()))


def run_case(name, args):
    from diffusers import ZImagePipeline

    src = os.path.join(args.golden, f"{name}.safetensors")
    meta, g = gio.load_fp32_golden(src, "pipeline")
    opts = json.loads(meta["options"])
    seed = int(meta["seed"])
    gio.determinism(seed)
    folder = os.path.join(args.golden, meta["model_dir"])
    pipe = ZImagePipeline.from_pretrained(folder, text_encoder=None, tokenizer=None)
    pos = [g[f"prompt_embeds.{i}"] for i in range(len([k for k in g if k.startswith("prompt_embeds.")]))]
    negs = [g[f"negative_prompt_embeds.{i}"] for i in range(len([k for k in g if k.startswith("negative_prompt_embeds.")]))]
    neg = negs or None

    # 1. fp32: must reproduce the fp32 golden bit for bit.
    r32 = run_pipeline(pipe, opts, seed, [p.clone() for p in pos], [p.clone() for p in neg] if neg else None)
    for k in range(opts["steps"]):
        key = f"latents.step.{k}"
        if not torch.equal(r32[key], g[key]):
            raise gio.GoldenError(f"{name}: fp32 rerun of {key} differs from {src}: not the same pipeline / inputs")
    if not torch.equal(r32["latents.init"], g["latents.init"]):
        raise gio.GoldenError(f"{name}: fp32 rerun's latents.init differs from {src}")

    # 2. The transformer in bf16, everything else as before.
    if getattr(pipe.transformer, "_keep_in_fp32_modules", None):
        raise gio.GoldenError("the transformer keeps modules in fp32: model.to(bf16) is not what "
                              "from_pretrained(torch_dtype=bf16) gives")
    pipe.transformer.to(torch.bfloat16)
    if any(p.dtype != torch.bfloat16 for p in pipe.transformer.parameters()):
        raise gio.GoldenError(f"{name}: transformer parameters left outside bfloat16")
    r16 = run_pipeline(pipe, opts, seed, [p.to(torch.bfloat16) for p in pos],
                       [p.to(torch.bfloat16) for p in neg] if neg else None)
    if not torch.equal(r16["latents.init"], g["latents.init"]):
        raise gio.GoldenError(f"{name}: bf16 run's latents.init differs from the fp32 golden's")
    out = {}
    drift = []
    for k in range(opts["steps"]):
        lat = r16[f"latents.step.{k}"]
        if lat.dtype != torch.float32 or r16[f"model_output.{k}"].dtype != torch.float32:
            raise gio.GoldenError(f"{name}: step {k} latents or model output not float32")
        out[f"latents.step.{k}"] = lat
        out[f"model_output.{k}"] = r16[f"model_output.{k}"]
        drift.append(rel_rms(lat, g[f"latents.step.{k}"]))
    out["image.decoded"] = r16["image.decoded"].float()
    out["image.uint8"] = r16["image.uint8"]

    import diffusers
    src_root = os.path.dirname(os.path.dirname(diffusers.__file__))
    inputs = ["latents.init"] + [k for k in sorted(g) if "prompt_embeds." in k]
    out_meta = gio.bf16_metadata(case=name, kind="pipeline_bf16", commit=args.commit, fp32_meta=meta, extra={
        "model_dir": meta["model_dir"],
        "options": meta["options"],
        "diffusers_pipeline_blob": gio.git_blob_id(os.path.join(src_root, "diffusers/pipelines/z_image/pipeline_z_image.py")),
        "pil_version": __import__("PIL").__version__,
        "stored_as": "float32 (latents, model outputs and the decode are float32 in the pipeline)",
        "transformer": "ZImagePipeline.from_pretrained(model_dir).transformer.to(torch.bfloat16)",
        "inputs": "latents.init and prompt embeddings of the fp32 golden; the embeddings cast to bfloat16; "
                  "scheduler and VAE float32",
        "inputs_fnv1a64": json.dumps({k: digest(g[k]) for k in inputs}, separators=(",", ":")),
        "latents_rel_rms_vs_fp32_golden": json.dumps(drift),
    })
    path = gio.save_bf16(args.golden, name, out, out_meta)
    print(f"{name}: bf16 latents vs fp32 golden rel_rms per step {', '.join(f'{e:.3e}' for e in drift)}")
    return path


def main(argv=None):
    gio.bf16_main(__doc__, CASES, run_case, argv)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""diffusers bf16 goldens of whole-model cases: the peer of the CUDA bf16 forward (tier T4,
docs/tolerances.md: max|cuda - ref| <= 2 max|peer - ref| + floor, same for RMS).

For each case it reads the fp32 golden golden/<case>.safetensors (dump_dit.py), rebuilds the SAME
ZImageTransformer2DModel (from the shipped folder golden/<model_dir> with from_pretrained, or, for
cases without one, from the golden's config and synthetic_weights spec), runs it once in fp32 on
the golden's inputs and requires every sample.{i} to equal the fp32 golden bit for bit (same
model, same inputs, same torch kernels), then runs it in bfloat16 the way ZImagePipeline with
torch_dtype=torch.bfloat16 does: weights model.to(torch.bfloat16) (what from_pretrained with
torch_dtype gives: the model has no _keep_in_fp32_modules), latents and caption features cast to
bfloat16, the timestep left float32 (the pipeline's scheduler timestep). CPU, one thread, SDPA
math backend. It writes golden/<case>.bf16.safetensors holding only sample.{i} (float32 values of
the bf16 outputs) plus provenance; the inputs stay in the fp32 golden, and the metadata
`inputs_fnv1a64` records the fnv1a64 of each input's float32 bytes so a reader can prove it
pairs the file with the right fp32 golden.

    DIFFUSERS_SRC=... OMP_NUM_THREADS=1 ../shared/golden-env/run \
        python3 -B tools/golden/dump_dit_bf16.py --diffusers-commit <sha> [--case NAME ...] [--golden golden]

Checked by tests/golden/test_bf16_goldens.cpp (CPU: the absolute T4 bound against the fp64
reference, and well above the fp32 golden's error) and tests/cuda/test_cuda_model.cpp (the
peer rule for the CUDA bf16 samples).
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import golden_io as gio  # noqa: E402
from synthetic import fill_module, fnv1a64_hex as digest  # noqa: E402

CASES = ("tiny_single", "tiny_batch2", "narrow_full_depth")


def build_model(golden_dir, meta):
    from diffusers.models.transformers.transformer_z_image import ZImageTransformer2DModel

    cfg = json.loads(meta["config"])
    spec = json.loads(meta["synthetic_weights"])
    if meta.get("model_dir"):
        model = ZImageTransformer2DModel.from_pretrained(os.path.join(golden_dir, meta["model_dir"])).eval()
        how = f"from_pretrained({meta['model_dir']})"
    else:
        args = {k: v for k, v in cfg.items() if not k.startswith("_")}
        model = ZImageTransformer2DModel(**args).eval()
        got = fill_module(model, spec["seed"])
        if got != spec:
            raise gio.GoldenError("synthetic spec rebuilt from the config differs from the golden's")
        how = f"ZImageTransformer2DModel(**config) + synthetic_weights (seed {spec['seed']})"
    if getattr(model, "_keep_in_fp32_modules", None):
        raise gio.GoldenError(f"model keeps {model._keep_in_fp32_modules} in fp32: model.to(bf16) is not "
                              "what from_pretrained(torch_dtype=bf16) gives")
    return model, how


def run_case(name, args):
    src = os.path.join(args.golden, f"{name}.safetensors")
    meta, g = gio.load_fp32_golden(src, "model")
    seed = int(meta["seed"])
    gio.determinism(seed)
    model, how = build_model(args.golden, meta)
    n = len(json.loads(meta["items"]))
    xs = [g[f"x.{i}"] for i in range(n)]
    caps = [g[f"cap_feats.{i}"] for i in range(n)]
    t = g["t"]

    # 1. fp32: must reproduce the fp32 golden bit for bit.
    with gio.reference_mode():
        out32 = model([x.clone() for x in xs], t.clone(), [c.clone() for c in caps], return_dict=True).sample
    for i, s in enumerate(out32):
        if not torch.equal(s, g[f"sample.{i}"]):
            d = (s - g[f"sample.{i}"]).abs().max().item()
            raise gio.GoldenError(f"{name}: fp32 rerun of sample.{i} differs from {src} (max |diff| {d:.3e}): "
                                  "not the same model / inputs / kernels")

    # 2. bf16, as ZImagePipeline(torch_dtype=torch.bfloat16) runs the transformer.
    model = model.to(torch.bfloat16)
    if any(p.dtype != torch.bfloat16 for p in model.parameters()):
        raise gio.GoldenError(f"{name}: parameters left outside bfloat16")
    with gio.reference_mode():
        out16 = model([x.to(torch.bfloat16) for x in xs], t.clone(), [c.to(torch.bfloat16) for c in caps],
                      return_dict=True).sample
    samples = {}
    errs = []
    for i, s in enumerate(out16):
        if s.dtype != torch.bfloat16:
            raise gio.GoldenError(f"{name}: sample.{i} is {s.dtype}, expected bfloat16")
        samples[f"sample.{i}"] = s.float()
        ref = g[f"sample.{i}"].double()
        e = (s.double() - ref)
        errs.append(float(torch.linalg.vector_norm(e) / torch.linalg.vector_norm(ref)))

    out_meta = gio.bf16_metadata(case=name, kind="model_bf16", commit=args.commit, fp32_meta=meta, extra={
        "stored_as": "float32 (every value is a bfloat16 output, exactly representable)",
        "model": how,
        "weights": "model.to(torch.bfloat16) (round to nearest even from the fp32 weights)",
        "inputs": "x.{i}, cap_feats.{i} of the fp32 golden cast to bfloat16; t float32 (as ZImagePipeline passes it)",
        "inputs_fnv1a64": json.dumps({k: digest(g[k]) for k in
                                      [f"x.{i}" for i in range(n)] + [f"cap_feats.{i}" for i in range(n)] + ["t"]},
                                     separators=(",", ":")),
        "rel_rms_vs_fp32_golden": json.dumps(errs),
    })
    path = gio.save_bf16(args.golden, name, samples, out_meta)
    print(f"{name}: bf16 vs fp32 golden rel_rms {', '.join(f'{e:.3e}' for e in errs)}")
    return path


def main(argv=None):
    gio.bf16_main(__doc__, CASES, run_case, argv)


if __name__ == "__main__":
    main()

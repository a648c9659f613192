#!/usr/bin/env python3
"""Writes a small ComfyUI-layout single-file Z-Image transformer checkpoint and
checks it against diffusers' own converter.

The file is what a ComfyUI user holds (keys under "model.diffusion_model.",
fused attention.qkv, attention.out / q_norm / k_norm, x_embedder,
final_layer, norm_final). The script builds a tiny ZImageTransformer2DModel
with synthetic weights (synthetic.py), lays its state_dict out the ComfyUI way,
then runs diffusers' convert_z_image_transformer_checkpoint_to_diffusers on
it and requires the result to be exactly the model's state_dict (same names,
shapes and bits). What the converter produced is recorded in the metadata
("converted": name -> shape and fnv1a64 of the float32 bytes), so the C++
reader (reference/dit/comfy_layout.h) is checked against diffusers'
mapping, not against itself (tests/golden/test_comfy_layout.cpp).

    DIFFUSERS_SRC=/path/to/diffusers/src OMP_NUM_THREADS=1 ../shared/golden-env/run \
        python3 -B tools/golden/dump_comfy.py --diffusers-commit <sha> [--out golden/comfy]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import golden_io as gio  # noqa: E402
from synthetic import fill_module  # noqa: E402

CONVERTER_FILE = "diffusers/loaders/single_file_utils.py"

# Small enough for a < 2 MB file; every kind of tensor the mapping touches is present.
COMFY_TINY = dict(
    all_patch_size=[2], all_f_patch_size=[1], in_channels=16, dim=32, n_layers=2, n_refiner_layers=1,
    n_heads=2, n_kv_heads=2, norm_eps=1e-5, qk_norm=True, cap_feat_dim=16, rope_theta=256.0,
    t_scale=1000.0, axes_dims=[4, 6, 6], axes_lens=[64, 32, 32],
)
SEED = 3001


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def to_comfy(sd: dict, dim: int) -> dict:
    """diffusers state_dict -> the ComfyUI / original Z-Image key layout (the inverse
    of diffusers' converter, written out by hand; the converter checks it)."""
    out = {}
    for name, t in sd.items():
        if ".attention.to_k.weight" in name or ".attention.to_v.weight" in name:
            continue
        if ".attention.to_q.weight" in name:
            base = name.replace(".attention.to_q.weight", "")
            qkv = torch.cat([sd[base + ".attention.to_q.weight"], sd[base + ".attention.to_k.weight"],
                             sd[base + ".attention.to_v.weight"]], dim=0)
            out[base + ".attention.qkv.weight"] = qkv
            continue
        key = (name.replace("all_final_layer.2-1.", "final_layer.").replace("all_x_embedder.2-1.", "x_embedder.")
               .replace(".attention.to_out.0.weight", ".attention.out.weight")
               .replace(".attention.norm_q.weight", ".attention.q_norm.weight")
               .replace(".attention.norm_k.weight", ".attention.k_norm.weight"))
        out[key] = t
    # The original checkpoints carry an affine-free LayerNorm's weight; diffusers drops it.
    out["norm_final.weight"] = torch.ones(dim)
    return {"model.diffusion_model." + k: v.contiguous().clone() for k, v in out.items()}


def check_comfy_golden(path: str) -> None:
    """Re-runs diffusers' converter on a stored comfy golden and compares it with the
    recorded "converted" digests; checks the recorded blob of single_file_utils.py."""
    import diffusers
    from diffusers.loaders.single_file_utils import convert_z_image_transformer_checkpoint_to_diffusers
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        meta = f.metadata()
        comfy = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("kind") != "comfy_single_file":
        raise gio.GoldenError(f"{path}: kind {meta.get('kind')!r}, expected comfy_single_file")
    src_root = os.path.dirname(os.path.dirname(diffusers.__file__))
    blob = gio.git_blob_id(os.path.join(src_root, CONVERTER_FILE))
    if blob != meta["diffusers_single_file_utils_blob"]:
        raise gio.GoldenError(f"{path}: made with single_file_utils.py blob {meta['diffusers_single_file_utils_blob']}, "
                              f"this diffusers has {blob}")
    record = json.loads(meta["converted"])
    n_comfy = len(comfy)
    converted = convert_z_image_transformer_checkpoint_to_diffusers(comfy)  # pops from its argument
    if set(converted) != set(record):
        raise gio.GoldenError(f"{path}: converter names differ from the record")
    for name, t in converted.items():
        got = "0x%016x" % fnv1a64(t.to(torch.float32).contiguous().numpy().tobytes())
        if list(t.shape) != record[name]["shape"] or got != record[name]["fnv1a64"]:
            raise gio.GoldenError(f"{path}: {name} differs from the record")
    print(f"{path}: {n_comfy} tensors, converter output matches the {len(record)} recorded tensors")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--diffusers-commit")
    ap.add_argument("--out", default="golden/comfy")
    ap.add_argument("--check", metavar="FILE", help="only check a stored comfy golden against diffusers")
    args = ap.parse_args(argv)
    if args.check:
        return check_comfy_golden(args.check)
    commit = gio.diffusers_commit(args.diffusers_commit)
    gio.determinism(SEED)

    import diffusers
    from diffusers import ZImageTransformer2DModel
    from diffusers.loaders.single_file_utils import (convert_z_image_transformer_checkpoint_to_diffusers,
                                                     infer_diffusers_model_type)
    from safetensors.torch import save_file

    model = ZImageTransformer2DModel(**COMFY_TINY).eval()
    spec = fill_module(model, SEED)
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    comfy = to_comfy(sd, COMFY_TINY["dim"])

    model_type = infer_diffusers_model_type(comfy)
    if model_type != "z-image-turbo":
        raise gio.GoldenError(f"diffusers detects this file as {model_type!r}, not z-image-turbo")
    converted = convert_z_image_transformer_checkpoint_to_diffusers({k: v.clone() for k, v in comfy.items()})
    if set(converted) != set(sd):
        raise gio.GoldenError(f"converter names differ: extra {sorted(set(converted) - set(sd))[:3]}, "
                              f"missing {sorted(set(sd) - set(converted))[:3]}")
    for name, t in converted.items():
        if t.shape != sd[name].shape or not torch.equal(t, sd[name]):
            raise gio.GoldenError(f"converter output {name} differs from the model's parameter")
    # The converted dict must also load strictly into the model class.
    ZImageTransformer2DModel(**COMFY_TINY).load_state_dict(converted, strict=True)

    record = {name: {"shape": list(t.shape), "fnv1a64": "0x%016x" % fnv1a64(t.to(torch.float32).contiguous().numpy().tobytes())}
              for name, t in sorted(converted.items())}
    src_root = os.path.dirname(os.path.dirname(diffusers.__file__))
    meta = gio.provenance(case="comfy_tiny", kind="comfy_single_file", seed=SEED,
                          config_json=json.dumps({"_class_name": "ZImageTransformer2DModel", **COMFY_TINY}, sort_keys=True),
                          synthetic_spec=spec, commit=commit,
                          extra={"diffusers_single_file_utils_blob": gio.git_blob_id(os.path.join(src_root, CONVERTER_FILE)),
                                 "converter": "diffusers.loaders.single_file_utils."
                                              "convert_z_image_transformer_checkpoint_to_diffusers",
                                 "detected_model_type": model_type,
                                 "converted": record})
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "comfy_tiny.safetensors")
    tmp = path + ".tmp"
    save_file(comfy, tmp, metadata=meta)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    print(f"{path}: {len(comfy)} ComfyUI tensors -> {len(converted)} diffusers tensors, "
          f"{os.path.getsize(path)} bytes; converter output equals the model's state_dict")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Dumps AutoencoderKL (Flux VAE) goldens from real diffusers (docs/vae.md, zimage-golden-v1).

Every golden value is computed by diffusers / torch: this script builds diffusers'
AutoencoderKL (or single real-size submodules of it), fills the parameters with the
counter-based synthetic generator (synthetic.py, VAE rule below), feeds seeded inputs,
and records what the modules receive and return through forward (pre-)hooks.

    DIFFUSERS_SRC=/path/to/diffusers/src OMP_NUM_THREADS=1 \\
        ../shared/golden-env/run python3 -B tools/golden/dump_vae.py \\
        --diffusers-commit <sha> [--case NAME ...] [--out golden]

Cases (docs/vae.md, "Goldens"):
  vae_tiny        kind=vae: block_out_channels [16, 32], layers_per_block 1, 8 groups,
                  quant_conv and post_quant_conv on; every submodule hooked; weights
                  shipped as golden/models/vae_tiny (save_pretrained, single file).
  vae_flux_like   kind=vae: [16, 32, 32], layers_per_block 2, 8 groups, no quant convs,
                  scaling 0.3611 / shift 0.1159 (the Flux structure, narrow); blocks hooked;
                  weights shipped sharded as golden/models/vae_flux_like.
  vae_real_blocks kind=vae_modules: real-size (Flux config) single blocks at 512 / 256 /
                  128 channels with synthetic weights (only the spec is stored).
  vae_flux_1024   kind=vae_sampled: the whole AutoencoderKL.decode at the Flux config and full
                  size, latents [1, 16, 128, 128] -> image [1, 3, 1024, 1024], synthetic weights
                  (only the spec is stored); the input and 64 evenly spaced rows of the image
                  (viewed as [3072, 1024]) are stored: decode:in.z, decode.rows, decode.sampled.
                  About 10 TFLOP on one thread (minutes).
Tensors bitwise equal to an earlier one (a block's input is the previous block's output) are
stored once; the metadata "aliases" maps each left-out name to the stored one.
Each kind=vae case also holds whole-model rows: decode (AutoencoderKL.decode),
encode.mean / encode.logvar (AutoencoderKL.encode(x).latent_dist), tiled_decode
(AutoencoderKL.tiled_decode on a latent larger than one tile) and unscale (the
ZImagePipeline's latents / scaling_factor + shift_factor).
"""

from __future__ import annotations

import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import golden_io as gio  # noqa: E402
from dump_dit import Recorder, all_hookable, hook_modules  # noqa: E402
from synthetic import fill_module  # noqa: E402

# The diffusers files whose code the VAE goldens run, relative to the diffusers package root;
# their git blob ids go into the metadata (diffusers_vae_blobs).
VAE_FILES = [
    "models/autoencoders/autoencoder_kl.py",
    "models/autoencoders/vae.py",
    "models/unets/unet_2d_blocks.py",
    "models/resnet.py",
    "models/downsampling.py",
    "models/upsampling.py",
    "models/attention_processor.py",
    "pipelines/z_image/pipeline_z_image.py",
]

# The FLUX.1 VAE config (docs/zimage-facts.md), as its vae/config.json has it.
FLUX = dict(
    in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512], layers_per_block=2,
    act_fn="silu", latent_channels=16, norm_num_groups=32, sample_size=1024, scaling_factor=0.3611,
    shift_factor=0.1159, latents_mean=None, latents_std=None, force_upcast=True, use_quant_conv=False,
    use_post_quant_conv=False, mid_block_add_attention=True,
)

TINY = dict(FLUX, down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
            block_out_channels=[16, 32], layers_per_block=1, norm_num_groups=8, sample_size=32,
            use_quant_conv=True, use_post_quant_conv=True)
FLUX_LIKE = dict(FLUX, down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3,
                 block_out_channels=[16, 32, 32], layers_per_block=2, norm_num_groups=8, sample_size=32)

# Inputs (torch.Generator().manual_seed(seed), drawn in this order):
#   encode x [B, 3, H, W] = randn * 0.5, decode z = randn, tiled z = randn, unscale latents = randn.
MODEL_CASES = {
    "vae_tiny": dict(seed=2001, config=TINY, hooks="all", ship="single",
                     encode=(1, 18, 14), decode=(2, 5, 6), tiled=(1, 24, 20)),
    # tiled (12, 7): the last tile column is 1 latent (4 pixels) wide, narrower than the 8-pixel
    # blend extent: diffusers' blend_h then clips the extent to 4 (see docs/vae.md, "Tiled decode").
    "vae_flux_like": dict(seed=2002, config=FLUX_LIKE, hooks="blocks", ship="sharded",
                          encode=(1, 24, 20), decode=(1, 8, 6), tiled=(1, 12, 7)),
}

# vae_real_blocks: (module path in AutoencoderKL(FLUX), input shape). Block-level hooks only.
REAL_SEED = 2003
REAL_BLOCKS = [
    ("decoder.mid_block.resnets.0", (1, 512, 10, 10)),
    ("decoder.mid_block.attentions.0", (1, 512, 10, 10)),
    ("decoder.up_blocks.0.upsamplers.0", (1, 512, 6, 6)),
    ("decoder.up_blocks.3.resnets.0", (1, 256, 10, 10)),       # 256 -> 128, conv_shortcut
    ("encoder.down_blocks.0.downsamplers.0", (1, 128, 13, 11)),  # odd sizes: pad (0, 1, 0, 1)
]
# vae_flux_1024: the whole decode at full size, sampled rows of the image.
FULL_SEED = 2004
FULL_LATENT = (1, 16, 128, 128)
FULL_ROWS = 64
ALL_CASES = list(MODEL_CASES) + ["vae_real_blocks", "vae_flux_1024"]


# --------------------------------------------------------------------------- synthetic rule


def vae_rule(name: str, shape, module_type: str):
    """(offset, scale) of a VAE parameter (the C++ twin: reference/vae/synthetic_vae.cpp):
    GroupNorm weight 1 + U(+-0.2), every bias U(+-0.05), Conv2d weight U(+-1/sqrt(C_in*kh*kw)),
    Linear weight U(+-1/sqrt(in))."""
    leaf = name.rsplit(".", 1)[-1]
    if module_type == "GroupNorm":
        return (1.0, 0.2) if leaf == "weight" else (0.0, 0.05)
    if leaf == "bias" and module_type in ("Conv2d", "Linear"):
        return 0.0, 0.05
    if leaf == "weight" and module_type == "Conv2d":
        return 0.0, 1.0 / math.sqrt(int(shape[1]) * int(shape[2]) * int(shape[3]))
    if leaf == "weight" and module_type == "Linear":
        return 0.0, 1.0 / math.sqrt(int(shape[1]))
    raise ValueError(f"vae rule: no rule for parameter {name} {list(shape)} of {module_type}")


# --------------------------------------------------------------------------- helpers


def vae_blobs() -> dict:
    import diffusers

    root = os.path.dirname(diffusers.__file__)
    return {f"src/diffusers/{f}": gio.git_blob_id(os.path.join(root, f)) for f in VAE_FILES}


def config_json_of(model) -> str:
    return json.dumps(json.loads(model.to_json_string()), separators=(",", ":"))


def block_paths(model) -> list[str]:
    """The block-level hooks: conv_in/out, norms out, mid block and its resnets/attention,
    every down/up block, their resnets and samplers, encoder, decoder, quant convs."""
    keep = []
    for p in all_hookable(model):
        if not p:
            continue
        parts = p.split(".")
        if p in ("encoder", "decoder", "quant_conv", "post_quant_conv"):
            keep.append(p)
        elif len(parts) == 2 and parts[1] in ("conv_in", "conv_out", "conv_norm_out", "mid_block"):
            keep.append(p)
        elif len(parts) == 3 and parts[1] in ("down_blocks", "up_blocks"):
            keep.append(p)
        elif len(parts) == 4 and parts[1] == "mid_block" and parts[2] in ("resnets", "attentions"):
            keep.append(p)
        elif len(parts) == 5 and parts[1] in ("down_blocks", "up_blocks") and parts[3] in (
                "resnets", "downsamplers", "upsamplers"):
            keep.append(p)
    return keep


def dedupe(tensors: dict) -> tuple[dict, dict]:
    """Stores each distinct tensor once: a tensor bitwise equal (torch.equal, same shape and
    dtype) to an earlier one in name order becomes an alias {name: stored name} in the
    metadata "aliases" (a block's input is usually the previous block's output)."""
    kept, aliases, by_key = {}, {}, {}
    for name in sorted(tensors):
        t = tensors[name]
        key = (tuple(t.shape), t.dtype, float(t.reshape(-1)[0]), float(t.sum()))
        for other in by_key.get(key, []):
            if torch.equal(kept[other], t):
                aliases[name] = other
                break
        else:
            kept[name] = t
            by_key.setdefault(key, []).append(name)
    return kept, aliases


def check_shipped(dst, model, calls):
    """Reloads the shipped folder with diffusers; weights, config and outputs must match bit for bit."""
    from diffusers import AutoencoderKL

    m2 = gio.reload_shipped(dst, model, AutoencoderKL)
    with gio.reference_mode():
        for name, fn, ref in calls:
            if not torch.equal(fn(m2), ref):
                raise gio.GoldenError(f"{dst}: reloaded model's {name} differs")


# --------------------------------------------------------------------------- kind=vae


def run_model_case(name: str, case: dict, args) -> list[str]:
    from diffusers import AutoencoderKL

    seed = case["seed"]
    cfg = case["config"]
    gio.determinism(seed)
    model = AutoencoderKL(**cfg).eval()
    spec = fill_module(model, seed, rule=vae_rule)
    if set(spec["tensors"]) != set(model.state_dict().keys()):
        raise gio.GoldenError(f"{name}: synthetic spec does not cover the state_dict")

    gen = torch.Generator().manual_seed(seed)
    lc = cfg["latent_channels"]
    b, h, w = case["encode"]
    x = 0.5 * torch.randn((b, cfg["in_channels"], h, w), generator=gen)
    b, h, w = case["decode"]
    z = torch.randn((b, lc, h, w), generator=gen)
    b, h, w = case["tiled"]
    zt = torch.randn((b, lc, h, w), generator=gen)
    latents = torch.randn((1, lc, 4, 6), generator=gen)

    rec = Recorder()
    paths = [p for p in all_hookable(model) if p] if case["hooks"] == "all" else block_paths(model)
    handles = hook_modules(model, paths, rec)
    with gio.reference_mode():
        dist = model.encode(x.clone()).latent_dist
        dec = model.decode(z.clone()).sample
    for hd in handles:
        hd.remove()
    missing = sorted(set(paths) - set(rec.fired))
    if missing:
        raise gio.GoldenError(f"{name}: hooked modules never called: {missing}")

    tile_latent = model.tile_latent_min_size
    tile_sample = model.tile_sample_min_size
    if not (zt.shape[-1] > tile_latent or zt.shape[-2] > tile_latent):
        raise gio.GoldenError(f"{name}: the tiled input {tuple(zt.shape)} fits in one {tile_latent} tile")
    with gio.reference_mode():
        tiled = model.tiled_decode(zt.clone()).sample
        # The pipeline's latent -> VAE input (pipeline_z_image.py, decode).
        unscaled = (latents / model.config.scaling_factor) + model.config.shift_factor

    rec.put("encode:in.x", x)
    rec.put("encode.mean", dist.mean)
    rec.put("encode.logvar", dist.logvar)
    rec.put("decode:in.z", z)
    rec.put("decode", dec)
    rec.put("tiled_decode:in.z", zt)
    rec.put("tiled_decode", tiled)
    rec.put("unscale:in.latents", latents)
    rec.put("unscale", unscaled)

    model_dir = f"models/{name}"
    dst = os.path.join(args.out, model_dir)
    gio.save_pretrained_checked(model, dst, case["ship"] == "sharded", "300KB")
    check_shipped(dst, model, [
        ("decode", lambda m: m.decode(z.clone()).sample, dec),
        ("encode mean", lambda m: m.encode(x.clone()).latent_dist.mean, dist.mean),
        ("tiled_decode", lambda m: m.tiled_decode(zt.clone()).sample, tiled),
    ])

    tensors, aliases = dedupe(rec.tensors)
    meta = gio.provenance(
        case=name, kind="vae", seed=seed, config_json=config_json_of(model), synthetic_spec=spec,
        commit=args.commit, model_dir=model_dir,
        extra={
            "aliases": aliases,
            "diffusers_vae_blobs": vae_blobs(),
            "synthetic_rule": "vae_rule (tools/golden/dump_vae.py)",
            "modules": rec.fired,
            "tile": {"tile_latent_min_size": tile_latent, "tile_sample_min_size": tile_sample,
                     "tile_overlap_factor": model.tile_overlap_factor},
            "calls": {
                "encode": "AutoencoderKL.encode(encode:in.x).latent_dist -> .mean, .logvar",
                "decode": "AutoencoderKL.decode(decode:in.z).sample",
                "tiled_decode": "AutoencoderKL.tiled_decode(tiled_decode:in.z).sample",
                "unscale": "(latents / config.scaling_factor) + config.shift_factor (pipeline_z_image.py)",
                "inputs": "Generator(seed): x = 0.5 * randn, z = randn, tiled z = randn, latents = randn",
            },
        },
    )
    path = os.path.join(args.out, f"{name}.safetensors")
    gio.save(path, tensors, meta)
    return [path, dst]


# --------------------------------------------------------------------------- kind=vae_modules


def run_real_blocks(args) -> list[str]:
    from diffusers import AutoencoderKL
    from diffusers.models.attention_processor import Attention
    from diffusers.models.downsampling import Downsample2D
    from diffusers.models.resnet import ResnetBlock2D
    from diffusers.models.upsampling import Upsample2D

    seed = REAL_SEED
    gio.determinism(seed)
    with torch.device("meta"):
        flux = AutoencoderKL(**FLUX)
    config_json = config_json_of(flux)
    flux_shapes = {k: tuple(v.shape) for k, v in flux.state_dict().items()}
    flux_modules = dict(flux.named_modules())

    def build(path):
        """The submodule at `path`, constructed exactly as AutoencoderKL(FLUX) constructs it."""
        ref = flux_modules[path]
        if isinstance(ref, ResnetBlock2D):
            return ResnetBlock2D(in_channels=ref.in_channels, out_channels=ref.out_channels, temb_channels=None,
                                 eps=ref.norm1.eps, groups=ref.norm1.num_groups, dropout=0.0,
                                 time_embedding_norm=ref.time_embedding_norm, non_linearity="silu",
                                 output_scale_factor=ref.output_scale_factor, pre_norm=True)
        if isinstance(ref, Attention):
            c = ref.query_dim
            return Attention(c, heads=ref.heads, dim_head=c // ref.heads, rescale_output_factor=ref.rescale_output_factor,
                             eps=ref.group_norm.eps, norm_num_groups=ref.group_norm.num_groups, spatial_norm_dim=None,
                             residual_connection=True, bias=True, upcast_softmax=True, _from_deprecated_attn_block=True)
        if isinstance(ref, Upsample2D):
            return Upsample2D(ref.channels, use_conv=True, out_channels=ref.out_channels)
        if isinstance(ref, Downsample2D):
            return Downsample2D(ref.channels, use_conv=True, out_channels=ref.out_channels, padding=ref.padding,
                                name="op")
        raise gio.GoldenError(f"{path}: no builder for {type(ref).__name__}")

    spec = {"seed": seed, "tensors": {}}
    modules = {}
    for path, _ in REAL_BLOCKS:
        mod = build(path).eval()
        # Same parameters (names and shapes) as the real model's submodule, and the same repr.
        for n, prm in mod.named_parameters():
            if flux_shapes.get(f"{path}.{n}") != tuple(prm.shape):
                raise gio.GoldenError(f"{path}.{n}: {tuple(prm.shape)} is not a Flux VAE parameter shape")
        if len(list(mod.named_parameters())) != len(list(flux_modules[path].named_parameters())):
            raise gio.GoldenError(f"{path}: parameter count differs from the Flux VAE's submodule")
        if repr(mod) != repr(flux_modules[path]):
            raise gio.GoldenError(f"{path}: module differs from the Flux VAE's: {mod} vs {flux_modules[path]}")
        fill_module(mod, seed, prefix=f"{path}.", rule=vae_rule, spec=spec)
        modules[path] = mod

    gen = torch.Generator().manual_seed(seed)
    inputs = {path: torch.randn(shape, generator=gen) for path, shape in REAL_BLOCKS}
    rec = Recorder()
    handles = []
    for path, mod in modules.items():
        handles += hook_modules(mod, [""], rec, prefix=path)
    with gio.reference_mode():
        for path, mod in modules.items():
            if isinstance(mod, ResnetBlock2D):
                mod(inputs[path].clone(), None)
            else:
                mod(inputs[path].clone())
    for hd in handles:
        hd.remove()
    if sorted(rec.fired) != sorted(modules):
        raise gio.GoldenError(f"vae_real_blocks: fired {rec.fired}")

    meta = gio.provenance(
        case="vae_real_blocks", kind="vae_modules", seed=seed, config_json=config_json, synthetic_spec=spec,
        commit=args.commit,
        extra={
            "aliases": {},
            "diffusers_vae_blobs": vae_blobs(),
            "synthetic_rule": "vae_rule (tools/golden/dump_vae.py)",
            "real_modules": list(modules),
            "calls": {p: ("ResnetBlock2D(x, temb=None)" if isinstance(m, ResnetBlock2D) else f"{type(m).__name__}(x)")
                      for p, m in modules.items()},
            "inputs": "Generator(seed): randn per module, in the order of real_modules",
        },
    )
    path = os.path.join(args.out, "vae_real_blocks.safetensors")
    gio.save(path, rec.tensors, meta)
    return [path]


# --------------------------------------------------------------------------- kind=vae_sampled


def sampled_rows(n_rows: int, count: int) -> list[int]:
    """`count` evenly spaced row indices in [0, n_rows), the first and the last included."""
    return sorted({round(i * (n_rows - 1) / (count - 1)) for i in range(count)})


def run_full_decode(args) -> list[str]:
    from diffusers import AutoencoderKL

    seed = FULL_SEED
    gio.determinism(seed)
    model = AutoencoderKL(**FLUX).eval()
    spec = fill_module(model, seed, rule=vae_rule)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(FULL_LATENT, generator=gen)
    with gio.reference_mode():
        image = model.decode(z).sample
    f = 2 ** (len(FLUX["block_out_channels"]) - 1)
    want = [FULL_LATENT[0], FLUX["out_channels"], f * FULL_LATENT[2], f * FULL_LATENT[3]]
    if list(image.shape) != want:
        raise gio.GoldenError(f"vae_flux_1024: decode gave {list(image.shape)}, expected {want}")
    flat = image.reshape(-1, image.shape[-1])
    rows = sampled_rows(flat.shape[0], FULL_ROWS)
    meta = gio.provenance(
        case="vae_flux_1024", kind="vae_sampled", seed=seed, config_json=config_json_of(model), synthetic_spec=spec,
        commit=args.commit,
        extra={
            "aliases": {},
            "diffusers_vae_blobs": vae_blobs(),
            "synthetic_rule": "vae_rule (tools/golden/dump_vae.py)",
            "image_shape": want,
            "sampled": "decode.sampled = AutoencoderKL.decode(decode:in.z).sample viewed as [rows, width], "
                       "at the rows decode.rows (evenly spaced, first and last included)",
            "inputs": "Generator(seed): decode:in.z = randn",
        },
    )
    out = {"decode:in.z": z, "decode.rows": torch.tensor(rows, dtype=torch.int64),
           "decode.sampled": flat[rows].contiguous()}
    path = os.path.join(args.out, "vae_flux_1024.safetensors")
    gio.save(path, out, meta)
    return [path]


# --------------------------------------------------------------------------- verify


REFERENCE_KEYS = ["format", "case", "kind", "diffusers_version", "diffusers_commit", "diffusers_vae_blobs",
                  "torch_version", "numpy_version", "safetensors_version", "dtype", "seed", "config",
                  "synthetic_weights", "command", "threads", "tf32", "attention_backend", "device", "aliases"]


def check_vae_golden(path, meta, tensors, expect_commit=None):
    """What verify.py checks for the VAE kinds (vae, vae_modules, vae_sampled): provenance in reference mode,
    the blobs of the imported diffusers VAE files, the config, aliases that resolve, and the
    rows each kind promises with their inputs and shapes."""
    gio.check_reference_golden(path, meta, REFERENCE_KEYS, expect_commit)
    blobs = json.loads(meta["diffusers_vae_blobs"])
    if set(blobs) != {f"src/diffusers/{f}" for f in VAE_FILES}:
        raise gio.GoldenError(f"{path}: diffusers_vae_blobs names {sorted(blobs)}")
    try:
        imported = vae_blobs()
    except ImportError:
        imported = None
    if imported and imported != blobs:
        raise gio.GoldenError(f"{path}: diffusers_vae_blobs differ from the imported diffusers source")
    if json.loads(meta["synthetic_weights"])["seed"] != int(meta["seed"]):
        raise gio.GoldenError(f"{path}: synthetic seed differs from seed")
    cfg = json.loads(meta["config"])
    if cfg.get("_class_name") != "AutoencoderKL" or any(k not in cfg for k in FLUX):
        raise gio.GoldenError(f"{path}: config is not a full AutoencoderKL config")
    aliases = json.loads(meta["aliases"])
    for name, target in aliases.items():
        if target not in tensors or name in tensors:
            raise gio.GoldenError(f"{path}: alias {name} -> {target} does not resolve")

    def get(name):
        t = tensors.get(aliases.get(name, name))
        if t is None:
            raise gio.GoldenError(f"{path}: lacks {name}")
        return t

    if meta["kind"] == "vae":
        f = 2 ** (len(cfg["block_out_channels"]) - 1)
        for row, arg in (("decode", "z"), ("tiled_decode", "z")):
            z, out = get(f"{row}:in.{arg}"), get(row)
            if list(out.shape) != [z.shape[0], cfg["out_channels"], f * z.shape[2], f * z.shape[3]]:
                raise gio.GoldenError(f"{path}: {row} {list(out.shape)} for input {list(z.shape)}")
        x = get("encode:in.x")
        for row in ("encode.mean", "encode.logvar"):
            if get(row).shape[:2] != (x.shape[0], cfg["latent_channels"]):
                raise gio.GoldenError(f"{path}: {row} {list(get(row).shape)}")
        if get("unscale").shape != get("unscale:in.latents").shape:
            raise gio.GoldenError(f"{path}: unscale shape")
        for m in json.loads(meta["modules"]):
            get(m)
    elif meta["kind"] == "vae_sampled":
        if cfg != json.loads(json.dumps({**cfg, **FLUX})):
            raise gio.GoldenError(f"{path}: vae_sampled must carry the Flux config")
        z, rows, sampled = get("decode:in.z"), get("decode.rows"), get("decode.sampled")
        shape = json.loads(meta["image_shape"])
        f = 2 ** (len(cfg["block_out_channels"]) - 1)
        if shape != [z.shape[0], cfg["out_channels"], f * z.shape[2], f * z.shape[3]]:
            raise gio.GoldenError(f"{path}: image_shape {shape} for input {list(z.shape)}")
        n_rows = shape[0] * shape[1] * shape[2]
        r = rows.tolist()
        if r != sorted(set(r)) or r[0] < 0 or r[-1] >= n_rows or list(sampled.shape) != [len(r), shape[3]]:
            raise gio.GoldenError(f"{path}: decode.rows / decode.sampled do not fit the image {shape}")
    elif meta["kind"] == "vae_modules":
        if cfg != json.loads(json.dumps({**cfg, **FLUX})):
            raise gio.GoldenError(f"{path}: vae_modules must carry the Flux config")
        for m in json.loads(meta["real_modules"]):
            get(m)
            if not any(k.startswith(f"{m}:in.") for k in list(tensors) + list(aliases)):
                raise gio.GoldenError(f"{path}: {m} has no recorded input")
    else:
        raise gio.GoldenError(f"{path}: kind {meta['kind']!r} is not a VAE kind")


# --------------------------------------------------------------------------- main


def main(argv=None):
    ap = gio.case_parser(__doc__, ALL_CASES)
    ap.add_argument("--verify", action="store_true", help="only check the VAE goldens in --out (check_vae_golden)")
    args = ap.parse_args(argv)
    if args.verify:
        for c in ALL_CASES:
            path = os.path.join(args.out, f"{c}.safetensors")
            with gio.open_golden(path) as fh:
                meta, tensors = fh.metadata(), {k: fh.get_tensor(k) for k in fh.keys()}
            for k, t in tensors.items():
                gio.check_tensor(k, t)
            check_vae_golden(path, meta, tensors, args.diffusers_commit)
            print(f"{path}: ok ({meta['kind']}, {len(tensors)} tensors, {len(json.loads(meta['aliases']))} aliases)")
        return
    written = []
    for c in gio.select_cases(args, ALL_CASES):
        if c == "vae_real_blocks":
            written += run_real_blocks(args)
        elif c == "vae_flux_1024":
            written += run_full_decode(args)
        else:
            written += run_model_case(c, MODEL_CASES[c], args)
    gio.print_written(written, folder_size=True)


if __name__ == "__main__":
    main()

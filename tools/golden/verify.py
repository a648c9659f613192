#!/usr/bin/env python3
"""Loads every golden back with safetensors and checks it (format, metadata keys,
dtypes, NaN/Inf, constant tensors, shipped model folders, synthetic_check tensors and digest
against synthetic.py), then prints a summary.

    DIFFUSERS_SRC=... ../shared/golden-env/run python3 tools/golden/verify.py \
        [--golden golden] [--expect-commit SHA] [--expect-blob SHA]

--expect-blob: the git blob id of src/diffusers/models/transformers/transformer_z_image.py at the
commit (git rev-parse COMMIT:src/diffusers/models/transformers/transformer_z_image.py); every
diffusers golden must record it, which proves the dump imported that exact file.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402

import golden_io as gio  # noqa: E402

MODEL_KEYS = ["format", "case", "kind", "diffusers_version", "diffusers_commit", "torch_version", "numpy_version",
              "safetensors_version", "dtype", "seed", "config", "synthetic_weights", "command", "threads", "tf32",
              "attention_backend", "device"]


def check_golden(path, args):
    with gio.open_golden(path) as f:
        meta = f.metadata() or {}
        names = list(f.keys())
        tensors = {k: f.get_tensor(k) for k in names}
    if meta.get("format") != gio.FORMAT:
        raise gio.GoldenError(f"{path}: format {meta.get('format')!r}")
    kind = meta.get("kind")
    if kind in ROPE_KINDS:
        check_reference_meta(path, meta, args)
        check_rope(path, kind, meta, tensors)
    elif kind in ("model", "modules"):
        check_reference_meta(path, meta, args)
        cfg = json.loads(meta["config"])
        spec = json.loads(meta["synthetic_weights"])
        if kind == "model":
            for i in range(len(json.loads(meta["items"]))):
                for k in (f"x.{i}", f"cap_feats.{i}", f"sample.{i}", f"patchify.x_pos_ids.{i}"):
                    if k not in tensors:
                        raise gio.GoldenError(f"{path}: lacks {k}")
                if tensors[f"x.{i}"].shape != tensors[f"sample.{i}"].shape:
                    raise gio.GoldenError(f"{path}: sample.{i} shape differs from x.{i}")
        for a in range(len(cfg["axes_dims"])):
            tab = tensors.get(f"rope_embedder.freqs_cis.{a}")
            if tab is None or list(tab.shape) != [cfg["axes_lens"][a], cfg["axes_dims"][a] // 2, 2]:
                raise gio.GoldenError(f"{path}: rope table {a} missing or misshapen")
    elif kind == "pipeline":
        check_reference_meta(path, meta, args, weight_seed=True)
        check_pipeline(path, meta, tensors)
    elif kind in ("scheduler", "cfg", "torch_randn"):
        from dump_pipeline_parts import check_pipeline_golden  # the dumper owns these kinds' checks
        check_pipeline_golden(path, meta, tensors, args.expect_commit)
    elif kind in ("vae", "vae_modules", "vae_sampled"):
        from dump_vae import check_vae_golden  # the dumper owns these kinds' checks
        check_vae_golden(path, meta, tensors, args.expect_commit)
    elif kind == "synthetic":
        check_synthetic(path, meta, tensors)
    elif kind == "model_bf16":
        check_model_bf16(path, meta, tensors, args)
    elif kind == "sdpa_peer":
        check_sdpa_peer(path, meta, tensors)
    elif kind == "pipeline_bf16":
        check_pipeline_bf16(path, meta, tensors, args)
    elif kind in ("knob_skip_refiner", "knob_long_prompt"):
        check_reference_meta(path, meta, args, model_config=kind == "knob_skip_refiner")
        from dump_knobs import check_knob_golden  # the dumper owns these kinds' checks
        check_knob_golden(path, meta, tensors)
    else:
        raise gio.GoldenError(f"{path}: kind {kind!r}")
    for k, t in tensors.items():
        if t.dtype not in (torch.float32, torch.int32, torch.int64):
            raise gio.GoldenError(f"{path}: {k} has dtype {t.dtype}")
        gio.check_tensor(k, t)
    size = os.path.getsize(path)
    nel = sum(t.numel() for t in tensors.values())
    print(f"{os.path.basename(path)}: case={meta.get('case')} kind={kind} {len(names)} tensors, {nel} elements, "
          f"{size} bytes ({size / 2**20:.2f} MiB)")
    return meta


ROPE_KINDS = ("rope_table", "rope_gather", "rope_sweep")


def check_reference_meta(path, meta, args, weight_seed=False, model_config=True):
    """The provenance checks every diffusers golden passes (all kinds but synthetic_check)."""
    gio.check_reference_golden(path, meta, MODEL_KEYS, args.expect_commit)
    if args.expect_blob and meta.get("diffusers_z_image_blob") != args.expect_blob:
        raise gio.GoldenError(f"{path}: transformer_z_image.py blob {meta.get('diffusers_z_image_blob')} "
                              f"!= {args.expect_blob}: the dump did not import the expected diffusers source")
    # A pipeline golden's seed is the generator's; its synthetic weights have their own seed.
    if not weight_seed and json.loads(meta["synthetic_weights"])["seed"] != int(meta["seed"]):
        raise gio.GoldenError(f"{path}: synthetic seed differs from seed")
    cfg = json.loads(meta["config"])
    for k in () if not model_config else ("all_patch_size", "all_f_patch_size", "in_channels", "dim", "n_layers", "n_refiner_layers", "n_heads",
              "n_kv_heads", "norm_eps", "qk_norm", "cap_feat_dim", "rope_theta", "t_scale", "axes_dims", "axes_lens"):
        if k not in cfg:
            raise gio.GoldenError(f"{path}: config lacks {k}")


@contextlib.contextmanager
def bf16_pair(path, meta, args, keys, what, same):
    """What check_model_bf16 and check_pipeline_bf16 share: the metadata keys, bf16 reference mode
    (the error names `what`), the expected commit and blob, and the fnv1a64 of every input against
    the fp32 golden meta["fp32_golden"]; yields (fp32 golden handle, its metadata, its path) and,
    when the caller's checks pass, requires the `same` keys to equal the fp32 golden's."""
    from synthetic import fnv1a64_hex
    for k in keys:
        if k not in meta:
            raise gio.GoldenError(f"{path}: metadata lacks {k}")
    if (meta["dtype"], meta["threads"], meta["attention_backend"], meta["device"], meta["fp32_rerun_bitwise"]) != \
            ("bfloat16", "1", "math", "cpu", "true"):
        raise gio.GoldenError(f"{path}: not a reference-mode {what}")
    if args.expect_commit and meta["diffusers_commit"] != args.expect_commit:
        raise gio.GoldenError(f"{path}: diffusers_commit {meta['diffusers_commit']} != {args.expect_commit}")
    if args.expect_blob and meta["diffusers_z_image_blob"] != args.expect_blob:
        raise gio.GoldenError(f"{path}: transformer_z_image.py blob differs from {args.expect_blob}")
    src = os.path.join(os.path.dirname(path), meta["fp32_golden"])
    with gio.open_golden(src) as f:
        m32 = f.metadata()
        for name, want in json.loads(meta["inputs_fnv1a64"]).items():
            got = fnv1a64_hex(f.get_tensor(name))
            if got != want:
                raise gio.GoldenError(f"{path}: input {name} digest {want} is not {src}'s ({got})")
        yield f, m32, src
    for k in same:
        if meta[k] != m32[k]:
            raise gio.GoldenError(f"{path}: {k} differs from {src}")


def check_model_bf16(path, meta, tensors, args):
    """diffusers bf16 samples (tools/golden/dump_dit_bf16.py): provenance equal to the fp32 golden's,
    the same inputs (fnv1a64 digests), one sample per item, every value a bfloat16 number."""
    keys = ("case", "fp32_golden", "diffusers_commit", "diffusers_z_image_blob", "torch_version", "dtype",
            "inputs_fnv1a64", "fp32_rerun_bitwise", "command", "threads", "attention_backend", "device")
    with bf16_pair(path, meta, args, keys, "bf16 golden", ("diffusers_commit", "diffusers_z_image_blob", "case")) \
            as (f, m32, src):
        n = len(json.loads(m32["items"]))
        for i in range(n):
            s = tensors.get(f"sample.{i}")
            if s is None or s.shape != f.get_tensor(f"sample.{i}").shape:
                raise gio.GoldenError(f"{path}: sample.{i} missing or misshapen")
            if not torch.equal(s, s.to(torch.bfloat16).float()):
                raise gio.GoldenError(f"{path}: sample.{i} holds values that are not bfloat16 numbers")
    if set(tensors) != {f"sample.{i}" for i in range(n)}:
        raise gio.GoldenError(f"{path}: tensors other than sample.{{i}}")


def check_pipeline_bf16(path, meta, tensors, args):
    """diffusers' pipeline with a bf16 transformer (tools/golden/dump_pipeline_bf16.py): provenance
    equal to the fp32 pipeline golden's, the same inputs (fnv1a64 digests), the same tensors and shapes
    as the fp32 golden's outputs."""
    keys = ("case", "fp32_golden", "model_dir", "options", "diffusers_commit", "diffusers_z_image_blob", "dtype",
            "inputs_fnv1a64", "fp32_rerun_bitwise", "command", "threads", "attention_backend", "device")
    same = ("diffusers_commit", "diffusers_z_image_blob", "case", "model_dir", "options")
    with bf16_pair(path, meta, args, keys, "bf16 pipeline golden", same) as (f, m32, src):
        steps = json.loads(m32["options"])["steps"]
        want = {f"latents.step.{k}" for k in range(steps)} | {f"model_output.{k}" for k in range(steps)} | \
            {"image.decoded", "image.uint8"}
        if set(tensors) != want:
            raise gio.GoldenError(f"{path}: tensors {sorted(set(tensors) ^ want)} unexpected or missing")
        for k in want:
            if tensors[k].shape != f.get_tensor(k).shape:
                raise gio.GoldenError(f"{path}: {k} shape differs from {src}'s")


def check_sdpa_peer(path, meta, tensors):
    """torch's fp32 SDPA error figures (tools/golden/dump_sdpa_peer.py)."""
    for k in ("torch_version", "torch_cpu_capability", "date", "script", "dtype", "reference_dtype", "command",
              "threads", "attention_backend", "sdpa_peer"):
        if k not in meta:
            raise gio.GoldenError(f"{path}: metadata lacks {k}")
    if meta["threads"] != "1" or meta["torch_cpu_capability"] not in ("AVX2", "AVX512"):
        raise gio.GoldenError(f"{path}: threads {meta['threads']}, capability {meta['torch_cpu_capability']}")
    recs = json.loads(meta["sdpa_peer"])
    for key, r in recs.items():
        L = r["shape"][1]
        if key != f"L{L}" or list(tensors[f"qkv.head.{key}"].shape) != [3, 8]:
            raise gio.GoldenError(f"{path}: record {key} malformed")
        for fig in ("fp32_math", "fp32_default"):
            c = r[fig]
            if c["nonfinite"] or not (0 < c["rel_rms"] <= c["max_n"]) or c["n"] != L * r["shape"][2] * r["shape"][3]:
                raise gio.GoldenError(f"{path}: {key} {fig} figures not sane: {c}")


def check_pipeline(path, meta, tensors):
    """End-to-end ZImagePipeline goldens (tools/golden/dump_pipeline.py)."""
    opt = json.loads(meta["options"])
    folder = os.path.join(os.path.dirname(path), meta["model_dir"])
    for need in ("model_index.json", "transformer/config.json", "vae/config.json", "scheduler/scheduler_config.json"):
        if not os.path.exists(os.path.join(folder, need)):
            raise gio.GoldenError(f"{path}: pipeline folder {folder} lacks {need}")
    n_prompts = sum(1 for k in tensors if k.startswith("prompt_embeds."))
    b = n_prompts * opt["per_prompt"]
    lat = _shape(path, tensors, "latents.init", [b, 16, 2 * (opt["height"] // 16), 2 * (opt["width"] // 16)])
    for k in range(opt["steps"]):
        _shape(path, tensors, f"latents.step.{k}", lat.shape)
        _shape(path, tensors, f"model_output.{k}", lat.shape)
    _shape(path, tensors, "timesteps", [opt["steps"]])
    _shape(path, tensors, "sigmas", [opt["steps"] + 1])
    _shape(path, tensors, "image.decoded", [b, 3, opt["height"], opt["width"]])
    _shape(path, tensors, "image.uint8", [b, opt["height"], opt["width"], 3], torch.int32)


def _shape(path, tensors, name, shape, dtype=torch.float32):
    t = tensors.get(name)
    if t is None or list(t.shape) != list(shape) or t.dtype != dtype:
        got = None if t is None else (list(t.shape), t.dtype)
        raise gio.GoldenError(f"{path}: {name} missing or not {list(shape)} {dtype} (got {got})")
    return t


def check_rope(path, kind, meta, tensors):
    """Shapes and internal consistency of the RoPE goldens (tools/golden/dump_rope.py)."""
    cfg = json.loads(meta["config"])
    dims, lens = cfg["axes_dims"], cfg["axes_lens"]
    if kind == "rope_table":
        want = set()
        for a, (d, e) in enumerate(zip(dims, lens)):
            tab = _shape(path, tensors, f"rope_embedder.freqs_cis.{a}", [e, d // 2, 2])
            ang = _shape(path, tensors, f"rope_embedder.angles.{a}", [e, d // 2])
            if not torch.equal(torch.view_as_real(torch.polar(torch.ones_like(ang), ang)), tab):
                raise gio.GoldenError(f"{path}: freqs_cis.{a} != polar(1, angles.{a})")
            want |= {f"rope_embedder.freqs_cis.{a}", f"rope_embedder.angles.{a}"}
        if set(tensors) != want:
            raise gio.GoldenError(f"{path}: unexpected tensors {sorted(set(tensors) - want)}")
    elif kind == "rope_gather":
        hd = sum(dims)
        ids = _shape(path, tensors, "rope_embedder:in.ids", [64, 3], torch.int32)
        i = torch.arange(64)
        want_ids = torch.stack([1504 + i % 32, (i * 37) % 512, (i * 101 + 5) % 512], 1).to(torch.int32)
        if not torch.equal(ids, want_ids):
            raise gio.GoldenError(f"{path}: rope_embedder:in.ids is not the documented id rule")
        f = _shape(path, tensors, "rope_embedder", [64, hd // 2, 2])
        _shape(path, tensors, "rotary:in.x", [1, 64, 2, hd])
        if not torch.equal(_shape(path, tensors, "rotary:in.freqs_cis", [1, 64, hd // 2, 2])[0], f):
            raise gio.GoldenError(f"{path}: rotary:in.freqs_cis != rope_embedder")
        q = _shape(path, tensors, "rotary.q", [1, 64, 2, hd])
        if not torch.equal(q, _shape(path, tensors, "rotary.k", [1, 64, 2, hd])):
            raise gio.GoldenError(f"{path}: rotary.q != rotary.k (identity projections)")
        _shape(path, tensors, "rotary.attention", [1, 64, 2 * hd])
    else:  # rope_sweep
        inp = json.loads(meta["sweep_inputs"])
        xshape = inp["x"]["shape"]
        sweep = json.loads(meta["sweep"])
        ok = [e["caption_len"] for e in sweep if e["ok"]]
        for e in sweep:
            if not e["ok"] and (not e.get("error_type") or not e.get("error")):
                raise gio.GoldenError(f"{path}: failed sweep entry {e} lacks its error")
        for L in ok:
            _shape(path, tensors, f"sample.L{L}", xshape)
        ext = json.loads(meta["extension"])
        for L in ext["caption_lens"]:
            _shape(path, tensors, f"sample_ext4096.L{L}", xshape)
        samples = {k for k in tensors if k.startswith("sample.")}
        if samples != {f"sample.L{L}" for L in ok}:
            raise gio.GoldenError(f"{path}: sample tensors {sorted(samples)} differ from the ok sweep entries")
        if meta.get("extension_inside_table_bitwise") not in ("true", "false"):
            raise gio.GoldenError(f"{path}: extension_inside_table_bitwise missing")


def check_synthetic(path, meta, tensors):
    """synthetic_check: every stored tensor, and every fnv1a64 digest, equals its regeneration."""
    from synthetic import fnv1a64_hex, synthetic

    spec = json.loads(meta["synthetic_check"])
    stored = sorted(k for k, s in spec.items() if "fnv1a64" not in s)
    if stored != sorted(tensors):
        raise gio.GoldenError(f"{path}: stored tensors {sorted(tensors)} != non-digest checks {stored}")
    for k, s in spec.items():
        v = synthetic(s["seed"], s["name"], s["shape"], s["offset"], s["scale"])
        if "fnv1a64" in s:
            got = fnv1a64_hex(v)
            if got != s["fnv1a64"]:
                raise gio.GoldenError(f"{path}: {k}: fnv1a64 {got} != stored {s['fnv1a64']}")
        elif not torch.equal(torch.from_numpy(v), tensors[k]):
            raise gio.GoldenError(f"{path}: {k} differs from its synthetic regeneration")


def check_model_dir(d, meta):
    files = sorted(os.listdir(d))
    index = os.path.join(d, "diffusion_pytorch_model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            wmap = json.load(f)["weight_map"]
        shards = sorted(set(wmap.values()))
        if sorted(x for x in files if x.endswith(".safetensors")) != shards:
            raise gio.GoldenError(f"{d}: shard files differ from the index")
    else:
        shards = ["diffusion_pytorch_model.safetensors"]
        wmap = None
    names = {}
    for s in shards:
        with safe_open(os.path.join(d, s), framework="pt") as f:
            for k in f.keys():
                if k in names:
                    raise gio.GoldenError(f"{d}: {k} in two shards")
                t = f.get_tensor(k)
                if t.dtype != torch.float32:
                    raise gio.GoldenError(f"{d}: {k} is {t.dtype}")
                names[k] = t
                if wmap is not None and wmap[k] != s:
                    raise gio.GoldenError(f"{d}: index puts {k} in {wmap[k]}, found in {s}")
    spec = json.loads(meta["synthetic_weights"])
    if set(spec["tensors"]) != set(names):
        raise gio.GoldenError(f"{d}: parameters differ from the golden's synthetic_weights")
    from synthetic import synthetic
    for k, s in spec["tensors"].items():
        ref = torch.from_numpy(synthetic(spec["seed"], k, s["shape"], s["offset"], s["scale"]))
        if not torch.equal(ref, names[k]):
            raise gio.GoldenError(f"{d}: {k} differs from its synthetic regeneration")
    with open(os.path.join(d, "config.json")) as f:
        if json.load(f) != json.loads(meta["config"]):
            raise gio.GoldenError(f"{d}: config.json differs from the golden's config")
    size = sum(os.path.getsize(os.path.join(d, x)) for x in files)
    print(f"  {d}: {len(shards)} safetensors file(s){' + index' if wmap else ''}, {len(names)} tensors, "
          f"{sum(t.numel() for t in names.values())} parameters, {size} bytes; equal to the synthetic spec")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--golden", default="golden")
    ap.add_argument("--expect-commit", default=None)
    ap.add_argument("--expect-blob", default=None)
    args = ap.parse_args(argv)
    total = 0
    for path in sorted(glob.glob(os.path.join(args.golden, "*.safetensors"))):
        meta = check_golden(path, args)
        if meta.get("model_dir") and meta.get("kind") != "pipeline_bf16":  # its fp32 golden's folder, checked there
            # A pipeline folder's synthetic weights are its transformer's (the VAE keeps torch's seeded init).
            sub = "transformer" if meta.get("kind") == "pipeline" else ""
            check_model_dir(os.path.join(args.golden, meta["model_dir"], sub), meta)
    for root, _, files in os.walk(args.golden):
        total += sum(os.path.getsize(os.path.join(root, x)) for x in files)
    print(f"total {total} bytes ({total / 2**20:.2f} MiB) under {args.golden}/")


if __name__ == "__main__":
    main()

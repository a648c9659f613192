#!/usr/bin/env python3
"""Dumps the RoPE goldens from real diffusers (docs/goldens.md, zimage-golden-v1).

Every golden value is computed by diffusers / torch (never by this project's code):

- rope_table  (kind rope_table):  the real-size RoPE tables of Z-Image-Turbo
  (`RopeEmbedder.precompute_freqs_cis([32,48,48], [1536,512,512], theta=256)`)
  and the float32 angle tables diffusers passes to `torch.polar` (captured from
  that very call).
- rope_gather (kind rope_gather): a RopeEmbedder gather at 64 positions near the
  end of the 1536-row axis-0 table, and the rotation exactly as diffusers'
  `ZSingleStreamAttnProcessor` applies it (q/k captured at `dispatch_attention_fn`).
- rope_sweep  (kind rope_sweep):  a narrow ZImageTransformer2DModel at the real
  RoPE config, run for caption lengths around every limit (1504 is the largest that
  fits the 1536-row table); which lengths run and which fail, and with which error;
  plus the same model with a 4096-row axis-0 table past the limit.

    DIFFUSERS_SRC=/path/to/diffusers/src OMP_NUM_THREADS=1 \
        ../shared/golden-env/run python3 -B tools/golden/dump_rope.py \
        --diffusers-commit <sha> [--case NAME ...] [--out golden]

See tools/golden/README.md, section "RoPE goldens".
"""

from __future__ import annotations

import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import golden_io as gio  # noqa: E402
from dump_dit import TURBO, TURBO_N_PARAMS, Recorder, RopeSpy, config_json_of  # noqa: E402
from synthetic import fill_module, synthetic  # noqa: E402

ALL_CASES = ["rope_table", "rope_gather", "rope_sweep"]
SEEDS = {"rope_table": 1006, "rope_gather": 1007, "rope_sweep": 1008}

# rope_gather
GATHER_N = 64
GATHER_HEADS = 2
GATHER_HEAD_DIM = 128  # sum(axes_dims) of the Turbo config

# rope_sweep: a narrow model at the real RoPE config.
SWEEP_CONFIG = dict(
    all_patch_size=[2], all_f_patch_size=[1], in_channels=16, dim=256, n_layers=2, n_refiner_layers=2,
    n_heads=2, n_kv_heads=2, norm_eps=1e-5, qk_norm=True, cap_feat_dim=64, rope_theta=256.0,
    t_scale=1000.0, axes_dims=[32, 48, 48], axes_lens=[1536, 512, 512],
)
SWEEP_LENS = [1, 31, 32, 33, 511, 512, 513, 992, 993, 1472, 1503, 1504, 1505, 1534, 1535, 1536, 2048]
SWEEP_FULL_L = 1504  # the full parity case: the largest caption that fits the 1536-row table
SWEEP_X_SHAPE = [16, 1, 8, 8]
UNIT_UNIFORM = math.sqrt(3.0)  # uniform on [-s, s] with s = sqrt(3) has unit variance
SWEEP_T = [0.6]
EXT_AXES_LENS = [4096, 512, 512]
EXT_LENS = [1505, 2048, 3000]
LAYERS_MAX_BYTES = 2 * 2**20


def turbo_config_json() -> str:
    """The Turbo config as diffusers writes it (meta-device model, parameter count checked)."""
    from diffusers.models.transformers.transformer_z_image import ZImageTransformer2DModel

    with torch.device("meta"):
        turbo = ZImageTransformer2DModel(**TURBO)
    n = sum(p.numel() for p in turbo.parameters())
    if n != TURBO_N_PARAMS:
        raise gio.GoldenError(f"Turbo config gives {n} parameters, expected {TURBO_N_PARAMS}")
    return config_json_of(turbo)


def no_weights(seed: int) -> dict:
    return {"seed": int(seed), "tensors": {}}


# --------------------------------------------------------------------------- rope_table


def run_rope_table(args) -> str:
    from diffusers.models.transformers.transformer_z_image import RopeEmbedder

    seed = SEEDS["rope_table"]
    gio.determinism(seed)
    dims, lens, theta = TURBO["axes_dims"], TURBO["axes_lens"], TURBO["rope_theta"]

    # Capture the angle tables diffusers itself hands to torch.polar (its `freqs` after
    # torch.outer(...).float()), by wrapping torch.polar for the duration of the call.
    angles = []
    orig_polar = torch.polar

    def polar_spy(abs_, angle, *a, **kw):
        angles.append(angle.detach().clone())
        return orig_polar(abs_, angle, *a, **kw)

    torch.polar = polar_spy
    try:
        tables = RopeEmbedder.precompute_freqs_cis(dims, lens, theta=theta)
    finally:
        torch.polar = orig_polar
    if len(angles) != len(dims) or len(tables) != len(dims):
        raise gio.GoldenError(f"precompute_freqs_cis called torch.polar {len(angles)} times, expected {len(dims)}")

    rec = Recorder()
    for a, (d, e) in enumerate(zip(dims, lens)):
        tab, ang = tables[a], angles[a]
        if tab.dtype != torch.complex64 or list(tab.shape) != [e, d // 2]:
            raise gio.GoldenError(f"table {a}: {tab.dtype} {list(tab.shape)}")
        if ang.dtype != torch.float32 or list(ang.shape) != [e, d // 2]:
            raise gio.GoldenError(f"angles {a}: {ang.dtype} {list(ang.shape)}")
        # Cross-check the captured angles with the formula of the same source (torch, float64 then .float()).
        freqs = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
        ref = torch.outer(torch.arange(e, dtype=torch.float64), freqs).float()
        if not torch.equal(ref, ang):
            raise gio.GoldenError(f"angles {a}: captured torch.polar angle differs from outer(...).float()")
        if not torch.equal(torch.polar(torch.ones_like(ang), ang).to(torch.complex64), tab):
            raise gio.GoldenError(f"table {a}: differs from polar(1, angles)")
        rec.put(f"rope_embedder.freqs_cis.{a}", tab)
        rec.put(f"rope_embedder.angles.{a}", ang)

    meta = gio.provenance(
        case="rope_table", kind="rope_table", seed=seed, config_json=turbo_config_json(),
        synthetic_spec=no_weights(seed), commit=args.commit,
        extra={
            "rope_table": {
                "call": f"RopeEmbedder.precompute_freqs_cis({dims}, {lens}, theta={theta})",
                "freqs_cis": "rope_embedder.freqs_cis.{a} = view_as_real(table a) [axes_lens[a], axes_dims[a]/2, 2]",
                "angles": "rope_embedder.angles.{a} = the float32 angle argument diffusers passes to torch.polar "
                          "(torch.outer(arange(len, f64), 1/theta**(arange(0,d,2,f64)/d)).float()) "
                          "[axes_lens[a], axes_dims[a]/2]",
            },
        },
    )
    path = os.path.join(args.out, "rope_table.safetensors")
    gio.save(path, rec.tensors, meta)
    return path


# --------------------------------------------------------------------------- rope_gather


def gather_ids() -> torch.Tensor:
    i = torch.arange(GATHER_N, dtype=torch.int64)
    ids = torch.stack([1504 + (i % 32), (i * 37) % 512, (i * 101 + 5) % 512], dim=1)
    return ids.to(torch.int32)


def run_rope_gather(args) -> str:
    import diffusers.models.transformers.transformer_z_image as zmod
    from diffusers.models.attention_processor import Attention
    from diffusers.models.transformers.transformer_z_image import RopeEmbedder, ZSingleStreamAttnProcessor

    seed = SEEDS["rope_gather"]
    gio.determinism(seed)
    dims, lens, theta = TURBO["axes_dims"], TURBO["axes_lens"], TURBO["rope_theta"]
    if sum(dims) != GATHER_HEAD_DIM:
        raise gio.GoldenError("head_dim != sum(axes_dims)")
    rec = Recorder()

    ids = gather_ids()
    rope = RopeEmbedder(theta=theta, axes_dims=dims, axes_lens=lens)
    with gio.reference_mode():
        freqs = rope(ids)  # complex64 [64, 64]
    if freqs.dtype != torch.complex64 or list(freqs.shape) != [GATHER_N, GATHER_HEAD_DIM // 2]:
        raise gio.GoldenError(f"gather: {freqs.dtype} {list(freqs.shape)}")
    # The gather reads the cached tables: check it against them (rows of each axis, concatenated).
    want = torch.cat([rope.freqs_cis[a][ids[:, a].long()] for a in range(len(dims))], dim=-1)
    if not torch.equal(want, freqs):
        raise gio.GoldenError("gather differs from the table rows")
    rec.put("rope_embedder:in.ids", ids)
    rec.put("rope_embedder", freqs)

    dim = GATHER_HEADS * GATHER_HEAD_DIM
    attn = Attention(query_dim=dim, cross_attention_dim=None, dim_head=GATHER_HEAD_DIM, heads=GATHER_HEADS,
                     qk_norm=None, eps=1e-5, bias=False, out_bias=False,
                     processor=ZSingleStreamAttnProcessor()).eval()
    lin = [attn.to_q, attn.to_k, attn.to_v, attn.to_out[0]]
    with torch.no_grad():
        for m in lin:
            if m.bias is not None or list(m.weight.shape) != [dim, dim]:
                raise gio.GoldenError(f"attention projection {m}: unexpected shape or bias")
            m.weight.copy_(torch.eye(dim))
    if attn.norm_q is not None or attn.norm_k is not None:
        raise gio.GoldenError("qk_norm=None left a norm in place")

    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn((1, GATHER_N, dim), generator=gen)
    fcis = freqs.unsqueeze(0)  # [1, 64, 64] complex64
    with gio.reference_mode():
        for m in lin:
            if not torch.equal(m(hidden), hidden):
                raise gio.GoldenError("identity projection is not exact")

    captured = []
    orig = zmod.dispatch_attention_fn

    def spy(query, key, value, *a, **kw):
        captured.append({"query": query.detach().clone(), "key": key.detach().clone(),
                         "value": value.detach().clone(), "kwargs": sorted(kw)})
        return orig(query, key, value, *a, **kw)

    zmod.dispatch_attention_fn = spy
    try:
        with gio.reference_mode():
            out = attn(hidden, attention_mask=None, freqs_cis=fcis)
    finally:
        zmod.dispatch_attention_fn = orig
    if len(captured) != 1:
        raise gio.GoldenError(f"dispatch_attention_fn called {len(captured)} times")
    q, k, v = captured[0]["query"], captured[0]["key"], captured[0]["value"]
    x4 = hidden.view(1, GATHER_N, GATHER_HEADS, GATHER_HEAD_DIM)
    # Layout: [B, L, H, D] (H=2 != L=64, so the shape alone decides); v is the unrotated input.
    layout = list(q.shape)
    if layout != [1, GATHER_N, GATHER_HEADS, GATHER_HEAD_DIM] or list(k.shape) != layout:
        raise gio.GoldenError(f"dispatch_attention_fn got query {list(q.shape)}, key {list(k.shape)}")
    if not torch.equal(v, x4):
        raise gio.GoldenError("value at dispatch_attention_fn is not the [B, L, H, D] view of the input")
    if not torch.equal(q, k):
        raise gio.GoldenError("q and k differ although both projections are the identity")
    if torch.equal(q, x4):
        raise gio.GoldenError("RoPE left q unchanged")
    if list(out.shape) != [1, GATHER_N, dim]:
        raise gio.GoldenError(f"attention output {list(out.shape)}")

    rec.put("rotary:in.x", x4)
    rec.put("rotary:in.freqs_cis", fcis)
    rec.put("rotary.q", q)
    rec.put("rotary.k", k)
    rec.put("rotary.attention", out)

    meta = gio.provenance(
        case="rope_gather", kind="rope_gather", seed=seed, config_json=turbo_config_json(),
        synthetic_spec=no_weights(seed), commit=args.commit,
        extra={
            "gather_ids": "ids [64, 3] int32: (1504 + i % 32, (i * 37) % 512, (i * 101 + 5) % 512), i = 0..63",
            "rope_embedder": f"RopeEmbedder(theta={theta}, axes_dims={dims}, axes_lens={lens})(ids), "
                             "complex64 [64, 64] stored as view_as_real [64, 64, 2]",
            "attention": "diffusers Attention(query_dim=256, cross_attention_dim=None, dim_head=128, heads=2, "
                         "qk_norm=None, eps=1e-5, bias=False, out_bias=False, processor=ZSingleStreamAttnProcessor()) "
                         "with to_q, to_k, to_v, to_out.0 weights = identity [256, 256]; "
                         "call attn(hidden_states, attention_mask=None, freqs_cis=rotary:in.freqs_cis)",
            "inputs": "hidden_states = torch.randn([1, 64, 256], generator=torch.Generator().manual_seed(seed)); "
                      "rotary:in.x = hidden_states.view(1, 64, 2, 128) (q and k before rotation)",
            "rotary_capture": "rotary.q / rotary.k = the query / key arguments of "
                              "transformer_z_image.dispatch_attention_fn (after RoPE), unchanged",
            "dispatch_attention_layout": f"[B, L, H, D] = {layout}",
            "weights": "identity (no synthetic weights)",
        },
    )
    path = os.path.join(args.out, "rope_gather.safetensors")
    gio.save(path, rec.tensors, meta)
    return path


# --------------------------------------------------------------------------- rope_sweep


def sweep_x(seed: int) -> torch.Tensor:
    return torch.from_numpy(synthetic(seed, "x", SWEEP_X_SHAPE, 0.0, UNIT_UNIFORM))


def sweep_cap(seed: int, L: int) -> torch.Tensor:
    return torch.from_numpy(synthetic(seed, f"cap_feats.L{L}", [L, SWEEP_CONFIG["cap_feat_dim"]], 0.0, UNIT_UNIFORM))


def build_sweep_model(seed: int, axes_lens):
    from diffusers.models.transformers.transformer_z_image import ZImageTransformer2DModel

    model = ZImageTransformer2DModel(**{**SWEEP_CONFIG, "axes_lens": list(axes_lens)}).eval()
    spec = fill_module(model, seed)
    if set(spec["tensors"]) != set(model.state_dict().keys()):
        raise gio.GoldenError("rope_sweep: synthetic spec does not cover the state_dict")
    return model, spec


def forward(model, x, t, cap):
    with gio.reference_mode():
        out = model([x.clone()], t.clone(), [cap.clone()], return_dict=True).sample
    if len(out) != 1 or list(out[0].shape) != SWEEP_X_SHAPE:
        raise gio.GoldenError(f"unexpected output {[list(o.shape) for o in out]}")
    return out[0]


def run_rope_sweep(args) -> str:
    seed = SEEDS["rope_sweep"]
    gio.determinism(seed)
    model, spec = build_sweep_model(seed, SWEEP_CONFIG["axes_lens"])
    x = sweep_x(seed)
    t = torch.tensor(SWEEP_T, dtype=torch.float32)
    rec = Recorder()

    sweep = []
    samples = {}
    for L in SWEEP_LENS:
        cap = sweep_cap(seed, L)
        handles = []
        inner_rope = model.rope_embedder
        if L == SWEEP_FULL_L:
            # Image positions (patchify), the image freqs the model gathers, and the last main layer.
            sub = Recorder()
            model.rope_embedder = RopeSpy(inner_rope, sub)
            orig_patchify = model.patchify_and_embed

            def patchify_spy(all_image, all_cap_feats, patch_size, f_patch_size, sub=sub, orig=orig_patchify):
                res = orig(all_image, all_cap_feats, patch_size, f_patch_size)
                sub.put("x_pos_ids", res[3][0])
                sub.put("cap_pos_ids", res[4][0])
                return res

            model.patchify_and_embed = patchify_spy
            last = model.layers[-1]
            handles.append(last.register_forward_hook(lambda m, a, o, sub=sub: sub.put("layers.last", o)))
        try:
            s = forward(model, x, t, cap)
            entry = {"caption_len": L, "ok": True, "error_type": None, "error": None}
            samples[L] = s
            rec.put(f"sample.L{L}", s)
        except Exception as e:  # noqa: BLE001 - recording what diffusers raises is the point
            entry = {"caption_len": L, "ok": False, "error_type": type(e).__name__, "error": str(e)}
        finally:
            for h in handles:
                h.remove()
            if L == SWEEP_FULL_L:
                model.rope_embedder = inner_rope
                del model.patchify_and_embed
        sweep.append(entry)
        print(f"rope_sweep L={L}: " + ("ok" if entry["ok"] else f"{entry['error_type']}: {entry['error']}"),
              flush=True)
        if L == SWEEP_FULL_L:
            if not entry["ok"]:
                raise gio.GoldenError(f"caption length {L} failed: {entry['error']}")
            n_layers = SWEEP_CONFIG["n_layers"]
            rec.put(f"patchify.x_pos_ids.L{L}", sub.tensors["x_pos_ids"])
            rec.put(f"patchify.cap_pos_ids.L{L}", sub.tensors["cap_pos_ids"])
            rec.put(f"rope_embedder.x.L{L}", sub.tensors["rope_embedder.x"])
            lay = sub.tensors["layers.last"]
            nbytes = lay.numel() * lay.element_size()
            print(f"rope_sweep: layers.{n_layers - 1}.L{L} {list(lay.shape)} = {nbytes} bytes", flush=True)
            if nbytes < LAYERS_MAX_BYTES:
                rec.put(f"layers.{n_layers - 1}.L{L}", lay)
            else:
                print(f"rope_sweep: layers.{n_layers - 1}.L{L} left out (over {LAYERS_MAX_BYTES} bytes)")

    # Extension: the same weights (the RoPE table has none) with a 4096-row axis-0 table.
    ext, ext_spec = build_sweep_model(seed, EXT_AXES_LENS)
    if ext_spec != spec:
        raise gio.GoldenError("extension model: synthetic spec differs")
    sd1, sd2 = model.state_dict(), ext.state_dict()
    if set(sd1) != set(sd2) or any(not torch.equal(sd1[n], sd2[n]) for n in sd1):
        raise gio.GoldenError("extension model: weights differ")
    for L in EXT_LENS:
        s = forward(ext, x, t, sweep_cap(seed, L))
        rec.put(f"sample_ext4096.L{L}", s)
        print(f"rope_sweep ext4096 L={L}: ok", flush=True)
    inside = [L for L in SWEEP_LENS if L <= SWEEP_FULL_L]
    mismatch = []
    for L in inside:
        s = forward(ext, x, t, sweep_cap(seed, L))
        if L not in samples or not torch.equal(s, samples[L]):
            mismatch.append(L)
    bitwise = not mismatch
    print(f"rope_sweep: 4096-table model bitwise equal to the 1536 one for L in {inside}: {bitwise}"
          + (f" (differs at {mismatch})" if mismatch else ""), flush=True)

    meta = gio.provenance(
        case="rope_sweep", kind="rope_sweep", seed=seed, config_json=config_json_of(model), synthetic_spec=spec,
        commit=args.commit,
        extra={
            "sweep_inputs": {
                "x": {"name": "x", "shape": SWEEP_X_SHAPE, "offset": 0, "scale": UNIT_UNIFORM},
                "cap_feats": {"name_pattern": "cap_feats.L{L}", "width": SWEEP_CONFIG["cap_feat_dim"],
                              "offset": 0, "scale": UNIT_UNIFORM},
                "t": SWEEP_T,
                "seed": seed,
            },
            "sweep": sweep,
            "extension": {"axes_lens": EXT_AXES_LENS, "caption_lens": EXT_LENS},
            "extension_inside_table_bitwise": "true" if bitwise else "false",
            "extension_inside_table_lens": inside,
            "calls": "model([x], t, [cap_feats], return_dict=True).sample[0] for one item; "
                     f"layers.{SWEEP_CONFIG['n_layers'] - 1}.L{SWEEP_FULL_L} = output of the last main layer; "
                     f"rope_embedder.x.L{SWEEP_FULL_L} = the first RopeEmbedder call (image ids) as view_as_real",
        },
    )
    path = os.path.join(args.out, "rope_sweep.safetensors")
    gio.save(path, rec.tensors, meta)
    return path


# --------------------------------------------------------------------------- main


def main(argv=None):
    args = gio.case_parser(__doc__, ALL_CASES).parse_args(argv)
    cases = gio.select_cases(args, ALL_CASES)
    run = {"rope_table": run_rope_table, "rope_gather": run_rope_gather, "rope_sweep": run_rope_sweep}
    gio.print_written([run[c](args) for c in cases])


if __name__ == "__main__":
    main()

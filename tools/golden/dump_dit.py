#!/usr/bin/env python3
"""Dumps Z-Image DiT goldens from real diffusers (docs/goldens.md, zimage-golden-v1).

Every golden value is computed by diffusers / torch: this script only builds
the diffusers modules, fills their parameters with the counter-based
synthetic generator (synthetic.py), feeds seeded inputs, and records what the
modules receive and return through forward (pre-)hooks.

    DIFFUSERS_SRC=/path/to/diffusers/src \
        ../shared/golden-env/run python3 tools/golden/dump_dit.py \
        --diffusers-commit <sha> [--case NAME ...] [--out golden]

Cases: tiny_single, tiny_batch2, tiny_wide, narrow_full_depth (kind=model)
and real_modules (kind=modules). See tools/golden/README.md.
"""

from __future__ import annotations

import inspect
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import golden_io as gio  # noqa: E402
from synthetic import fill_module  # noqa: E402
from thin_rules import RULES as THIN_RULES, drop_by_rule  # noqa: E402

# --------------------------------------------------------------------------- cases

TINY = dict(
    all_patch_size=[2], all_f_patch_size=[1], in_channels=16, dim=64, n_layers=2, n_refiner_layers=2,
    n_heads=2, n_kv_heads=2, norm_eps=1e-5, qk_norm=True, cap_feat_dim=32, rope_theta=256.0,
    t_scale=1000.0, axes_dims=[8, 12, 12], axes_lens=[64, 32, 32],
)

# Z-Image-Turbo's transformer/config.json (docs/zimage-facts.md).
TURBO = dict(
    all_patch_size=[2], all_f_patch_size=[1], in_channels=16, dim=3840, n_layers=30, n_refiner_layers=2,
    n_heads=30, n_kv_heads=30, norm_eps=1e-5, qk_norm=True, cap_feat_dim=2560, rope_theta=256.0,
    t_scale=1000.0, axes_dims=[32, 48, 48], axes_lens=[1536, 512, 512],
)
TURBO_N_PARAMS = 6_154_908_736

# Module paths hooked in narrow_full_depth (N = every index).
NARROW_HOOKS = ("t_embedder", "all_x_embedder.2-1", "cap_embedder", "noise_refiner.", "context_refiner.",
                "layers.", "all_final_layer.2-1")
# tiny_wide: the narrow set plus these (the C++ mutation test teacher-forces layers.0.attention).
WIDE_EXTRA_HOOKS = ("layers.0.attention",)

MODEL_CASES = {
    # items: (latent H, latent W, caption tokens)
    "tiny_single": dict(seed=1001, config=TINY, items=[(10, 10, 7)], hooks="all", ship="single"),
    "tiny_batch2": dict(seed=1002, config={**TINY, "axes_lens": [1536, 512, 512]},
                        items=[(12, 8, 5), (6, 14, 40)], hooks="all", ship="sharded", thin="later-block-leaves"),
    "tiny_wide": dict(seed=1003, config={**TINY, "dim": 96, "n_heads": 3, "n_kv_heads": 3, "cap_feat_dim": 48,
                                          "axes_dims": [16, 8, 8], "axes_lens": [256, 64, 64]},
                      items=[(16, 16, 32)], hooks="wide", ship=None),
    "narrow_full_depth": dict(seed=1004, config={**TINY, "n_layers": 30, "cap_feat_dim": 64,
                                                  "axes_lens": [1536, 512, 512]},
                              items=[(16, 16, 40)], hooks="narrow", ship=None, thin="middle-blocks"),
}
REAL_SEED = 1005
# --real-hooks lean (the default): the leaf Linears of layers.0 are left out (their inputs/outputs
# are [1, L, 3840] or [1, L, 10240] each; the enclosing attention / feed_forward captures and
# norm_q / norm_k, whose input is the to_q / to_k output, still cover them).
LEAN_SKIP = ("attention.to_q", "attention.to_k", "attention.to_v", "attention.to_out.0", "feed_forward.w1",
             "feed_forward.w2", "feed_forward.w3")
# Tokens per real-size call: layers.0 gets the image tokens of a REAL_GRID latent-patch grid
# placed behind a REAL_CAP_PAD-token (padded) caption, i.e. at ids (REAL_CAP_PAD + 1, row, col);
# context_refiner.0 gets caption positions (1..REAL_TOKENS, 0, 0).
REAL_GRID = (4, 4)
REAL_TOKENS = REAL_GRID[0] * REAL_GRID[1]
REAL_CAP_PAD = 32
ALL_CASES = list(MODEL_CASES) + ["real_modules"]

SKIP_TYPES = (nn.ModuleList, nn.ModuleDict, nn.Dropout, nn.SiLU)


# --------------------------------------------------------------------------- capture


class Recorder:
    def __init__(self):
        self.tensors: dict[str, torch.Tensor] = {}
        self.fired: list[str] = []  # module paths whose forward hook ran, in call order

    def put(self, name: str, value) -> None:
        if name in self.tensors:
            raise gio.GoldenError(f"{name} captured twice (module called more than once?)")
        if not isinstance(value, torch.Tensor):
            raise gio.GoldenError(f"{name}: not a tensor ({type(value).__name__})")
        self.tensors[name] = value.detach().clone()


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    return prefix if not path else f"{prefix}.{path}"


def hook_modules(root: nn.Module, paths, rec: Recorder, prefix: str = ""):
    """Forward pre-hooks save each tensor argument as `<path>:in.<arg>` (bound by the
    forward signature, **kwargs flattened); forward hooks save the output as `<path>`."""
    mods = dict(root.named_modules())
    handles = []
    for p in paths:
        mod = mods[p]
        full = _join(prefix, p)
        sig = inspect.signature(mod.forward)

        def pre(m, args, kwargs, full=full, sig=sig):
            bound = sig.bind(*args, **kwargs)
            for arg, val in bound.arguments.items():
                kind = sig.parameters[arg].kind
                if kind == inspect.Parameter.VAR_KEYWORD:
                    items = list(val.items())
                elif kind == inspect.Parameter.VAR_POSITIONAL:
                    items = [(f"{arg}.{j}", v) for j, v in enumerate(val)]
                else:
                    items = [(arg, val)]
                for k, v in items:
                    if isinstance(v, torch.Tensor):
                        rec.put(f"{full}:in.{k}", v)
                    elif isinstance(v, (list, tuple, dict)) and any(isinstance(e, torch.Tensor) for e in
                                                                    (v.values() if isinstance(v, dict) else v)):
                        raise gio.GoldenError(f"{full}: argument {k} is a container of tensors")

        def post(m, args, out, full=full):
            if not isinstance(out, torch.Tensor):
                raise gio.GoldenError(f"{full}: output is {type(out).__name__}, not a tensor")
            rec.put(full, out)
            rec.fired.append(full)

        handles.append(mod.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(mod.register_forward_hook(post))
    return handles


def all_hookable(root: nn.Module):
    return [n for n, m in root.named_modules() if not isinstance(m, SKIP_TYPES)]


class RopeSpy:
    """Stands in for model.rope_embedder (a plain object, not an nn.Module): the model
    calls self.rope_embedder(ids), which Python resolves on the type, so the wrapper
    replaces the attribute rather than patching __call__ on the instance."""

    NAMES = ("rope_embedder.x", "rope_embedder.cap")

    def __init__(self, inner, rec: Recorder):
        self._inner = inner
        self._rec = rec
        self._calls = 0

    def __call__(self, ids):
        out = self._inner(ids)
        if self._calls >= len(self.NAMES):
            raise gio.GoldenError("rope_embedder called more than twice")
        name = self.NAMES[self._calls]
        self._calls += 1
        self._rec.put(f"{name}:in.ids", ids)
        self._rec.put(name, out)
        return out

    def __getattr__(self, k):
        return getattr(self._inner, k)


def spy_patchify(model, rec: Recorder):
    orig = model.patchify_and_embed

    def wrapped(all_image, all_cap_feats, patch_size, f_patch_size):
        res = orig(all_image, all_cap_feats, patch_size, f_patch_size)
        x_out, cap_out, x_size, x_pos, cap_pos, x_pad, cap_pad = res
        for i in range(len(x_out)):
            rec.put(f"patchify.x.{i}", x_out[i])
            rec.put(f"patchify.cap_feats.{i}", cap_out[i])
            rec.put(f"patchify.x_pos_ids.{i}", x_pos[i])
            rec.put(f"patchify.cap_pos_ids.{i}", cap_pos[i])
            rec.put(f"patchify.x_pad_mask.{i}", x_pad[i])
            rec.put(f"patchify.cap_pad_mask.{i}", cap_pad[i])
            rec.put(f"patchify.x_size.{i}", torch.tensor(list(x_size[i]), dtype=torch.int64))
        return res

    model.patchify_and_embed = wrapped  # instance attribute shadows the method


def save_rope_tables(rope, rec: Recorder, RopeEmbedder):
    tables = rope.freqs_cis  # the tables the forward actually gathered from
    fresh = RopeEmbedder.precompute_freqs_cis(rope.axes_dims, rope.axes_lens, theta=rope.theta)
    for a, tab in enumerate(tables):
        if not torch.equal(tab, fresh[a]):
            raise gio.GoldenError(f"rope table {a}: cached table differs from precompute_freqs_cis")
        rec.put(f"rope_embedder.freqs_cis.{a}", tab)


def forward_recorded(model, paths, rec: Recorder, xs, t, caps, RopeEmbedder):
    """One reference-mode forward model(xs, t, caps).sample (clones of the inputs) with the modules
    in paths hooked, the RoPE embedder and patchify spied on; afterwards the hooks and spies are
    removed and the RoPE tables recorded (save_rope_tables). Returns the samples."""
    handles = hook_modules(model, paths, rec)
    inner_rope = model.rope_embedder
    model.rope_embedder = RopeSpy(inner_rope, rec)
    spy_patchify(model, rec)
    with gio.reference_mode():
        out = model([x.clone() for x in xs], t.clone(), [c.clone() for c in caps], return_dict=True).sample
    for hd in handles:
        hd.remove()
    del model.patchify_and_embed
    model.rope_embedder = inner_rope
    save_rope_tables(inner_rope, rec, RopeEmbedder)
    return out


def config_json_of(model) -> str:
    return json.dumps(json.loads(model.to_json_string()), separators=(",", ":"))


# --------------------------------------------------------------------------- kind=model


def run_model_case(name: str, case: dict, args) -> list[str]:
    from diffusers.models.transformers.transformer_z_image import RopeEmbedder, ZImageTransformer2DModel

    seed = case["seed"]
    cfg = case["config"]
    gio.determinism(seed)
    model = ZImageTransformer2DModel(**cfg).eval()
    spec = fill_module(model, seed)
    if set(spec["tensors"]) != set(model.state_dict().keys()):
        raise gio.GoldenError(f"{name}: synthetic spec does not cover the state_dict")

    gen = torch.Generator().manual_seed(seed)
    xs = [torch.randn((cfg["in_channels"], 1, h, w), generator=gen) for h, w, _ in case["items"]]
    caps = [torch.randn((lc, cfg["cap_feat_dim"]), generator=gen) for _, _, lc in case["items"]]
    t = 0.05 + 0.9 * torch.rand((len(case["items"]),), generator=gen)

    rec = Recorder()
    for i, (x, c) in enumerate(zip(xs, caps)):
        rec.put(f"x.{i}", x)
        rec.put(f"cap_feats.{i}", c)
    rec.put("t", t)

    if case["hooks"] == "all":
        paths = [p for p in all_hookable(model) if p]
    else:
        extra = WIDE_EXTRA_HOOKS if case["hooks"] == "wide" else ()
        paths = [p for p in all_hookable(model)
                 if p in NARROW_HOOKS or p in extra
                 or any(p.startswith(h) and p[len(h):].isdigit() for h in NARROW_HOOKS)]
        if not set(extra) <= set(paths):
            raise gio.GoldenError(f"{name}: extra hooks {sorted(set(extra) - set(paths))} are not modules")
    out = forward_recorded(model, paths, rec, xs, t, caps, RopeEmbedder)
    for i, s in enumerate(out):
        rec.put(f"sample.{i}", s)

    missing = sorted(set(paths) - set(rec.fired))
    if missing:
        raise gio.GoldenError(f"{name}: hooked modules never called: {missing}")

    model_dir = None
    outputs = []
    if case["ship"]:
        model_dir = f"models/{name}"
        dst = os.path.join(args.out, model_dir)
        gio.save_pretrained_checked(model, dst, case["ship"] == "sharded", "100KB")
        check_shipped(dst, model, xs, t, caps, out)
        outputs.append(dst)

    items = [{"H": h, "W": w, "cap_len": lc} for h, w, lc in case["items"]]
    extra = {"modules": rec.fired, "items": items}
    rule = case.get("thin")
    if rule:  # golden size (tools/golden/README.md "Thinned goldens"); as thin_golden.py does
        dropped = set(drop_by_rule(rule, rec.tensors))
        rec.tensors = {n: v for n, v in rec.tensors.items() if n not in dropped}
        kept_paths = {n.split(":", 1)[0] for n in rec.tensors}
        extra["modules"] = [m for m in rec.fired if m in kept_paths]
        extra["thinned"] = f"{rule}: {THIN_RULES[rule]} ({len(dropped)} tensors left out)"
    meta = gio.provenance(
        case=name, kind="model", seed=seed, config_json=config_json_of(model), synthetic_spec=spec,
        commit=args.commit, model_dir=model_dir,
        extra=extra,
    )
    path = os.path.join(args.out, f"{name}.safetensors")
    gio.save(path, rec.tensors, meta)
    outputs.insert(0, path)
    return outputs


def check_shipped(dst, model, xs, t, caps, out):
    """Reloads the shipped folder with diffusers and checks weights and outputs bit for bit."""
    from diffusers.models.transformers.transformer_z_image import ZImageTransformer2DModel

    m2 = gio.reload_shipped(dst, model, ZImageTransformer2DModel)
    with gio.reference_mode():
        out2 = m2([x.clone() for x in xs], t.clone(), [c.clone() for c in caps], return_dict=True).sample
    for a, b in zip(out, out2):
        if not torch.equal(a, b):
            raise gio.GoldenError(f"{dst}: reloaded model output differs")


# --------------------------------------------------------------------------- kind=modules


def run_real_modules(args) -> list[str]:
    from diffusers.models.normalization import RMSNorm
    from diffusers.models.transformers.transformer_z_image import (
        FinalLayer, RopeEmbedder, TimestepEmbedder, ZImageTransformer2DModel, ZImageTransformerBlock)

    seed = REAL_SEED
    gio.determinism(seed)

    # The Turbo config as diffusers writes it, and its parameter shapes, from a meta-device model.
    with torch.device("meta"):
        turbo = ZImageTransformer2DModel(**TURBO)
    config_json = config_json_of(turbo)
    n_params = sum(p.numel() for p in turbo.parameters())
    if n_params != TURBO_N_PARAMS:
        raise gio.GoldenError(f"Turbo config gives {n_params} parameters, expected {TURBO_N_PARAMS}")
    turbo_shapes = {k: tuple(v.shape) for k, v in turbo.state_dict().items()}
    del turbo

    dim, heads, eps = TURBO["dim"], TURBO["n_heads"], TURBO["norm_eps"]
    p = TURBO["all_patch_size"][0]
    fp = TURBO["all_f_patch_size"][0]
    key = f"{p}-{fp}"
    modules = {
        "layers.0": ZImageTransformerBlock(0, dim, heads, TURBO["n_kv_heads"], eps, TURBO["qk_norm"], modulation=True),
        "context_refiner.0": ZImageTransformerBlock(0, dim, heads, TURBO["n_kv_heads"], eps, TURBO["qk_norm"],
                                                    modulation=False),
        "t_embedder": TimestepEmbedder(min(dim, 256), mid_size=1024),
        "cap_embedder": nn.Sequential(RMSNorm(TURBO["cap_feat_dim"], eps=eps),
                                      nn.Linear(TURBO["cap_feat_dim"], dim, bias=True)),
        f"all_final_layer.{key}": FinalLayer(dim, p * p * fp * TURBO["in_channels"]),
    }
    spec = {"seed": seed, "tensors": {}}
    for prefix, mod in modules.items():
        mod.eval()
        for n, prm in mod.named_parameters():
            full = f"{prefix}.{n}"
            if turbo_shapes.get(full) != tuple(prm.shape):
                raise gio.GoldenError(f"{full}: {tuple(prm.shape)} is not a Turbo parameter shape "
                                      f"({turbo_shapes.get(full)})")
        fill_module(mod, seed, prefix=f"{prefix}.", spec=spec)

    gen = torch.Generator().manual_seed(seed)
    L = REAL_TOKENS
    x_blk = torch.randn((1, L, dim), generator=gen)
    adaln = torch.randn((1, min(dim, 256)), generator=gen)
    x_ctx = torch.randn((1, L, dim), generator=gen)
    t = 0.05 + 0.9 * torch.rand((4,), generator=gen)
    cap_in = torch.randn((L, TURBO["cap_feat_dim"]), generator=gen)
    x_fin = torch.randn((1, L, dim), generator=gen)
    c_fin = torch.randn((1, min(dim, 256)), generator=gen)

    rec = Recorder()
    rec.put("t", t)

    # RoPE exactly as the model builds it: image tokens of a 4x4 latent-patch grid behind a
    # 32-token (padded) caption sit at (33, row, col); caption tokens at (1..16, 0, 0).
    rope = RopeEmbedder(theta=TURBO["rope_theta"], axes_dims=TURBO["axes_dims"], axes_lens=TURBO["axes_lens"])
    spy = RopeSpy(rope, rec)
    grid = ZImageTransformer2DModel.create_coordinate_grid
    gh, gw = REAL_GRID
    ids_x = grid(size=(1, gh, gw), start=(REAL_CAP_PAD + 1, 0, 0)).flatten(0, 2)
    ids_cap = grid(size=(L, 1, 1), start=(1, 0, 0)).flatten(0, 2)
    with gio.reference_mode():
        freqs_x = spy(ids_x).unsqueeze(0)
        freqs_cap = spy(ids_cap).unsqueeze(0)
    save_rope_tables(rope, rec, RopeEmbedder)

    hooked = {}
    handles = []
    for prefix, mod in modules.items():
        if prefix == "context_refiner.0" and args.ctx_hooks == "block":
            paths = [""]
        elif prefix == "layers.0" and args.real_hooks == "lean":
            hookable = all_hookable(mod)
            if not set(LEAN_SKIP) <= set(hookable):
                raise gio.GoldenError(f"layers.0: lean skips non-modules {sorted(set(LEAN_SKIP) - set(hookable))}")
            paths = [q for q in hookable if q not in LEAN_SKIP]
        else:
            paths = all_hookable(mod)
        hooked[prefix] = [_join(prefix, q) for q in paths]
        handles += hook_modules(mod, paths, rec, prefix=prefix)

    t_scale = TURBO["t_scale"]
    with gio.reference_mode():
        modules["layers.0"](x_blk, None, freqs_x, adaln, None, None, None)
        modules["context_refiner.0"](x_ctx, None, freqs_cap)
        modules["t_embedder"](t * t_scale)
        modules["cap_embedder"](cap_in)
        modules[f"all_final_layer.{key}"](x_fin, c=c_fin)
    for h in handles:
        h.remove()
    present = [q for qs in hooked.values() for q in qs]
    missing = sorted(set(present) - set(rec.fired))
    if missing:
        raise gio.GoldenError(f"real_modules: hooked modules never called: {missing}")

    meta = gio.provenance(
        case="real_modules", kind="modules", seed=seed, config_json=config_json, synthetic_spec=spec,
        commit=args.commit,
        extra={
            "real_modules": present,
            "tokens": str(L),
            "rope_positions": {
                "layers.0": f"rope_embedder.x:in.ids = ({REAL_CAP_PAD + 1}, row, col) for a {gh}x{gw} grid "
                            f"(row-major), the image tokens behind a {REAL_CAP_PAD}-token (padded) caption",
                "context_refiner.0": f"rope_embedder.cap:in.ids = (1..{L}, 0, 0), the first {L} caption tokens",
            },
            "calls": {
                "layers.0": "block(x, attn_mask=None, freqs_cis=rope_embedder.x[None], adaln_input)",
                "context_refiner.0": "block(x, attn_mask=None, freqs_cis=rope_embedder.cap[None])",
                "t_embedder": "t_embedder(t * t_scale), t_scale=1000",
                "cap_embedder": f"Sequential(RMSNorm(2560, eps=1e-5), Linear(2560, 3840))(input [{L}, 2560])",
                f"all_final_layer.{key}": "FinalLayer(3840, 64)(x, c=c)",
            },
        },
    )
    path = os.path.join(args.out, "real_modules.safetensors")
    gio.save(path, rec.tensors, meta)
    return [path]


# --------------------------------------------------------------------------- main


def main(argv=None):
    ap = gio.case_parser(__doc__, ALL_CASES)
    ap.add_argument("--ctx-hooks", choices=["block", "all"], default="block",
                    help="real_modules: hook only context_refiner.0 itself (default) or all its submodules")
    ap.add_argument("--real-hooks", choices=["full", "lean"], default="lean",
                    help="real_modules: leave out the leaf Linears of layers.0 (default) or hook every submodule")
    args = ap.parse_args(argv)
    written = []
    for c in gio.select_cases(args, ALL_CASES):
        if c == "real_modules":
            written += run_real_modules(args)
        else:
            written += run_model_case(c, MODEL_CASES[c], args)
    gio.print_written(written)


if __name__ == "__main__":
    main()

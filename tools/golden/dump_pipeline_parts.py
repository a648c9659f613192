#!/usr/bin/env python3
"""Dumps the pipeline-part goldens from real diffusers / torch (docs/scheduler.md, zimage-golden-v1).

Every golden value is computed by diffusers or torch (never by this project's code):

- scheduler   (kind scheduler):   FlowMatchEulerDiscreteScheduler sigmas / timesteps as
  ZImagePipeline computes them (get_default_z_image_sigmas + calculate_shift +
  retrieve_timesteps) for n = 1..50 and shift 1, 3, 5, cross-checked against the real
  ZImagePipeline.__call__; dynamic shifting (exponential, linear); custom sigmas; custom
  timesteps; set_timesteps without sigmas (the float64 path); step() results, including an
  8-step trajectory; torch.linspace under the DEFAULT CPU capability.
- cfg         (kind cfg):         the real ZImagePipeline.__call__ with a stub transformer
  (outputs a fixed function of its inputs) and output_type="latent": the transformer batch
  each step (order, timesteps, outputs), the noise_pred scheduler.step receives, the initial
  latents (prepare_latents / randn_tensor) and the final latents, for guidance 0, 1.5, 2.7, 4,
  with and without cfg_normalization (capped and not), with cfg_truncation; plus
  torch.linalg.vector_norm on float32 vectors under the AVX2 and DEFAULT capabilities.
- torch_randn (kind torch_randn): torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s))
  for seeds 0, 42, 2**32+5, 0xDEADBEEFCAFEF00D and shapes of numel < 16, 16, 37, 210, [1,16,64,64],
  [2,16,128,128] (the large ones as an fnv1a64 digest plus slices), consecutive calls on one
  generator, diffusers' randn_tensor (one generator and a list), and the DEFAULT capability.

    DIFFUSERS_SRC=/path/to/diffusers/src OMP_NUM_THREADS=1 \\
        ../shared/golden-env/run python3 -B tools/golden/dump_pipeline_parts.py \\
        --diffusers-commit <sha> [--case scheduler|cfg|torch_randn|all ...] [--out golden]

The DEFAULT-capability values come from a child process of this script started with
ATEN_CPU_CAPABILITY=default (torch picks its kernels once per process).
"""

from __future__ import annotations

import os
import sys

if "--emit-default-capability" in sys.argv:  # child: must be set before torch loads its kernels
    os.environ["ATEN_CPU_CAPABILITY"] = "default"

import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import golden_io as gio  # noqa: E402
from synthetic import fnv1a64_hex as digest  # noqa: E402

ALL_CASES = ["scheduler", "cfg", "torch_randn"]
SEEDS = {"scheduler": 2001, "cfg": 2002, "torch_randn": 2003}
PIPELINE_KINDS = ("scheduler", "cfg", "torch_randn")

# The diffusers sources these goldens exercise (relative to DIFFUSERS_SRC); each golden
# records the git blob id of the file actually imported.
SOURCE_FILES = {
    "diffusers_scheduler_blob": "diffusers/schedulers/scheduling_flow_match_euler_discrete.py",
    "diffusers_pipeline_blob": "diffusers/pipelines/z_image/pipeline_z_image.py",
    "diffusers_torch_utils_blob": "diffusers/utils/torch_utils.py",
}

SCHED_SHIFTS = [1.0, 3.0, 5.0]
SCHED_NS = list(range(1, 51))
SCHED_SEQ_LEN = 4096  # 1024 x 1024 images: mu = calculate_shift(4096) = 1.15 (unused without dynamic shifting)
DYN_SEQ_LENS = [256, 1024, 4096, 6400]
DYN_NS = [1, 8, 28, 50]
RANDN_SEEDS = [0, 42, 2**32 + 5, 0xDEADBEEFCAFEF00D]
RANDN_SHAPES = [[7], [16], [37], [2, 3, 5, 7], [1, 16, 64, 64], [2, 16, 128, 128]]
RANDN_FULL_LIMIT = 4096  # larger tensors are stored as digest + slices (except one full [1,16,64,64])
RANDN_SEQUENCES = [[7, 16, 37], [3, 20, 2], [5, 5], [37, 3]]
NORM_LENS = list(range(1, 41)) + [384, 1023, 1536]


def norm_rows(L):
    """Vectors per length: many short ones (every tail length 0..7 of the 8-lane kernel), few long."""
    return 24 if L <= 40 else 2


def shape_name(shape):
    return "x".join(str(d) for d in shape)


def f32(values):
    return torch.tensor(values, dtype=torch.float32)


def imported_blobs():
    import diffusers

    src_root = os.path.dirname(os.path.dirname(diffusers.__file__))
    return {k: gio.git_blob_id(os.path.join(src_root, v)) for k, v in SOURCE_FILES.items()}


def pipeline_meta(case, seed, commit, extra):
    """Provenance of a pipeline-part golden (tools/golden/README.md, "Pipeline-part goldens")."""
    import diffusers

    meta = {
        "format": gio.FORMAT,
        "case": case,
        "kind": case,
        "diffusers_version": str(diffusers.__version__),
        "diffusers_commit": commit,
        **imported_blobs(),
        "torch_version": str(torch.__version__),
        "numpy_version": str(np.__version__),
        "safetensors_version": gio._version("safetensors"),
        "python_version": platform.python_version(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "dtype": "float32",
        "seed": str(int(seed)),
        "command": " ".join(sys.argv),
        "threads": str(torch.get_num_threads()),
        "device": "cpu",
    }
    if meta["threads"] != "1":
        raise gio.GoldenError(f"not in reference mode: threads={meta['threads']}")
    if meta["torch_cpu_capability"] not in ("AVX2", "AVX512"):
        # The main tensors stand for torch's AVX2/AVX512 kernels (TorchCpuCapability::Avx2 in C++);
        # DEFAULT-capability values come from a child process and are named default_cap.* / norm.default.*.
        raise gio.GoldenError(f"torch CPU capability {meta['torch_cpu_capability']}: dump on an AVX2 machine")
    for k, v in extra.items():
        if k in meta:
            raise gio.GoldenError(f"metadata key {k} set twice")
        meta[k] = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
    return meta


# ------------------------------------------------------------------------------------------
# DEFAULT capability child


def emit_default_capability(path_in, path_out):
    """Runs in a child process with ATEN_CPU_CAPABILITY=default."""
    from safetensors.torch import load_file, save_file

    from diffusers.pipelines.z_image import pipeline_z_image as pz

    torch.set_num_threads(1)
    cap = torch.backends.cpu.get_cpu_capability()
    if cap != "DEFAULT":
        raise gio.GoldenError(f"child runs capability {cap}, expected DEFAULT")
    inp = load_file(path_in)
    out = {}
    for n in SCHED_NS:
        out[f"linspace.n{n}"] = f32(pz.get_default_z_image_sigmas(n))
    for L in NORM_LENS:
        out[f"norm.L{L}"] = row_norms(inp[f"x.L{L}"])
    for seed in (0, 42):
        for shape in RANDN_SHAPES[:5]:
            g = torch.Generator("cpu").manual_seed(seed)
            out[f"randn.s{seed}.{shape_name(shape)}"] = torch.randn(shape, generator=g, dtype=torch.float32)
    save_file(out, path_out)


def default_capability_values(inputs: dict) -> dict:
    from safetensors.torch import load_file, save_file

    with tempfile.TemporaryDirectory() as d:
        pin, pout = os.path.join(d, "in.safetensors"), os.path.join(d, "out.safetensors")
        save_file(inputs, pin)
        env = dict(os.environ, ATEN_CPU_CAPABILITY="default", OMP_NUM_THREADS="1")
        subprocess.run([sys.executable, "-B", os.path.abspath(__file__), "--emit-default-capability", pin, pout],
                       check=True, env=env)
        return load_file(pout)


def norm_inputs():
    g = torch.Generator().manual_seed(SEEDS["cfg"] + 17)
    return {f"x.L{L}": (torch.rand(norm_rows(L), L, generator=g, dtype=torch.float64) * 6 - 2.5).float()
            for L in NORM_LENS}


def row_norms(X):
    """torch.linalg.vector_norm of each row, each a contiguous 1-D tensor of its own."""
    return torch.stack([torch.linalg.vector_norm(X[r].clone()) for r in range(X.shape[0])])


# ------------------------------------------------------------------------------------------
# scheduler


def run_scheduler(args):
    from diffusers import FlowMatchEulerDiscreteScheduler
    from diffusers.pipelines.z_image import pipeline_z_image as pz

    seed = SEEDS["scheduler"]
    gio.determinism(seed)
    T = {}
    cases = []

    def record(name, sch, **desc):
        sig = sch.sigmas.clone()
        ts = sch.timesteps.clone()
        if sig.dtype != torch.float32 or ts.dtype != torch.float32 or len(sig) != len(ts) + 1:
            raise gio.GoldenError(f"{name}: unexpected schedule dtypes/lengths")
        T[f"{name}.sigmas"] = sig
        T[f"{name}.timesteps"] = ts
        cases.append({"name": name, **desc})
        return ts

    def pipeline_schedule(config, n, seq_len, sigmas=None):
        """ZImagePipeline.__call__'s step 5, with the pipeline module's own functions."""
        sch = FlowMatchEulerDiscreteScheduler(**config)
        mu = pz.calculate_shift(
            seq_len,
            sch.config.get("base_image_seq_len", 256),
            sch.config.get("max_image_seq_len", 4096),
            sch.config.get("base_shift", 0.5),
            sch.config.get("max_shift", 1.15),
        )
        if sigmas is None:
            sigmas = pz.get_default_z_image_sigmas(n)
        pz.retrieve_timesteps(sch, n, "cpu", sigmas=sigmas, mu=mu)
        return sch, mu

    # 1. ZImagePipeline schedules, n = 1..50, shift 1, 3, 5.
    for n in SCHED_NS:
        T[f"zimage_default_sigmas.n{n}"] = f32(pz.get_default_z_image_sigmas(n))
    for shift in SCHED_SHIFTS:
        for n in SCHED_NS:
            name = f"pipeline.shift{shift:g}.n{n}"
            sch, mu = pipeline_schedule({"shift": shift}, n, SCHED_SEQ_LEN)
            ts = record(name, sch, path="pipeline", config={"shift": shift}, n=n, image_seq_len=SCHED_SEQ_LEN, mu=mu)
            # The transformer's timestep input, step by step as the loop computes it, and
            # _precomputed_t_norms (the same expression on the whole vector).
            per_step = torch.stack([((1000 - t.expand(1)) / 1000)[0] for t in ts])
            vec = (1000 - ts.float()) / 1000
            if not torch.equal(per_step, vec):
                raise gio.GoldenError(f"{name}: per-step model timestep differs from _precomputed_t_norms")
            T[f"{name}.model_t"] = per_step

    # 2. The real ZImagePipeline.__call__ computes the same schedules (checked, not stored).
    checked = []
    for shift, n in [(3.0, 1), (3.0, 8), (3.0, 9), (1.0, 17), (5.0, 50)]:
        got = run_stub_pipeline(FlowMatchEulerDiscreteScheduler(shift=shift), n, guidance=0.0, prompts=1, k=1,
                                height=32, width=32, seed=seed)
        name = f"pipeline.shift{shift:g}.n{n}"
        if not (torch.equal(got["sigmas"], T[f"{name}.sigmas"]) and torch.equal(got["timesteps"], T[f"{name}.timesteps"])
                and torch.equal(torch.stack([s["t"][0] for s in got["steps"]]), T[f"{name}.model_t"])):
            raise gio.GoldenError(f"{name}: ZImagePipeline.__call__ disagrees with its module functions")
        checked.append(name)

    # 3. Dynamic shifting through the pipeline path (custom default sigmas + mu).
    for tst in ("exponential", "linear"):
        for L in DYN_SEQ_LENS:
            for n in DYN_NS:
                config = {"shift": 3.0, "use_dynamic_shifting": True, "time_shift_type": tst}
                sch, mu = pipeline_schedule(config, n, L)
                record(f"dynamic.{tst}.seq{L}.n{n}", sch, path="pipeline", config=config, n=n, image_seq_len=L, mu=mu)

    # 4. Custom sigmas (lists of Python floats, as a user passes them).
    g = torch.Generator().manual_seed(seed)
    rand_sigmas = sorted(torch.rand(12, generator=g, dtype=torch.float64).tolist(), reverse=True)
    custom = {
        "hand6": [1.0, 0.9, 0.75, 0.5, 0.3, 0.1],
        "rand12": rand_sigmas,
    }
    for cname, sig in custom.items():
        for config, mu in [({"shift": 3.0}, None), ({"shift": 1.0}, None),
                           ({"use_dynamic_shifting": True}, 1.0),
                           ({"use_dynamic_shifting": True, "time_shift_type": "linear"}, 0.8)]:
            sch = FlowMatchEulerDiscreteScheduler(**config)
            sch.set_timesteps(sigmas=sig, mu=mu)
            tag = "shift%g" % config["shift"] if "shift" in config else "dyn_" + config.get("time_shift_type", "exponential")
            record(f"custom_sigmas.{cname}.{tag}", sch, path="set_timesteps", config=config, sigmas=sig, mu=mu)

    # 5. Custom timesteps (the scheduler recomputes them from the shifted sigmas), and both.
    cts = {"hand6": [999.0, 850.5, 700.25, 500.0, 250.125, 10.0], "int4": [1000, 750, 500, 250]}
    for cname, ts_in in cts.items():
        for config, mu in [({"shift": 3.0}, None), ({"use_dynamic_shifting": True}, 0.7)]:
            sch = FlowMatchEulerDiscreteScheduler(**config)
            sch.set_timesteps(timesteps=ts_in, mu=mu)
            tag = "shift%g" % config["shift"] if "shift" in config else "dyn_exponential"
            record(f"custom_timesteps.{cname}.{tag}", sch, path="set_timesteps", config=config, timesteps=ts_in, mu=mu)
    sch = FlowMatchEulerDiscreteScheduler(shift=3.0)
    sch.set_timesteps(sigmas=custom["hand6"], timesteps=cts["hand6"])
    record("custom_both.hand6.shift3", sch, path="set_timesteps", config={"shift": 3.0}, sigmas=custom["hand6"],
           timesteps=cts["hand6"], mu=None)

    # 6. set_timesteps(n) without sigmas: the float64 path from the constructor's sigma range.
    for config, mu, tag in [({"shift": 1.0}, None, "shift1"), ({"shift": 3.0}, None, "shift3"),
                            ({"shift": 3.0, "use_dynamic_shifting": True}, 0.8, "dyn_exponential"),
                            ({"use_dynamic_shifting": True, "time_shift_type": "linear"}, 1.7, "dyn_linear"),
                            ({"shift": 3.0, "num_train_timesteps": 500}, None, "shift3_train500")]:
        for n in (1, 8, 50):
            sch = FlowMatchEulerDiscreteScheduler(**config)
            sch.set_timesteps(n, mu=mu)
            record(f"no_sigmas.{tag}.n{n}", sch, path="set_timesteps", config=config, n=n, mu=mu)

    # 7. step(): an 8-step trajectory with a fixed fake model output per step (set_begin_index(0)
    #    as the pipeline does), and single steps at chosen indices of a 50-step schedule.
    sch, _ = pipeline_schedule({"shift": 3.0}, 8, SCHED_SEQ_LEN)
    sch.set_begin_index(0)
    sample = torch.randn(2, 16, 4, 6, generator=g)
    T["step.traj.sample.0"] = sample.clone()
    for i, t in enumerate(sch.timesteps):
        mo = torch.randn(2, 16, 4, 6, generator=g)
        T[f"step.traj.model_output.{i}"] = mo
        sample = sch.step(mo, t, sample, return_dict=False)[0]
        T[f"step.traj.sample.{i + 1}"] = sample.clone()
    T["step.traj.sigmas"] = sch.sigmas.clone()
    T["step.traj.timesteps"] = sch.timesteps.clone()
    singles = []
    for i in (0, 25, 49):
        sch, _ = pipeline_schedule({"shift": 3.0}, 50, SCHED_SEQ_LEN)
        sch.set_begin_index(i)
        x = torch.randn(1, 16, 3, 5, generator=g)
        mo = torch.randn(1, 16, 3, 5, generator=g)
        T[f"step.n50.i{i}.sample"] = x
        T[f"step.n50.i{i}.model_output"] = mo
        T[f"step.n50.i{i}.prev"] = sch.step(mo, sch.timesteps[i], x, return_dict=False)[0]
        singles.append(i)

    # 8. torch.linspace under the DEFAULT capability (no FMA contraction).
    dflt = default_capability_values({"dummy": torch.zeros(2)} | norm_inputs())
    for n in SCHED_NS:
        T[f"default_cap.zimage_default_sigmas.n{n}"] = dflt[f"linspace.n{n}"]

    extra = {
        "cases": cases,
        "pipeline_call_checked": checked,
        "pipeline_shifts": SCHED_SHIFTS,
        "pipeline_steps": SCHED_NS,
        "pipeline_image_seq_len": SCHED_SEQ_LEN,
        "step_traj": {"schedule": "pipeline.shift3.n8", "shape": [2, 16, 4, 6], "steps": 8, "begin_index": 0},
        "step_singles": {"schedule": "pipeline.shift3.n50", "indices": singles, "shape": [1, 16, 3, 5]},
    }
    path = os.path.join(args.out, "scheduler.safetensors")
    gio.save(path, T, pipeline_meta("scheduler", seed, args.commit, extra))
    return path


# ------------------------------------------------------------------------------------------
# the real ZImagePipeline.__call__ with a stub transformer


class StubTransformer(torch.nn.Module):
    """Stands in for ZImageTransformer2DModel inside ZImagePipeline.__call__.

    Output for batch entry b (latent x_b of shape [C, 1, H, W], caption features c_b whose every
    element is the entry's tag: +(p + 1) for prompt p, -(p + 1) for its negative prompt) at
    step s (counted by calls):
        out_b = 0.25 * x_b + base(s, p) + (delta_p * noise(s, p) if negative else 0)
    with base and noise drawn from torch generators seeded by (seed, s, p). A fixed function
    of the inputs, so the pipeline's CFG block decides everything else. Records every call.
    """

    def __init__(self, seed, deltas):
        super().__init__()
        self.in_channels = 16
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # DiffusionPipeline looks for parameters
        self.seed = seed
        self.deltas = deltas
        self.calls = []

    @property
    def device(self):
        return torch.device("cpu")

    @property
    def dtype(self):
        return torch.float32

    def forward(self, x_list, t, cap_feats, return_dict=False):
        s = len(self.calls)
        outs, tags = [], []
        for x, c in zip(x_list, cap_feats):
            tag = int(c[0, 0].item())
            if not bool((c == tag).all()):
                raise gio.GoldenError("stub: caption features are not a constant tag")
            p = abs(tag) - 1
            gb = torch.Generator().manual_seed(self.seed * 1000 + s * 10 + p)
            base = torch.randn(x.shape, generator=gb)
            out = 0.25 * x + base
            if tag < 0:
                noise = torch.randn(x.shape, generator=gb)
                out = out + self.deltas[p] * noise
            outs.append(out.contiguous())
            tags.append(tag)
        self.calls.append({"x": [x.clone() for x in x_list], "t": t.clone(), "tags": tags,
                           "out": [o.clone() for o in outs]})
        return (outs,)


def run_stub_pipeline(scheduler, n, guidance, prompts, k, height, width, seed, cfg_normalization=False,
                      cfg_truncation=1.0, deltas=None):
    from diffusers import ZImagePipeline

    stub = StubTransformer(seed, deltas or [0.5] * prompts)
    pipe = ZImagePipeline(scheduler=scheduler, vae=None, text_encoder=None, tokenizer=None, transformer=stub)
    pipe.set_progress_bar_config(disable=True)
    pe = [torch.full((3 + p, 8), float(p + 1)) for p in range(prompts)]
    ne = [torch.full((2 + p, 8), -float(p + 1)) for p in range(prompts)]
    steps = []
    orig_step = scheduler.step

    def spy_step(model_output, timestep, sample, *a, **kw):
        steps.append({"noise_pred": model_output.clone(), "latents_in": sample.clone()})
        return orig_step(model_output, timestep, sample, *a, **kw)

    scheduler.step = spy_step
    try:
        latents = pipe(prompt_embeds=pe, negative_prompt_embeds=ne, height=height, width=width,
                       num_inference_steps=n, guidance_scale=guidance, cfg_normalization=cfg_normalization,
                       cfg_truncation=cfg_truncation, num_images_per_prompt=k,
                       generator=torch.Generator("cpu").manual_seed(seed), output_type="latent",
                       return_dict=False)[0]
    finally:
        scheduler.step = orig_step
    if len(stub.calls) != n or len(steps) != n:
        raise gio.GoldenError(f"expected {n} transformer calls and steps, got {len(stub.calls)}, {len(steps)}")
    for c, s in zip(stub.calls, steps):
        s.update(c)
        # Which latent each batch entry received.
        lat = s["latents_in"]
        s["latent_ids"] = []
        for x in c["x"]:
            hits = [j for j in range(lat.shape[0]) if torch.equal(x[:, 0], lat[j])]
            if len(hits) != 1:
                raise gio.GoldenError("batch entry does not match exactly one latent")
            s["latent_ids"].append(hits[0])
    return {"latents_final": latents, "steps": steps, "sigmas": scheduler.sigmas.clone(),
            "timesteps": scheduler.timesteps.clone(), "latents_0": steps[0]["latents_in"]}


CFG_CASES = [
    # name, guidance, cfg_normalization, cfg_truncation, prompts, k, steps, deltas per prompt
    ("g0_p2", 0.0, False, 1.0, 2, 1, 3, [0.5, 0.5]),
    ("g1p5_p2_k2", 1.5, False, 1.0, 2, 2, 3, [0.5, 1.0]),
    ("g4_p1", 4.0, False, 1.0, 1, 1, 3, [1.0]),
    ("g4_norm1_capped", 4.0, True, 1.0, 1, 1, 3, [1.0]),
    ("g1p5_norm2_uncapped", 1.5, 2.0, 1.0, 1, 1, 3, [0.3]),
    ("g4_norm1p2_mixed_p2", 4.0, 1.2, 1.0, 2, 1, 3, [0.02, 1.0]),
    ("g2p7_norm1p3", 2.7, 1.3, 1.0, 1, 1, 3, [0.8]),
    ("g4_trunc0p2_k2", 4.0, False, 0.2, 1, 2, 6, [0.5]),
]
CFG_HEIGHT, CFG_WIDTH = 32, 48  # latents [16, 4, 6]


def run_cfg(args):
    from diffusers import FlowMatchEulerDiscreteScheduler

    seed = SEEDS["cfg"]
    gio.determinism(seed)
    T = {}
    cases = []
    for ci, (name, g, norm, trunc, prompts, k, n, deltas) in enumerate(CFG_CASES):
        case_seed = seed * 10 + ci
        r = run_stub_pipeline(FlowMatchEulerDiscreteScheduler(shift=3.0), n, g, prompts, k, CFG_HEIGHT, CFG_WIDTH,
                              case_seed, cfg_normalization=norm, cfg_truncation=trunc, deltas=deltas)
        T[f"{name}.latents.0"] = r["latents_0"]
        T[f"{name}.latents.final"] = r["latents_final"]
        T[f"{name}.sigmas"] = r["sigmas"]
        T[f"{name}.timesteps"] = r["timesteps"]
        steps_meta = []
        B = prompts * k
        for i, s in enumerate(r["steps"]):
            T[f"{name}.step{i}.out"] = torch.stack(s["out"])
            T[f"{name}.step{i}.noise_pred"] = s["noise_pred"]
            if not bool((s["t"] == s["t"][0]).all()):
                raise gio.GoldenError(f"{name}: step {i} timesteps differ across the batch")
            T[f"{name}.step{i}.t"] = s["t"][:1].clone()  # t.expand(batch): one value (a constant tensor is refused)
            T[f"{name}.step{i}.batch_latent"] = torch.tensor(s["latent_ids"], dtype=torch.int32)
            T[f"{name}.step{i}.batch_tag"] = torch.tensor(s["tags"], dtype=torch.int32)
            apply_cfg = len(s["out"]) == 2 * B
            # Informational: whether the norm cap fired per item, by the block's own expressions.
            capped = []
            if apply_cfg and norm and float(norm) > 0:
                for j in range(B):
                    pos, neg = s["out"][j].float(), s["out"][B + j].float()
                    pred = pos + g * (pos - neg)
                    capped.append(bool(torch.linalg.vector_norm(pred) > torch.linalg.vector_norm(pos) * float(norm)))
            steps_meta.append({"apply_cfg": apply_cfg, "batch": len(s["out"]), "capped": capped})
        cases.append({"name": name, "guidance_scale": g, "cfg_normalization": float(norm), "cfg_truncation": trunc,
                      "prompts": prompts, "num_images_per_prompt": k, "steps": n, "height": CFG_HEIGHT,
                      "width": CFG_WIDTH, "generator_seed": case_seed, "stub_deltas": deltas,
                      "scheduler_config": {"shift": 3.0}, "per_step": steps_meta})
    # torch.linalg.vector_norm on float32 vectors, this process's capability and DEFAULT.
    xs = norm_inputs()
    dflt = default_capability_values(xs)
    for L in NORM_LENS:
        x = xs[f"x.L{L}"]
        T[f"norm.x.L{L}"] = x
        T[f"norm.avx2.L{L}"] = row_norms(x)
        T[f"norm.default.L{L}"] = dflt[f"norm.L{L}"]
    extra = {"cases": cases, "norm_lengths": NORM_LENS,
             "norm_tensors": "norm.x.L{L} [rows, L]; norm.avx2.L{L} [rows] = vector_norm of each row in this process "
                             "(torch_cpu_capability); norm.default.L{L} under ATEN_CPU_CAPABILITY=default",
             "stub_transformer": "out_b = 0.25 * x_b + base(s, p) + (delta_p * noise(s, p) if negative else 0); "
                                 "caption features of entry b are filled with its tag +(p+1) / -(p+1)"}
    path = os.path.join(args.out, "cfg.safetensors")
    gio.save(path, T, pipeline_meta("cfg", seed, args.commit, extra))
    return path


# ------------------------------------------------------------------------------------------
# torch_randn


def run_torch_randn(args):
    from diffusers.utils.torch_utils import randn_tensor

    seed = SEEDS["torch_randn"]
    gio.determinism(seed)
    T = {}
    digests = {}

    def store(name, t, full=None):
        full = t.numel() <= RANDN_FULL_LIMIT if full is None else full
        if full:
            T[name] = t
        else:
            flat = t.reshape(-1)
            n = flat.numel()
            slices = {"head": [0, 64], "mid": [n // 2 - 37, n // 2 + 27], "tail": [n - 64, n]}
            for sname, (a, b) in slices.items():
                T[f"{name}.{sname}"] = flat[a:b].clone()
            digests[name] = {"shape": list(t.shape), "fnv1a64": digest(t), "slices": slices}

    for s in RANDN_SEEDS:
        for shape in RANDN_SHAPES:
            gen = torch.Generator("cpu").manual_seed(s)
            t = torch.randn(shape, generator=gen, dtype=torch.float32)
            # diffusers' randn_tensor with one CPU generator is the same call.
            if not torch.equal(t, randn_tensor(tuple(shape), generator=torch.Generator("cpu").manual_seed(s),
                                               device=torch.device("cpu"), dtype=torch.float32)):
                raise gio.GoldenError("randn_tensor differs from torch.randn")
            store(f"randn.s{s}.{shape_name(shape)}", t)
        # The low 32 bits seed the engine: 2**32 + 5 and 5 draw the same stream.
    if not torch.equal(torch.randn(37, generator=torch.Generator().manual_seed(5)),
                       torch.randn(37, generator=torch.Generator().manual_seed(2**32 + 5))):
        raise gio.GoldenError("seed 2**32+5 differs from seed 5")
    store("randn.s42.1x16x64x64.full", torch.randn([1, 16, 64, 64], generator=torch.Generator().manual_seed(42)),
          full=True)
    # Consecutive calls on one generator (the normal_distribution<double> cache survives calls).
    for seq in RANDN_SEQUENCES:
        gen = torch.Generator("cpu").manual_seed(42)
        for j, n in enumerate(seq):
            store(f"seq.{'_'.join(map(str, seq))}.call{j}", torch.randn(n, generator=gen, dtype=torch.float32))
    # randn_tensor with a list of generators: one per batch item.
    gens = [torch.Generator("cpu").manual_seed(s) for s in (7, 8)]
    T["randn_tensor.list.s7_s8.2x16x8x8"] = randn_tensor((2, 16, 8, 8), generator=gens, device=torch.device("cpu"),
                                                         dtype=torch.float32)
    # DEFAULT capability (scalar normal_fill with libm).
    dflt = default_capability_values({"dummy": torch.zeros(2)} | norm_inputs())
    for s in (0, 42):
        for shape in RANDN_SHAPES[:5]:
            store(f"default_cap.randn.s{s}.{shape_name(shape)}", dflt[f"randn.s{s}.{shape_name(shape)}"])
    extra = {"seeds": [str(s) for s in RANDN_SEEDS], "shapes": RANDN_SHAPES, "sequences": RANDN_SEQUENCES,
             "sequence_seed": 42, "digests": digests, "randn_tensor_list_seeds": [7, 8],
             "default_capability": "ATEN_CPU_CAPABILITY=default child process: default_cap.* tensors"}
    path = os.path.join(args.out, "torch_randn.safetensors")
    gio.save(path, T, pipeline_meta("torch_randn", seed, args.commit, extra))
    return path


# ------------------------------------------------------------------------------------------
# verify.py hook


def check_pipeline_golden(path, meta, tensors, expect_commit=None):
    """What verify.py checks for the pipeline-part kinds: provenance, blobs of the imported
    diffusers files (when diffusers is importable), and every stored digest."""
    need = ["format", "case", "kind", "diffusers_version", "diffusers_commit", *SOURCE_FILES, "torch_version",
            "numpy_version", "torch_cpu_capability", "dtype", "seed", "command", "threads", "device"]
    missing = [k for k in need if k not in meta]
    if missing:
        raise gio.GoldenError(f"{path}: metadata lacks {missing}")
    if (meta["threads"], meta["device"], meta["dtype"]) != ("1", "cpu", "float32"):
        raise gio.GoldenError(f"{path}: not a reference-mode golden")
    if expect_commit and meta["diffusers_commit"] != expect_commit:
        raise gio.GoldenError(f"{path}: diffusers_commit {meta['diffusers_commit']} != {expect_commit}")
    try:
        blobs = imported_blobs()
    except ImportError:
        blobs = None
    if blobs:
        for k, v in blobs.items():
            if meta[k] != v:
                raise gio.GoldenError(f"{path}: {k} {meta[k]} != {v} of the imported diffusers source")
    if meta["kind"] == "torch_randn":
        for name, d in json.loads(meta["digests"]).items():
            flat = [tensors.get(f"{name}.{s}") for s in ("head", "mid", "tail")]
            if any(t is None for t in flat):
                raise gio.GoldenError(f"{path}: {name} slices missing")
            if meta["case"] == "torch_randn" and name.startswith("randn.s"):
                s = int(name.split(".")[1][1:])
                t = torch.randn(d["shape"], generator=torch.Generator().manual_seed(s)) \
                    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512") else None
                if t is not None and digest(t) != d["fnv1a64"]:
                    raise gio.GoldenError(f"{path}: {name} digest differs from torch.randn on this machine")
    if meta["kind"] == "scheduler":
        for c in json.loads(meta["cases"]):
            if f"{c['name']}.sigmas" not in tensors or f"{c['name']}.timesteps" not in tensors:
                raise gio.GoldenError(f"{path}: case {c['name']} lacks its tensors")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--emit-default-capability":
        emit_default_capability(argv[1], argv[2])
        return
    args = gio.case_parser(__doc__, ALL_CASES).parse_args(argv)
    cases = gio.select_cases(args, ALL_CASES, native_backend=False)
    run = {"scheduler": run_scheduler, "cfg": run_cfg, "torch_randn": run_torch_randn}
    gio.print_written([run[c](args) for c in cases])


if __name__ == "__main__":
    main()

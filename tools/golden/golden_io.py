"""Writing goldens in the zimage-golden-v1 format (docs/goldens.md).

- determinism(seed): one CPU thread, TF32 off, torch.manual_seed.
- reference_mode(): context manager for the forward: no_grad + SDPA math backend.
- provenance(...): the metadata every golden carries.
- save(path, tensors, metadata): refuses NaN/Inf and constant float tensors,
  stores complex as view_as_real (float32), bool as int32, and stores a tensor
  byte-identical to another once (the others: metadata "zimage_aliases", thin_rules.dedupe).
- open_golden(path): safe_open with the aliases resolved (use it to read goldens back).
- check_reference_golden(...): the missing-key / reference-mode / commit checks of a reader.
- case_parser / select_cases / print_written: the shared command line of the dumpers.
- save_pretrained_checked(...) / reload_shipped(...): ships a model folder (single file or
  sharded) and reloads it with its weights and config checked.
- load_fp32_golden / bf16_metadata / save_bf16 / bf16_main: what the bf16 peer dumpers share.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from thin_rules import ALIASES_KEY, DEDUPED_KEY, dedupe, dedupe_metadata  # noqa: E402

FORMAT = "zimage-golden-v1"

# Relative to DIFFUSERS_SRC: the file whose git blob id is recorded.
ZIMAGE_MODEL_FILE = "diffusers/models/transformers/transformer_z_image.py"


class GoldenError(RuntimeError):
    pass


def determinism(seed: int) -> None:
    torch.set_num_threads(1)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)


@contextlib.contextmanager
def reference_mode():
    """no_grad + the math SDPA kernel (what `attention_backend=math` records)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        yield


def _version(mod_name: str) -> str:
    mod = sys.modules.get(mod_name) or __import__(mod_name)
    v = getattr(mod, "__version__", None)
    if v is None:
        v = importlib.metadata.version(mod_name)
    return str(v)


def git_blob_id(path: str) -> str:
    """`git hash-object` of a file (sha1 of 'blob <n>\\0' + bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def diffusers_commit(cli_value: str | None) -> str:
    c = cli_value or os.environ.get("DIFFUSERS_COMMIT")
    if not c:
        raise GoldenError("diffusers commit unknown: pass --diffusers-commit or set DIFFUSERS_COMMIT")
    c = c.strip()
    if len(c) != 40 or any(ch not in "0123456789abcdef" for ch in c):
        raise GoldenError(f"diffusers commit {c!r} is not a 40-hex git sha")
    return c


def _source_versions(commit: str) -> dict:
    """The diffusers version, commit and transformer_z_image.py blob, and the torch / numpy /
    safetensors versions: the part of the provenance every diffusers golden records."""
    import diffusers

    src_root = os.path.dirname(os.path.dirname(diffusers.__file__))
    return {
        "diffusers_version": str(diffusers.__version__),
        "diffusers_commit": commit,
        "diffusers_z_image_blob": git_blob_id(os.path.join(src_root, ZIMAGE_MODEL_FILE)),
        "torch_version": str(torch.__version__),
        "numpy_version": str(np.__version__),
        "safetensors_version": _version("safetensors"),
    }


def provenance(*, case: str, kind: str, seed: int, config_json: str, synthetic_spec: dict,
               commit: str, model_dir: str | None = None, extra: dict | None = None) -> dict:
    meta = {
        "format": FORMAT,
        "case": case,
        "kind": kind,
        **_source_versions(commit),
        "dtype": "float32",
        "seed": str(int(seed)),
        "config": config_json,
        "synthetic_weights": json.dumps(synthetic_spec, separators=(",", ":"), sort_keys=False),
        "command": " ".join(sys.argv),
        "threads": str(torch.get_num_threads()),
        "tf32": "off" if not (torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32) else "on",
        "attention_backend": "math",
        "diffusers_attention_backend": _diffusers_backend(),
        "device": "cpu",
    }
    if meta["threads"] != "1" or meta["tf32"] != "off":
        raise GoldenError(f"not in reference mode: threads={meta['threads']} tf32={meta['tf32']}")
    if model_dir is not None:
        meta["model_dir"] = model_dir
    for k, v in (extra or {}).items():
        if k in meta:
            raise GoldenError(f"metadata key {k} set twice")
        meta[k] = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
    return meta


def _diffusers_backend() -> str:
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    name, _ = _AttentionBackendRegistry.get_active_backend()
    name = getattr(name, "value", str(name))
    if name != "native":
        raise GoldenError(f"diffusers attention backend is {name}, expected native (torch SDPA)")
    return name


def to_storable(name: str, value) -> torch.Tensor:
    """Tensor as it will be stored: contiguous CPU, complex -> (real, imag), bool -> int32."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise GoldenError(f"{name}: not a tensor ({type(value).__name__})")
    t = value.detach().to("cpu")
    if t.is_complex():
        if t.dtype != torch.complex64:
            raise GoldenError(f"{name}: complex dtype {t.dtype}, expected complex64")
        t = torch.view_as_real(t)
    elif t.dtype == torch.bool:
        t = t.to(torch.int32)
    if t.is_floating_point() and t.dtype != torch.float32:
        raise GoldenError(f"{name}: dtype {t.dtype}, every float golden tensor must be float32")
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise GoldenError(f"{name}: dtype {t.dtype} is not storable (F32, I32, I64)")
    return t.contiguous().clone()


def check_tensor(name: str, t: torch.Tensor) -> None:
    """Refuses NaN/Inf and constant float tensors (numel >= 2 and all elements equal)."""
    if t.numel() == 0:
        raise GoldenError(f"{name}: empty tensor")
    if t.is_floating_point():
        if not bool(torch.isfinite(t).all()):
            raise GoldenError(f"{name}: contains NaN/Inf")
        if t.numel() >= 2 and bool((t == t.reshape(-1)[0]).all()):
            raise GoldenError(f"{name}: constant float tensor (every element {t.reshape(-1)[0].item()!r})")


def save(path: str, tensors: dict, metadata: dict) -> None:
    from safetensors.torch import save_file

    for key in ("format", "case", "kind", "dtype", "command"):
        if key not in metadata:
            raise GoldenError(f"{path}: metadata lacks {key}")
    out = {}
    for name, value in tensors.items():
        t = to_storable(name, value)
        check_tensor(name, t)
        out[name] = t
    for k, v in metadata.items():
        if not isinstance(v, str):
            raise GoldenError(f"{path}: metadata {k} is not a string")
    if ALIASES_KEY in metadata or DEDUPED_KEY in metadata:
        raise GoldenError(f"{path}: metadata keys {ALIASES_KEY} / {DEDUPED_KEY} are save()'s own")
    raw = {name: t.numpy().tobytes() for name, t in out.items()}
    aliases = dedupe({name: (str(t.dtype), list(t.shape), raw[name]) for name, t in out.items()})
    metadata = {**metadata, **dedupe_metadata(aliases, sum(len(raw[n]) for n in aliases))}
    out = {name: t for name, t in out.items() if name not in aliases}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    save_file(out, tmp, metadata=metadata)
    _canonical_header(tmp)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _canonical_header(path: str) -> None:
    """Rewrites the safetensors header JSON with sorted keys (safetensors emits metadata in
    hash-map order), so that a rerun reproduces the file byte for byte. The data section
    and every data_offsets entry (relative to it) are unchanged."""
    import struct

    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((-len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(data)


class _AliasedGolden:
    """A safe_open handle with zimage_aliases resolved, as the C++ reader does: keys()
    lists stored tensors and aliases, get_tensor(alias) is the stored tensor,
    metadata() lacks the alias key."""

    def __init__(self, f):
        self._f = f
        meta = dict(f.metadata() or {})
        self._aliases = json.loads(meta.pop(ALIASES_KEY, "{}"))
        self._meta = meta

    def metadata(self):
        return dict(self._meta)

    def keys(self):
        return sorted(list(self._f.keys()) + list(self._aliases))

    def get_tensor(self, name):
        return self._f.get_tensor(self._aliases.get(name, name))


@contextlib.contextmanager
def open_golden(path: str):
    """safe_open(path, framework="pt") for a golden, aliases resolved (_AliasedGolden)."""
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        yield _AliasedGolden(f)


def summarize(path: str) -> str:
    """Loads a golden back with safetensors and re-checks every tensor."""
    n = 0
    elems = 0
    with open_golden(path) as f:
        meta = f.metadata()
        if meta.get("format") != FORMAT:
            raise GoldenError(f"{path}: format {meta.get('format')!r}")
        for k in f.keys():
            t = f.get_tensor(k)
            check_tensor(k, t)
            n += 1
            elems += t.numel()
    size = os.path.getsize(path)
    return f"{path}: {n} tensors, {elems} elements, {size} bytes ({size / 2**20:.2f} MiB), case={meta.get('case')}"


def check_reference_golden(path: str, meta: dict, keys, expect_commit: str | None) -> None:
    """A reader's first checks of a float32 reference-mode golden: every key in `keys` present,
    threads 1 / tf32 off / math attention / cpu / float32, and the diffusers commit when one is expected."""
    missing = [k for k in keys if k not in meta]
    if missing:
        raise GoldenError(f"{path}: metadata lacks {missing}")
    if (meta["threads"], meta["tf32"], meta["attention_backend"], meta["device"], meta["dtype"]) != \
            ("1", "off", "math", "cpu", "float32"):
        raise GoldenError(f"{path}: not a reference-mode golden")
    if expect_commit and meta["diffusers_commit"] != expect_commit:
        raise GoldenError(f"{path}: diffusers_commit {meta['diffusers_commit']} != {expect_commit}")


# --------------------------------------------------------------------------- command line


def case_parser(doc: str, all_cases, out_help: str = "golden folder (default golden)") -> argparse.ArgumentParser:
    """The dumpers' parser: --case (repeatable, from all_cases or "all"), --out, --diffusers-commit."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", action="append", choices=list(all_cases) + ["all"], help="case to dump (repeatable)")
    ap.add_argument("--out", default="golden", help=out_help)
    ap.add_argument("--diffusers-commit", default=None, help="git sha of the diffusers source (or DIFFUSERS_COMMIT)")
    return ap


def select_cases(args, all_cases, native_backend: bool = True) -> list:
    """Sets args.commit (diffusers_commit), returns the cases args.case names (all_cases for none
    or "all") and, with native_backend, refuses a DIFFUSERS_ATTN_BACKEND other than native."""
    args.commit = diffusers_commit(args.diffusers_commit)
    cases = args.case or ["all"]
    if "all" in cases:
        cases = list(all_cases)
    if native_backend and os.environ.get("DIFFUSERS_ATTN_BACKEND", "native") != "native":
        raise GoldenError("unset DIFFUSERS_ATTN_BACKEND")
    return cases


def print_written(written, folder_size: bool = False) -> None:
    """Prints summarize() of each golden written, and the files of each model folder written
    (with their total size when folder_size)."""
    for w in written:
        if w.endswith(".safetensors"):
            print(summarize(w))
        else:
            line = f"{w}: " + ", ".join(sorted(os.listdir(w)))
            if folder_size:
                line += f" ({sum(os.path.getsize(os.path.join(w, f)) for f in os.listdir(w))} bytes)"
            print(line)


def save_pretrained_checked(model, dst: str, sharded: bool, max_shard_size: str) -> None:
    """Replaces dst by model.save_pretrained(dst): sharded at max_shard_size (an index json
    required) or a single diffusion_pytorch_model.safetensors."""
    if os.path.exists(dst):
        shutil.rmtree(dst)
    if sharded:
        model.save_pretrained(dst, max_shard_size=max_shard_size)
        if not os.path.exists(os.path.join(dst, "diffusion_pytorch_model.safetensors.index.json")):
            raise GoldenError(f"{dst}: expected a sharded checkpoint with an index json")
    else:
        model.save_pretrained(dst)
        if not os.path.exists(os.path.join(dst, "diffusion_pytorch_model.safetensors")):
            raise GoldenError(f"{dst}: expected a single safetensors file")


def reload_shipped(dst: str, model, model_cls):
    """model_cls.from_pretrained(dst) in eval mode, once its weights (float32) equal model's bit for
    bit and its config equals model's and dst/config.json; the caller compares the outputs."""
    m2 = model_cls.from_pretrained(dst).eval()
    sd1, sd2 = model.state_dict(), m2.state_dict()
    if set(sd1) != set(sd2) or any(not torch.equal(sd1[k], sd2[k]) or sd2[k].dtype != torch.float32 for k in sd1):
        raise GoldenError(f"{dst}: reloaded weights differ")
    c1 = json.loads(model.to_json_string())
    c2 = {k: v for k, v in json.loads(m2.to_json_string()).items() if k != "_name_or_path"}
    with open(os.path.join(dst, "config.json")) as f:
        c3 = json.load(f)
    if not (c1 == c2 == c3):
        raise GoldenError(f"{dst}: reloaded config differs")
    return m2


# --------------------------------------------------------------------------- bf16 peers


def bf16_metadata(*, case: str, kind: str, commit: str, fp32_meta: dict, extra: dict) -> dict:
    """Provenance of a bf16 peer golden (dump_dit_bf16.py, dump_pipeline_bf16.py): the versions,
    the z-image blob, seed and config of the fp32 golden <case>.safetensors, reference mode
    (threads 1, tf32 off, math SDPA, cpu), the fp32 rerun found bitwise equal, plus the dumper's
    own keys in extra."""
    meta = {
        "format": FORMAT,
        "case": case,
        "kind": kind,
        "fp32_golden": f"{case}.safetensors",
        **_source_versions(commit),
        "python_version": platform.python_version(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "dtype": "bfloat16",
        "seed": fp32_meta["seed"],
        "config": fp32_meta["config"],
        "fp32_rerun_bitwise": "true",
        "command": " ".join(sys.argv),
        "threads": str(torch.get_num_threads()),
        "tf32": "off",
        "attention_backend": "math",
        "diffusers_attention_backend": _diffusers_backend(),
        "device": "cpu",
    }
    for k, v in extra.items():
        if k in meta:
            raise GoldenError(f"metadata key {k} set twice")
        meta[k] = v
    return meta


def load_fp32_golden(path: str, kind: str):
    """(metadata, tensors) of the float32 golden of the given kind that a bf16 peer pairs with."""
    with open_golden(path) as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("kind") != kind or meta.get("dtype") != "float32":
        raise GoldenError(f"{path}: not a float32 kind={kind} golden")
    return meta, tensors


def save_bf16(golden_dir: str, case: str, tensors: dict, metadata: dict) -> str:
    """Saves a bf16 peer golden as golden_dir/<case>.bf16.safetensors (one thread required); its path."""
    if metadata["threads"] != "1":
        raise GoldenError(f"not in reference mode: threads={metadata['threads']}")
    path = os.path.join(golden_dir, f"{case}.bf16.safetensors")
    save(path, tensors, metadata)
    return path


def bf16_main(doc: str, all_cases, run_case, argv=None, golden_default: str = "golden") -> None:
    """The bf16 peer dumpers' main: --case / --golden / --diffusers-commit, then
    print(summarize(run_case(case, args))) for each case."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", action="append", choices=list(all_cases) + ["all"])
    ap.add_argument("--golden", default=golden_default, help="folder with the fp32 goldens; the bf16 files go there too")
    ap.add_argument("--diffusers-commit", default=None)
    args = ap.parse_args(argv)
    for c in select_cases(args, all_cases):
        print(summarize(run_case(c, args)))

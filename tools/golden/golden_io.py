"""Writing goldens in the zimage-golden-v1 format (docs/goldens.md).

- determinism(seed): one CPU thread, TF32 off, torch.manual_seed.
- reference_mode(): context manager for the forward: no_grad + SDPA math backend.
- provenance(...): the metadata every golden carries.
- save(path, tensors, metadata): refuses NaN/Inf and constant float tensors,
  stores complex as view_as_real (float32), bool as int32, and stores a tensor
  byte-identical to another once (the others: metadata "zimage_aliases", thin_rules.dedupe).
- open_golden(path): safe_open with the aliases resolved (use it to read goldens back).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
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


def provenance(*, case: str, kind: str, seed: int, config_json: str, synthetic_spec: dict,
               commit: str, model_dir: str | None = None, extra: dict | None = None) -> dict:
    import diffusers

    src_root = os.path.dirname(os.path.dirname(diffusers.__file__))
    meta = {
        "format": FORMAT,
        "case": case,
        "kind": kind,
        "diffusers_version": str(diffusers.__version__),
        "diffusers_commit": commit,
        "diffusers_z_image_blob": git_blob_id(os.path.join(src_root, ZIMAGE_MODEL_FILE)),
        "torch_version": str(torch.__version__),
        "numpy_version": str(np.__version__),
        "safetensors_version": _version("safetensors"),
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

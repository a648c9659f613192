"""Counter-based synthetic weights, identical in Python and C++.

Spec: docs/goldens.md, section "Synthetic weights". For parameter `name`,
seed S, flat row-major index i:

    h      = fnv1a64(utf8 bytes of name)
    key    = mix64(S * 0x9E3779B97F4A7C15 ^ h)            (uint64, mod 2^64)
    bits_i = mix64(key + (i + 1) * 0x9E3779B97F4A7C15)
    u_i    = (bits_i >> 11) * 2^-53                       exact in float64
    w_i    = float32(o + s * (2 * u_i - 1))               float64 ops, one rounding each

    mix64(z): z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27;
              z *= 0x94D049BB133111EB; z ^= z >> 31

The C++ twin is reference/io/synthetic.{h,cpp}; golden/synthetic_check.safetensors
holds tensors made here (and the FNV-1a 64 digest of one large one) that the C++ test
compares bit for bit.

numpy only (no torch needed for the generator itself); fill_module() needs torch.
"""

from __future__ import annotations

import math

import numpy as np

MASK64 = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15
MIX_M1 = 0xBF58476D1CE4E5B9
MIX_M2 = 0x94D049BB133111EB
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3

# Elements generated per numpy chunk (a few uint64/float64 temporaries of this size live at once).
CHUNK = 1 << 22

_U_GAMMA = np.uint64(GOLDEN_GAMMA)
_U_M1 = np.uint64(MIX_M1)
_U_M2 = np.uint64(MIX_M2)
_U_ONE = np.uint64(1)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TWO_M53 = 2.0**-53


def fnv1a64_bytes(data: bytes) -> int:
    """FNV-1a 64 of a byte string (Python ints, exact)."""
    h = FNV_OFFSET
    for b in data:
        h ^= b
        h = (h * FNV_PRIME) & MASK64
    return h


def fnv1a64_hex(values, dtype: str = "<f4") -> str:
    """"0x" + 16 hex digits: FNV-1a 64 of the bytes of values (a torch tensor or a numpy array) as
    `dtype` (float32 or int32, little endian), row-major. The input digests of the bf16 peer goldens
    and the scheduler / SDPA goldens, and synthetic_check's large tensors."""
    if hasattr(values, "detach"):
        values = values.detach().contiguous().numpy()
    return "0x%016x" % fnv1a64_bytes(np.ascontiguousarray(values, dtype=dtype).tobytes())


def fnv1a64(name: str) -> int:
    """FNV-1a 64 of the UTF-8 bytes of name (the generator's name hash)."""
    return fnv1a64_bytes(name.encode("utf-8"))


def mix64_int(z: int) -> int:
    """mix64 on a Python int (mod 2^64)."""
    z &= MASK64
    z ^= z >> 30
    z = (z * MIX_M1) & MASK64
    z ^= z >> 27
    z = (z * MIX_M2) & MASK64
    z ^= z >> 31
    return z


def _mix64_np(z: np.ndarray) -> np.ndarray:
    """mix64 on a uint64 array, in place (wrapping arithmetic)."""
    z ^= z >> _S30
    z *= _U_M1
    z ^= z >> _S27
    z *= _U_M2
    z ^= z >> _S31
    return z


def stream_key(seed: int, name: str) -> int:
    if not (0 <= int(seed) <= MASK64):
        raise ValueError(f"synthetic: seed {seed} is not a uint64")
    return mix64_int(((int(seed) * GOLDEN_GAMMA) & MASK64) ^ fnv1a64(name))


def synthetic(seed: int, name: str, shape, offset: float, scale: float) -> np.ndarray:
    """The synthetic tensor for (seed, name) as a float32 array of `shape` (row-major)."""
    shape = tuple(int(d) for d in shape)
    n = math.prod(shape)
    offset = float(offset)
    scale = float(scale)
    key = np.uint64(stream_key(seed, name))
    out = np.empty(n, dtype=np.float32)
    with np.errstate(over="ignore"):
        for start in range(0, n, CHUNK):
            stop = min(n, start + CHUNK)
            z = np.arange(start, stop, dtype=np.uint64)
            z += _U_ONE                 # i + 1
            z *= _U_GAMMA               # (i + 1) * gamma   mod 2^64
            z += key                    # key + ...         mod 2^64
            _mix64_np(z)
            u = (z >> _S11).astype(np.float64)  # < 2^53: exact
            u *= _TWO_M53                       # exact (power of two)
            # o + s * (2u - 1): float64, one rounding per op (numpy never fuses).
            w = 2.0 * u
            w -= 1.0
            w *= scale
            w += offset
            out[start:stop] = w.astype(np.float32)  # round to nearest even
    return out.reshape(shape)


# --------------------------------------------------------------------------- rules


def default_rule(name: str, shape, module_type: str):
    """(offset, scale) for a parameter named `name` (full dotted name, the one the
    generator hashes). module_type is the class name of the owning module, used only
    to check that the name-based rule picks what was meant."""
    leaf = name.rsplit(".", 1)[-1]
    if name in ("x_pad_token", "cap_pad_token", "siglip_pad_token"):
        return 0.0, 1.0
    if leaf == "weight" and ("norm" in name or name.endswith("cap_embedder.0.weight")):
        if module_type != "RMSNorm":
            raise ValueError(f"synthetic rule: {name} looks like an RMSNorm weight but belongs to {module_type}")
        return 1.0, 0.2
    if leaf == "bias":
        return 0.0, 0.05
    if leaf == "weight" and module_type == "Linear":
        fan_in = int(shape[1])
        return 0.0, 1.0 / math.sqrt(fan_in)
    raise ValueError(f"synthetic rule: no rule for parameter {name} {list(shape)} of {module_type}")


def fill_module(module, seed: int, prefix: str = "", rule=default_rule, spec: dict | None = None) -> dict:
    """Overwrites every parameter of `module` with its synthetic values.

    Parameters are named prefix + named_parameters() name (the name that is hashed).
    Returns (or extends) the spec {"seed": S, "tensors": {name: {"shape", "offset", "scale"}}}.
    """
    import torch

    if spec is None:
        spec = {"seed": int(seed), "tensors": {}}
    elif spec["seed"] != int(seed):
        raise ValueError("fill_module: one spec holds one seed")
    owners = {}
    for mname, mod in module.named_modules():
        for pname, _ in mod.named_parameters(recurse=False):
            owners[f"{mname}.{pname}" if mname else pname] = type(mod).__name__
    with torch.no_grad():
        for pname, p in module.named_parameters():
            full = prefix + pname
            if full in spec["tensors"]:
                raise ValueError(f"fill_module: parameter {full} listed twice")
            offset, scale = rule(full, tuple(p.shape), owners[pname])
            values = synthetic(seed, full, tuple(p.shape), offset, scale)
            if p.dtype != torch.float32:
                raise ValueError(f"fill_module: {full} is {p.dtype}, expected float32")
            p.copy_(torch.from_numpy(values))
            spec["tensors"][full] = {"shape": [int(d) for d in p.shape], "offset": offset, "scale": scale}
    return spec


if __name__ == "__main__":  # tiny self-check: print a few values
    import sys

    s = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    nm = sys.argv[2] if len(sys.argv) > 2 else "x_pad_token"
    v = synthetic(s, nm, (8,), 0.0, 1.0)
    print(nm, s, [float(x) for x in v], [hex(int(x)) for x in v.view(np.uint32)])

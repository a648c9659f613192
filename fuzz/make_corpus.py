#!/usr/bin/env python3
"""Regenerates the seed corpus under fuzz/corpus/ (standard library only).

fuzz_safetensors: small valid files (every dtype, metadata, scalar, empty
tensor, no tensors) and edge cases (truncated, header length past the end or
absurd, overlapping / duplicate / reversed offsets, unknown dtype, bad shapes),
aliases (metadata "zimage_aliases": valid, to a missing tensor, chained, shadowing
a stored name, not an object).
fuzz_config: Z-Image-Turbo's transformer config.json, the tiny golden configs,
and a few broken ones. fuzz_shard_index: the tiny golden index, a few broken
indexes; valid_index.json (the index matching the fuzzer's own fixture shards)
is written by the fuzzer: ZIMAGE_FUZZ_WRITE_VALID_INDEX=PATH build-fuzz/bin/fuzz_shard_index -runs=0
fuzz_tokenizer (first byte '0': a tokenizer.json follows; '1': text for the
fixed golden tokenizer follows): the golden tokenizer.json, a cut-down one,
tokenizers of other kinds and malformed entries; prompts with added tokens,
contractions, digits, CR/LF runs, combining marks, CJK, emoji, invalid UTF-8.
fuzz_vae_config: the golden VAE configs, the FLUX.1 VAE's, an SD-style one,
and broken ones.
"""
import json
import os
import shutil
import struct

ROOT = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(ROOT)
OUT = os.path.join(ROOT, "corpus")


def put(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(OUT, target, name), "wb") as f:
        f.write(data)


def st(header, data=b"", header_len=None, pad=True):
    """A safetensors file: header dict (or raw str), then data."""
    text = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    raw = text.encode()
    if pad and not isinstance(header, str):
        raw += b" " * ((8 - (8 + len(raw)) % 8) % 8)
    n = len(raw) if header_len is None else header_len
    return struct.pack("<Q", n) + raw + data


def tensors(entries, metadata=None):
    """entries: [(name, dtype, shape, bytes)] laid out in order."""
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, b in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    return st(header, data)


def safetensors_seeds():
    t = "fuzz_safetensors"
    every = [
        ("f64", "F64", [2], struct.pack("<2d", 0.1, -1e300)),
        ("f32", "F32", [2, 2], struct.pack("<4f", 1.0, -2.5, float("inf"), 1e-40)),
        ("bf16", "BF16", [3], struct.pack("<3H", 0x3F80, 0x7FC0, 0x8001)),
        ("f16", "F16", [3], struct.pack("<3H", 0x3C00, 0x7C00, 0x0001)),
        ("i64", "I64", [2], struct.pack("<2q", -(2**63), 2**40)),
        ("i32", "I32", [1, 3], struct.pack("<3i", -7, 0, 2**31 - 1)),
        ("u8", "U8", [3], bytes([0, 128, 255])),
        ("bool", "BOOL", [2, 2], bytes([1, 0, 0, 2])),
        ("scalar", "F32", [], struct.pack("<f", 7.0)),
        ("empty", "F32", [0, 3], b""),
    ]
    put(t, "all_dtypes.safetensors", tensors(every, {"format": "pt", "note": "caf\u00e9"}))
    for name, dtype, shape, b in every[:8]:
        put(t, "one_%s.safetensors" % dtype.lower(), tensors([(name, dtype, shape, b)]))
    put(t, "no_tensors.safetensors", st({"__metadata__": {"format": "pt"}}))
    put(t, "empty_header.safetensors", st("{}"))
    put(t, "short_file.safetensors", b"abcde")
    good = tensors(every[:3])
    put(t, "truncated_data.safetensors", good[:-5])
    put(t, "truncated_header.safetensors", good[:20])
    put(t, "header_len_past_end.safetensors", st("{}", header_len=1000))
    put(t, "header_len_absurd.safetensors", st("{}", header_len=1 << 60))
    put(t, "bad_json.safetensors", st('{"a": {"dtype":\n'))
    put(t, "header_array.safetensors", st("[1, 2]"))
    put(t, "overlap.safetensors",
        st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', bytes(12)))
    put(t, "duplicate.safetensors",
        st('{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', bytes(2)))
    put(t, "begin_after_end.safetensors", st('{"t":{"dtype":"U8","shape":[0],"data_offsets":[8,4]}}', bytes(16)))
    put(t, "size_mismatch.safetensors", st('{"t":{"dtype":"BF16","shape":[1,3],"data_offsets":[0,8]}}', bytes(8)))
    put(t, "unknown_dtype.safetensors", st('{"t":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}', bytes(1)))
    put(t, "bad_shape.safetensors", st('{"t":{"dtype":"U8","shape":[-1, 1.5, [2]],"data_offsets":[0,0]}}'))
    put(t, "huge_zero_dims.safetensors",
        st('{"t":{"dtype":"F64","shape":[0,9223372036854775807,9223372036854775807],"data_offsets":[0,0]}}'))
    put(t, "huge_dims.safetensors",
        st('{"t":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}', bytes(8)))
    put(t, "offsets_overflow.safetensors",
        st('{"t":{"dtype":"U8","shape":[1],"data_offsets":[18446744073709551615,0]}}', bytes(1)))
    put(t, "metadata_not_string.safetensors", st('{"__metadata__":{"seed":3}}'))
    put(t, "unknown_field.safetensors", st('{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}}', bytes(1)))
    # Aliases (metadata "zimage_aliases" = JSON object {alias: stored tensor}).
    def aliased(aliases):
        return tensors(every[:3], {"format": "pt", "zimage_aliases": aliases})
    put(t, "aliases.safetensors", aliased('{"f64_copy":"f64","z":"bf16"}'))
    put(t, "alias_missing.safetensors", aliased('{"z":"nope"}'))
    put(t, "alias_chain.safetensors", aliased('{"y":"z","z":"f32"}'))
    put(t, "alias_shadows_stored.safetensors", aliased('{"f32":"f64"}'))
    put(t, "alias_not_object.safetensors", aliased('["f32"]'))
    put(t, "alias_not_string.safetensors", aliased('{"z":1}'))


def config_seeds():
    t = "fuzz_config"
    turbo = {
        "_class_name": "ZImageTransformer2DModel", "_diffusers_version": "0.36.0.dev0",
        "all_f_patch_size": [1], "all_patch_size": [2], "axes_dims": [32, 48, 48], "axes_lens": [1536, 512, 512],
        "cap_feat_dim": 2560, "dim": 3840, "in_channels": 16, "n_heads": 30, "n_kv_heads": 30, "n_layers": 30,
        "n_refiner_layers": 2, "norm_eps": 1e-05, "qk_norm": True, "rope_theta": 256.0, "t_scale": 1000.0,
    }
    put(t, "turbo_config.json", json.dumps(turbo, indent=2, sort_keys=True) + "\n")
    shutil.copyfile(os.path.join(SRC, "golden", "models", "tiny_batch2", "config.json"),
                    os.path.join(OUT, t, "tiny_batch2_config.json"))
    # tiny_wide has no model folder any more (its weights come from the golden's synthetic_weights spec): its
    # config is the golden's `config` metadata, the same JSON the folder's config.json held.
    with open(os.path.join(SRC, "golden", "tiny_wide.safetensors"), "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    put(t, "tiny_wide_config.json", json.dumps(json.loads(header["__metadata__"]["config"]), indent=2) + "\n")
    put(t, "truncated.json", '{"dim": ')
    put(t, "siglip.json", json.dumps(dict(turbo, siglip_feat_dim=1152)))
    put(t, "wrong_types.json", json.dumps(dict(turbo, dim="3840", qk_norm=1, axes_lens=[1536, 512.5, 512])))
    put(t, "not_object.json", "[1, 2, 3]")


def index_seeds():
    t = "fuzz_shard_index"
    shutil.copyfile(os.path.join(SRC, "golden", "models", "tiny_batch2", "diffusion_pytorch_model.safetensors.index.json"),
                    os.path.join(OUT, t, "tiny_batch2_index.json"))
    put(t, "no_weight_map.json", '{"metadata": {"total_size": 0}}')
    put(t, "bad_shard_names.json", json.dumps({"weight_map": {"x_pad_token": "../config.json", "cap_pad_token": 3,
                                                              "a": ".", "b": "config.json"}}))
    put(t, "truncated.json", '{"weight_map": {"x_pad_token": "diffusion_pytorch_model-00001-of-00003.safe')


def tokenizer_seeds():
    t = "fuzz_tokenizer"
    with open(os.path.join(SRC, "golden", "text_encoder", "tokenizer", "tokenizer.json"), "rb") as f:
        golden = f.read()
    put(t, "golden_tokenizer.json", b"0" + golden)
    g = json.loads(golden)
    small = dict(g)
    m = dict(g["model"])
    keep = sorted(m["vocab"].items(), key=lambda kv: kv[1])[:300]
    m["vocab"] = dict(keep)
    m["merges"] = [" ".join(p) for p in m["merges"][:40]]  # the "a b" string form
    small["model"] = m
    put(t, "small_tokenizer.json", "0" + json.dumps(small, ensure_ascii=False))
    tiny = dict(small, model=dict(m, vocab=dict(keep[:20]), merges=m["merges"][:3], ignore_merges=True))
    put(t, "tiny_no_byte_chars.json", "0" + json.dumps(tiny))
    put(t, "no_normalizer.json", "0" + json.dumps(dict(tiny, normalizer=None)))
    put(t, "wordpiece.json", "0" + json.dumps(dict(tiny, model=dict(tiny["model"], type="WordPiece"))))
    put(t, "lstrip.json", "0" + json.dumps(dict(tiny, added_tokens=[dict(g["added_tokens"][0], lstrip=True)])))
    put(t, "bad_added.json", "0" + json.dumps(dict(tiny, added_tokens=[{"id": -3, "content": 7, "lstrip": "no"}])))
    put(t, "bad_merge.json", "0" + json.dumps(dict(tiny, model=dict(tiny["model"], merges=["a b c", ["x"], 3]))))
    put(t, "truncated.json", b"0" + golden[:500])
    put(t, "not_object.json", "0[1, 2]")
    texts = {
        "chat_prompt.txt": "<|im_start|>user\nA red fox in the snow<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
        "contractions.txt": "It's what they'll say: I'M sure you've DON'T'd 12345 times!!\r\n\r\n  ",
        "unicode.txt": "caf\u00e9 cafe\u0301 \u1100\u1161\u11a8 \uac00 \u732b\u3068\u72ac \U0001F600\u200d x\u0323\u0307 \u212b",
        "spaces.txt": "a  b\t\t c\n\n\n   d \u00a0\u3000e   ",
        "added_overlap.txt": "<|im_end<|im_end|>|><|endoftext|><think></think>",
    }
    for name, text in texts.items():
        put(t, name, "1" + text)
    put(t, "invalid_utf8.txt", b"1abc\xc3(\xed\xa0\x80\xf4\x90\x80\x80\xc0\xaf")


def vae_config_seeds():
    t = "fuzz_vae_config"
    for m in ("vae_tiny", "vae_flux_like"):
        shutil.copyfile(os.path.join(SRC, "golden", "models", m, "config.json"), os.path.join(OUT, t, m + "_config.json"))
    flux = {
        "_class_name": "AutoencoderKL", "_diffusers_version": "0.30.0.dev0", "act_fn": "silu",
        "block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4,
        "force_upcast": True, "in_channels": 3, "latent_channels": 16, "latents_mean": None, "latents_std": None,
        "layers_per_block": 2, "mid_block_add_attention": True, "norm_num_groups": 32, "out_channels": 3,
        "sample_size": 1024, "scaling_factor": 0.3611, "shift_factor": 0.1159,
        "up_block_types": ["UpDecoderBlock2D"] * 4, "use_post_quant_conv": False, "use_quant_conv": False,
    }
    put(t, "flux_config.json", json.dumps(flux, indent=2, sort_keys=True) + "\n")
    sd = {k: v for k, v in flux.items() if k not in ("shift_factor", "use_quant_conv", "use_post_quant_conv",
                                                     "mid_block_add_attention", "latents_mean", "latents_std", "force_upcast")}
    put(t, "sd_style_config.json", json.dumps(dict(sd, latent_channels=4, scaling_factor=0.18215, sample_size=[512, 512])))
    put(t, "latents_stats.json", json.dumps(dict(flux, latent_channels=2, latents_mean=[0.1, -0.2], latents_std=[1, 2.5])))
    put(t, "wrong_types.json", json.dumps(dict(flux, act_fn="gelu", layers_per_block="2", force_upcast=1,
                                               down_block_types=["DownBlock2D"] * 4, shift_factor="x")))
    put(t, "bad_groups.json", json.dumps(dict(flux, norm_num_groups=48, block_out_channels=[128, 256, 512, 0])))
    put(t, "missing_keys.json", json.dumps({k: v for k, v in flux.items() if k not in ("in_channels", "act_fn")}))
    put(t, "truncated.json", '{"block_out_channels": [128, ')
    put(t, "not_object.json", '"AutoencoderKL"')


if __name__ == "__main__":
    for d in ("fuzz_safetensors", "fuzz_config", "fuzz_shard_index", "fuzz_tokenizer", "fuzz_vae_config"):
        os.makedirs(os.path.join(OUT, d), exist_ok=True)
    safetensors_seeds()
    config_seeds()
    index_seeds()
    tokenizer_seeds()
    vae_config_seeds()

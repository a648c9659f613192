#!/usr/bin/env python3
"""Times diffusers' ZImagePipeline on this GPU, prompt to PNG, the peer of zimage_bench_cuda's
BM_CudaImage_bf16 (bench/cuda/bench_cuda_pipeline.cpp): the same configs (Z-Image-Turbo's
transformer, transformers' Qwen3Model at Qwen3-4B's config, the FLUX.1 AutoencoderKL, the Turbo
scheduler: FlowMatchEulerDiscreteScheduler, shift 3.0), random weights in bf16, the same test
tokenizer (golden/text_encoder/tokenizer) and prompt, 1024x1024, 8 steps, guidance 0, every model
resident on the GPU. One image = pipe(...) with output_type "pil", then image.save(PNG) to memory.
Wall time per image (torch.cuda.synchronize() before the clock stops); --warmup untimed images,
then --reps timed ones (at least 3); the median is the figure. Also the peak of
torch.cuda.max_memory_allocated / max_memory_reserved over the timed images.

    python3 tools/gpu_peers/peer_pipeline.py --diffusers-src DIR [--side 1024] [--steps 8]
                                             [--warmup 1] [--reps 3] [--compile]

DIR holds the diffusers package (DIR/diffusers/__init__.py, e.g. a checkout's src/). One JSON
line per measurement on stdout, e.g.
{"peer": "diffusers_pipeline", "mode": "eager", "side": 1024, "steps": 8, "median_s": 1.9, "min_s": ...,
 "max_s": ..., "reps": 3, "max_memory_allocated_gib": 21.3, "max_memory_reserved_gib": 22.0,
 "torch": "2.11.0", "diffusers": "0.40.0.dev0", "gpu": "NVIDIA H200"}
--compile also times the pipeline with torch.compile(pipe.transformer) (mode "torch.compile").
A mode that fails prints {"...", "error": "..."} and the others go on.
--smoke runs the same script on the CPU with the tiny configs of golden/ (the tiny pipeline's
transformer and VAE, golden/text_encoder/tiny_te's Qwen3), 64x64, 2 steps: a check of the
script's use of diffusers and transformers without a GPU (its times mean nothing).
"""
import argparse
import io
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "..", "golden")
# bench_cuda_pipeline.cpp's kPrompt, word for word.
PROMPT = ("A red fox sitting in fresh snow at dawn, soft golden light through pine trees, "
          "photographed with a telephoto lens, shallow depth of field, highly detailed fur")
DIT = dict(dim=3840, n_layers=30, n_refiner_layers=2, n_heads=30, n_kv_heads=30, cap_feat_dim=2560,
           axes_dims=[32, 48, 48], axes_lens=[1536, 512, 512], in_channels=16, rope_theta=256.0, t_scale=1000.0)
# Qwen3-4B (reference/text_encoder/qwen3_config.h qwen3_4b_config).
QWEN3 = dict(vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
             num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
             rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True, attention_bias=False)
# The FLUX.1 VAE (reference/vae/config.h flux_vae_config).
VAE = dict(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=[128, 256, 512, 512],
           down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
           layers_per_block=2, norm_num_groups=32, act_fn="silu", sample_size=1024, scaling_factor=0.3611,
           shift_factor=0.1159, force_upcast=True, use_quant_conv=False, use_post_quant_conv=False, mid_block_add_attention=True)


def tiny_configs():
    """The tiny pipeline's configs from golden/ (what the C++ tests' tiny pipeline uses)."""
    def load(*parts):
        with open(os.path.join(GOLDEN, *parts)) as f:
            return {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    dit = load("models", "pipeline_tiny", "transformer", "config.json")
    vae = load("models", "pipeline_tiny", "vae", "config.json")
    te = load("text_encoder", "tiny_te", "config.json")
    qwen3 = {k: te[k] for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                "num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps",
                                "attention_bias")}
    qwen3["rope_theta"] = (te.get("rope_parameters") or {}).get("rope_theta", te.get("rope_theta", 1e6))
    return dit, qwen3, vae, "cpu"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--diffusers-src", default=os.environ.get("DIFFUSERS_SRC", ""))
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile(pipe.transformer)")
    ap.add_argument("--smoke", action="store_true", help="tiny configs on the CPU (a check of the script)")
    a = ap.parse_args()
    a.reps = max(a.reps, 3)
    if a.diffusers_src:
        sys.path.insert(0, a.diffusers_src)
    import torch
    import diffusers
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
    from transformers import AutoTokenizer, Qwen3Config, Qwen3Model

    dit, qwen3, vae_cfg, device = DIT, QWEN3, VAE, "cuda"
    if a.smoke:
        dit, qwen3, vae_cfg, device = tiny_configs()
        a.side, a.steps, a.warmup, a.reps = 64, 2, 1, 3
    base = {"peer": "diffusers_pipeline", "side": a.side, "steps": a.steps, "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "gpu": torch.cuda.get_device_name(0) if device == "cuda" else "none (--smoke, CPU)"}
    cuda = device == "cuda"
    t0 = time.time()
    torch.manual_seed(0)
    with torch.device(device):
        transformer = ZImageTransformer2DModel(**dit).to(torch.bfloat16).eval()
        te_cfg = Qwen3Config(**qwen3)
        rope = getattr(te_cfg, "rope_parameters", None)  # transformers 5 keeps the theta here
        if isinstance(rope, dict):
            rope["rope_theta"] = qwen3["rope_theta"]
            rope.setdefault("rope_type", "default")
        text_encoder = Qwen3Model(te_cfg).to(torch.bfloat16).eval()
        vae = AutoencoderKL(**vae_cfg).to(torch.bfloat16).eval()
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(GOLDEN, "text_encoder", "tokenizer"))
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False)
    pipe = ZImagePipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                          transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    n = {k: sum(p.numel() for p in m.parameters()) for k, m in
         (("transformer", transformer), ("text_encoder", text_encoder), ("vae", vae))}
    print(f"# params {n}, built in {time.time() - t0:.1f}s", flush=True)

    def image():
        g = torch.Generator("cpu").manual_seed(42)
        out = pipe(prompt=PROMPT, height=a.side, width=a.side, num_inference_steps=a.steps, guidance_scale=0.0,
                   generator=g, output_type="pil")
        buf = io.BytesIO()
        out.images[0].save(buf, format="PNG")
        if cuda:
            torch.cuda.synchronize()
        assert out.images[0].size == (a.side, a.side), out.images[0].size
        return buf.tell()

    def measure(mode):
        row = dict(base, mode=mode)
        try:
            w0 = time.time()
            with torch.no_grad():
                for _ in range(a.warmup):
                    image()
                row["warmup_s"] = round(time.time() - w0, 2)
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                ts = []
                for _ in range(a.reps):
                    s = time.perf_counter()
                    row["png_bytes"] = image()
                    ts.append(time.perf_counter() - s)
            row.update(median_s=statistics.median(ts), min_s=min(ts), max_s=max(ts), reps=len(ts))
            if cuda:
                row.update(max_memory_allocated_gib=round(torch.cuda.max_memory_allocated() / 2**30, 3),
                           max_memory_reserved_gib=round(torch.cuda.max_memory_reserved() / 2**30, 3))
        except Exception as ex:
            row["error"] = f"{type(ex).__name__}: {str(ex).splitlines()[0][:300] if str(ex) else ''}"
        print(json.dumps(row), flush=True)

    measure("eager")
    if a.compile:
        pipe.transformer = torch.compile(pipe.transformer)
        measure("torch.compile")
    return 0


if __name__ == "__main__":
    sys.exit(main())

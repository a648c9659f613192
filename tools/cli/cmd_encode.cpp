// zimage encode: prompt -> embeddings as ZImagePipeline.encode_prompt
// computes them (docs/text_encoder.md), written as prompt_embeds.{i}.
#include <cstdint>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "encode.h"
#include "io/safetensors.h"
#include "text_encoder/prompt_encoder.h"

namespace zimage::cli {

std::vector<int64_t> encode_prompts_to_file(const std::string& pipeline_dir, const std::vector<std::string>& prompts,
                                            const EncodeOptions& opt, const std::string& out, const std::string& stem) {
  ZIMAGE_CHECK(!prompts.empty(), "no prompt to encode");
  ZIMAGE_CHECK(PromptEncoder::pipeline_has_text_encoder(pipeline_dir),
               pipeline_dir + ": no text_encoder/config.json and tokenizer/tokenizer.json (a pipeline folder with a text encoder)");
  const auto t0 = std::chrono::steady_clock::now();
  const PromptEncoder enc = PromptEncoder::open_pipeline(pipeline_dir);
  (void)qwen3_hidden_index(enc.text_encoder().config(), opt.hidden_layer);
  auto warn = [](const std::string& w) { std::fprintf(stderr, "zimage: warning: %s\n", w.c_str()); };
  SafetensorsWriter w;
  std::vector<int64_t> lengths;
  auto put = [&](const auto& embeds) {
    for (size_t i = 0; i < embeds.size(); ++i) {
      w.add(stem + std::to_string(i), embeds[i]);
      lengths.push_back(embeds[i].dim(0));
    }
  };
  bool nonfinite = false;
  auto run = [&](auto zero) {
    using T = decltype(zero);
    Activations<T> acts;
    acts.store = false;
    acts.check_finite = true;
    const auto embeds = enc.encode<T>(prompts, opt.max_sequence_length, opt.hidden_layer, opt.think, warn,
                                      opt.check_finite ? &acts : nullptr);
    if (acts.first_nonfinite) {
      std::fprintf(stderr, "zimage: check-finite: text encoder: %s\n", acts.first_nonfinite->describe().c_str());
      nonfinite = true;
      return;
    }
    put(embeds);
  };
  if (opt.dtype == "float32") run(float(0));
  else if (opt.dtype == "float64") run(double(0));
  else throw Error("--dtype must be float32 or float64, not '" + opt.dtype + "'");
  if (nonfinite) return {};  // nothing is written: the run is not a result
  w.set_metadata("prompts", nlohmann::json(prompts).dump());
  w.set_metadata("hidden_layer", std::to_string(opt.hidden_layer));
  w.set_metadata("max_sequence_length", std::to_string(opt.max_sequence_length));
  w.set_metadata("think", opt.think ? *opt.think : "");
  w.set_metadata("think_block", opt.think ? "yes" : "no");
  w.set_metadata("dtype", opt.dtype);
  w.set_metadata("producer", "zimage encode (CPU reference)");
  w.write(out);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "zimage: encoded %zu prompt(s) (%s tokens) in %.1f s -> %s\n", prompts.size(),
               nlohmann::json(lengths).dump().c_str(), s, out.c_str());
  return lengths;
}

int cmd_encode(const Args& args) {
  allow_only(args, {"--model", "--prompt", "--hidden-layer", "--max-sequence-length", "--think", "--out", "--dtype",
                    "--check-finite"});
  EncodeOptions opt;
  auto int_arg = [&](const std::string& flag, int def) {
    const int64_t x = args.get_int(flag, def);
    ZIMAGE_CHECK(x >= INT32_MIN && x <= INT32_MAX, flag + " is out of range: " + std::to_string(x));
    return int(x);
  };
  opt.hidden_layer = int_arg("--hidden-layer", -2);
  opt.max_sequence_length = int_arg("--max-sequence-length", 512);
  ZIMAGE_CHECK(opt.max_sequence_length > 0, "--max-sequence-length must be positive");
  if (args.has("--think")) opt.think = args.get("--think");
  opt.dtype = args.get("--dtype", "float32");
  ZIMAGE_CHECK(args.has("--prompt"), "missing required argument --prompt");
  opt.check_finite = args.has("--check-finite");
  const auto lengths = encode_prompts_to_file(args.required("--model"), args.values.at("--prompt"), opt, args.required("--out"));
  return lengths.empty() ? 1 : 0;
}

}  // namespace zimage::cli

// zimage encode: prompt -> embeddings as ZImagePipeline.encode_prompt
// computes them (docs/text_encoder.md), written as prompt_embeds.{i}.
// The encoding is the library's (pipeline/generate.h encode_prompts).
#include <chrono>
#include <climits>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "pipeline/generate.h"
#include "pipeline/pipeline_files.h"

namespace zimage::cli {

int cmd_encode(const Args& args) {
  allow_only(args, {"--model", "--prompt", "--hidden-layer", "--max-sequence-length", "--think", "--out", "--dtype",
                    "--check-finite"});
  auto int_arg = [&](const std::string& flag, int def) {
    const int64_t x = args.get_int(flag, def);
    ZIMAGE_CHECK(x >= INT32_MIN && x <= INT32_MAX, flag + " is out of range: " + std::to_string(x));
    return int(x);
  };
  PromptOptions opt;
  opt.hidden_layer = int_arg("--hidden-layer", -2);
  opt.max_sequence_length = int_arg("--max-sequence-length", 512);
  ZIMAGE_CHECK(opt.max_sequence_length > 0, "--max-sequence-length must be positive");
  if (args.has("--think")) opt.think = args.get("--think");
  const std::string dtype = args.get("--dtype", "float32");
  ZIMAGE_CHECK(dtype == "float32" || dtype == "float64", "--dtype must be float32 or float64, not '" + dtype + "'");
  ZIMAGE_CHECK(args.has("--prompt"), "missing required argument --prompt");
  const std::vector<std::string>& prompts = args.values.at("--prompt");
  const std::string model = args.required("--model"), out = args.required("--out");
  const bool check_finite = args.has("--check-finite");

  const auto t0 = std::chrono::steady_clock::now();
  auto warn = [](const std::string& w) { std::fprintf(stderr, "zimage: warning: %s\n", w.c_str()); };
  const EncodedPrompts e = dtype == "float32" ? encode_prompts<float>(model, prompts, opt, check_finite, warn)
                                              : encode_prompts<double>(model, prompts, opt, check_finite, warn);
  if (e.nonfinite) {  // nothing is written: the run is not a result
    std::fprintf(stderr, "zimage: check-finite: %s\n", e.nonfinite->c_str());
    return 1;
  }
  std::vector<int64_t> lengths;
  for (const auto& t : e.embeds) lengths.push_back(t.dim(0));
  write_prompt_embeds(out, e.embeds,
                      {{"prompts", nlohmann::json(prompts).dump()},
                       {"hidden_layer", std::to_string(opt.hidden_layer)},
                       {"max_sequence_length", std::to_string(opt.max_sequence_length)},
                       {"think", opt.think ? *opt.think : ""},
                       {"think_block", opt.think ? "yes" : "no"},
                       {"dtype", dtype},
                       {"producer", "zimage encode (CPU reference)"}});
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "zimage: encoded %zu prompt(s) (%s tokens) in %.1f s -> %s\n", prompts.size(),
               nlohmann::json(lengths).dump().c_str(), s, out.c_str());
  return 0;
}

}  // namespace zimage::cli

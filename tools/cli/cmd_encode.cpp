// zimage encode: prompt -> embeddings as ZImagePipeline.encode_prompt
// computes them (docs/text_encoder.md), written as prompt_embeds.{i}.
// The encoding is the library's (pipeline/generate.h encode_prompts).
#include <chrono>
#include <climits>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "core/choices.h"
#include "pipeline/generate.h"
#include "pipeline/pipeline_files.h"
#ifdef ZIMAGE_WITH_CUDA
#include "qwen3_cuda.h"  // cuda/qwen3_cuda.h
#endif

namespace zimage::cli {

const std::vector<std::string> kPromptOptionFlags = {"--hidden-layer", "--hidden-layers", "--hidden-layer-weights",
                                                     "--max-sequence-length", "--think", "--system-prompt", "--padding-side"};

PromptOptions parse_prompt_options(const Args& args) {
  auto int_value = [](const std::string& flag, const std::string& v) {
    const int64_t x = parse_int_value(flag, v);
    ZIMAGE_CHECK(x >= INT32_MIN && x <= INT32_MAX, flag + " is out of range: " + std::to_string(x));
    return int(x);
  };
  auto int_arg = [&](const std::string& flag, int def) { return args.has(flag) ? int_value(flag, args.get(flag)) : def; };
  // "a,b,c": each item through the CLI's number parser; an empty item is an error.
  auto list = [](const std::string& flag, const std::string& v) {
    std::vector<std::string> items;
    size_t start = 0;
    while (true) {
      const size_t comma = v.find(',', start);
      items.push_back(v.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
      ZIMAGE_CHECK(!items.back().empty(), flag + ": empty item in '" + v + "' (expected a comma-separated list)");
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    return items;
  };
  PromptOptions opt;
  opt.hidden_layer = int_arg("--hidden-layer", -2);
  opt.max_sequence_length = int_arg("--max-sequence-length", 512);
  ZIMAGE_CHECK(opt.max_sequence_length > 0, "--max-sequence-length must be positive");
  if (args.has("--think")) opt.think = args.get("--think");  // --think "" is the empty think block
  if (args.has("--system-prompt")) opt.system_prompt = args.get("--system-prompt");
  if (args.has("--padding-side")) {
    opt.padding_side = args.get("--padding-side");
    check_padding_side(*opt.padding_side, "--padding-side");
  }
  if (args.has("--hidden-layers")) {
    ZIMAGE_CHECK(!args.has("--hidden-layer"), "--hidden-layer and --hidden-layers exclude each other");
    for (const auto& x : list("--hidden-layers", args.get("--hidden-layers"))) opt.hidden_layers.push_back(int_value("--hidden-layers", x));
  }
  if (args.has("--hidden-layer-weights")) {
    ZIMAGE_CHECK(args.has("--hidden-layers"), "--hidden-layer-weights needs --hidden-layers");
    for (const auto& x : list("--hidden-layer-weights", args.get("--hidden-layer-weights")))
      opt.hidden_layer_weights.push_back(parse_number_value("--hidden-layer-weights", x));
  }
  if (!opt.hidden_layers.empty()) (void)hidden_layer_mix_weights(opt.hidden_layers, opt.hidden_layer_weights);
  return opt;
}

int cmd_encode(const Args& args) {
  std::vector<std::string> known = {"--model", "--prompt", "--out", "--dtype", "--check-finite", "--device"};
  known.insert(known.end(), kPromptOptionFlags.begin(), kPromptOptionFlags.end());
  allow_only(args, known);
  const PromptOptions opt = parse_prompt_options(args);
  const std::string dtype = args.get("--dtype", "float32");
  const std::string device = args.get("--device", "cpu");
  require_choice(device, {"cpu", "cuda"}, "--device");
  TextEncoderBackend backend;
  if (device == "cpu") {
    ZIMAGE_CHECK(dtype == "float32" || dtype == "float64",
                 "--dtype must be float32 or float64 with --device cpu (float32 or bfloat16 with --device cuda), not '" +
                     dtype + "'");
  } else {
#ifdef ZIMAGE_WITH_CUDA
    ZIMAGE_CHECK(dtype == "float32" || dtype == "bfloat16",
                 "--dtype must be float32 or bfloat16 with --device cuda (float64 is the CPU's truth), not '" + dtype + "'");
    std::string why;
    ZIMAGE_CHECK(gpu::device_available(&why), "--device cuda: no CUDA device: " + why);
    gpu::Qwen3CudaOptions te;
    te.dtype = gpu::parse_dtype(dtype);
    backend = gpu::cuda_text_encoder(te);
#else
    throw Error("--device cuda: this zimage was built without the CUDA path (configure with -DZIMAGE_CUDA=ON and a "
                "CUDA toolkit)");
#endif
  }
  ZIMAGE_CHECK(args.has("--prompt"), "missing required argument --prompt");
  const std::vector<std::string>& prompts = args.values.at("--prompt");
  const std::string model = args.required("--model"), out = args.required("--out");
  const bool check_finite = args.has("--check-finite");

  const auto t0 = std::chrono::steady_clock::now();
  auto warn = [](const std::string& w) { std::fprintf(stderr, "zimage: warning: %s\n", w.c_str()); };
  const EncodedPrompts e = dtype == "float64" ? encode_prompts<double>(model, prompts, opt, check_finite, warn)
                                              : encode_prompts<float>(model, prompts, opt, check_finite, warn, backend);
  if (e.nonfinite) {  // nothing is written: the run is not a result
    std::fprintf(stderr, "zimage: check-finite: %s\n", e.nonfinite->c_str());
    return 1;
  }
  std::vector<int64_t> lengths;
  for (const auto& t : e.embeds) lengths.push_back(t.dim(0));
  write_prompt_embeds(out, e.embeds,
                      {{"prompts", nlohmann::json(prompts).dump()},
                       {"hidden_layer", std::to_string(opt.hidden_layer)},
                       {"hidden_layers", nlohmann::json(opt.encode_options().hidden_layers).dump()},
                       {"hidden_layer_weights", nlohmann::json(hidden_layer_mix_weights(opt.encode_options().hidden_layers,
                                                                                        opt.hidden_layer_weights)).dump()},
                       {"system_prompt", opt.system_prompt ? *opt.system_prompt : ""},
                       {"system_message", opt.system_prompt ? "yes" : "no"},
                       {"padding_side", opt.padding_side ? *opt.padding_side : "tokenizer"},
                       {"max_sequence_length", std::to_string(opt.max_sequence_length)},
                       {"think", opt.think ? *opt.think : ""},
                       {"think_block", opt.think ? "yes" : "no"},
                       {"dtype", dtype},
                       {"producer", device == "cuda" ? "zimage encode --device cuda (text encoder " + dtype + " on the GPU)"
                                                     : std::string("zimage encode (CPU reference)")}});
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "zimage: encoded %zu prompt(s) (%s tokens) in %.1f s -> %s\n", prompts.size(),
               nlohmann::json(lengths).dump().c_str(), s, out.c_str());
  return 0;
}

}  // namespace zimage::cli

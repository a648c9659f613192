// zimage generate: ZImagePipeline on the CPU reference, from prompts or
// prompt embeddings to PNG files (docs/pipeline.md). The pipeline is the
// library's generate() (pipeline/generate.h); this file parses the arguments,
// reads and writes the files and prints progress.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <type_traits>

#include "generate_setup.h"
#include "core/choices.h"
#include "pipeline/pipeline_files.h"
#include "dit/model_folder.h"
#ifdef ZIMAGE_WITH_CUDA
#include "pipeline_cuda.h"  // cuda/pipeline_cuda.h
#endif

namespace zimage::cli {

namespace {

namespace fs = std::filesystem;

std::vector<std::string> output_paths(const std::string& out, int64_t batch) {
  const fs::path p(out);
  ZIMAGE_CHECK(p.extension() == ".png", "--out must name a .png file, not '" + out + "'");
  const fs::path parent = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  ZIMAGE_CHECK(fs::is_directory(parent), "--out: directory '" + parent.string() + "' does not exist");
  if (batch == 1) return {out};
  std::vector<std::string> paths;
  for (int64_t b = 0; b < batch; ++b)
    paths.push_back((parent / (p.stem().string() + "." + std::to_string(b) + ".png")).string());
  return paths;
}

std::string seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", s);
  return buf;
}

template <class T>
int run(const PipelineFolder& pipe, const GenerateRequest& req, const std::vector<std::string>& outs,
        const std::string& save_latents, const std::string& dtype, const std::string& producer,
        const DeviceHooks& device = {}) {
  using clock = std::chrono::steady_clock;
  const GenerateOptions& opt = req.opt;
  const int64_t batch = int64_t(outs.size());
  clock::time_point t_load = clock::now(), t0 = t_load;
  GenerateHooks<T> hooks;
  if constexpr (std::is_same_v<T, float>) hooks.open_dit = device.open_dit;
  hooks.decode = device.decode;
  hooks.text_encoder = device.text_encoder;
  hooks.warn = [](const std::string& w) { std::fprintf(stderr, "zimage: warning: %s\n", w.c_str()); };
  hooks.on_stage = [&](const std::string& stage, const std::string& detail) {
    if (stage == "encode") {
      std::fprintf(stderr, "zimage generate: encoding %s\n", detail.c_str());
    } else if (stage == "load") {
      t_load = clock::now();
    } else if (stage == "denoise") {
      t0 = clock::now();
      std::fprintf(stderr, "zimage generate: %lld image(s) %lldx%lld, %d steps, guidance %g, %s, %s latents (seed %llu)\n",
                   (long long)batch, (long long)opt.height, (long long)opt.width, opt.steps, opt.cfg.guidance_scale,
                   dtype.c_str(), req.latents ? "given" : "seeded", (unsigned long long)req.seed);
      std::fprintf(stderr, "  weights (%s) ready in %s\n", detail.c_str(),
                   seconds(std::chrono::duration<double>(t0 - t_load).count()).c_str());
    } else if (stage == "decode") {
      std::fprintf(stderr, "  decoding with the VAE\n");
    }
  };
  hooks.on_step = [&](const StepEvent<T>& e) {
    const double el = std::chrono::duration<double>(clock::now() - t0).count();
    std::fprintf(stderr, "  step %d/%d  t=%.1f  %s elapsed, ETA %s\n", e.step, e.steps, e.timestep, seconds(el).c_str(),
                 seconds(el / e.step * (e.steps - e.step)).c_str());
    return true;
  };
  const Generated<T> g = generate<T>(pipe, req, hooks);
  if (g.nonfinite) {  // nothing is written: the run is not a result
    std::fprintf(stderr, "zimage: check-finite: %s\n", g.nonfinite->c_str());
    return 1;
  }
  if (!save_latents.empty())
    write_latents(save_latents, g.init_latents, g.latents,
                  {{"producer", producer}, {"dtype", dtype}, {"seed", std::to_string(req.seed)}});
  for (size_t b = 0; b < g.images.size(); ++b) {
    write_png(outs[b], g.images[b]);
    std::printf("wrote %s\n", outs[b].c_str());
  }
  std::fprintf(stderr, "  done in %s\n", seconds(std::chrono::duration<double>(clock::now() - t_load).count()).c_str());
  return 0;
}

}  // namespace

const std::vector<std::string>& generate_option_flags() {
  static const std::vector<std::string> flags = [] {  // built on first use: kPromptOptionFlags is another file's
    std::vector<std::string> f = {"--height", "--width", "--steps", "--guidance", "--cfg-normalization",
                                  "--cfg-truncation", "--shift", "--seed", "--num-images-per-prompt", "--dtype",
                                  "--check-finite", "--weights", "--device", "--attention"};
    f.insert(f.end(), kDitKnobFlags.begin(), kDitKnobFlags.end());
    f.insert(f.end(), kPromptOptionFlags.begin(), kPromptOptionFlags.end());
    return f;
  }();
  return flags;
}

GenerateSetup parse_generate_setup(const Args& args) {
  GenerateSetup s;
  s.device = args.get("--device", "cpu");
  const std::string& device = s.device;
  require_choice(device, {"cpu", "cuda"}, "--device");
  ZIMAGE_CHECK(!args.has("--attention") || device == "cuda",
               "--attention chooses the CUDA attention kernel (auto, v1_simt, mma, mma_wide, cudnn): it needs --device cuda");
  GenerateRequest& req = s.req;
  GenerateOptions& opt = req.opt;
  opt.height = args.get_int("--height", 1024);
  opt.width = args.get_int("--width", 1024);
  opt.steps = int(args.get_int("--steps", 8));
  opt.num_images_per_prompt = int(args.get_int("--num-images-per-prompt", 1));
  opt.cfg.guidance_scale = args.get_number("--guidance", 0.0);
  opt.cfg.cfg_normalization = args.get_number("--cfg-normalization", 0.0);
  opt.cfg.cfg_truncation = args.get_number("--cfg-truncation", 1.0);
  if (args.has("--shift")) opt.shift = args.get_number("--shift", 0.0);
  req.seed = args.get_seed("--seed", 0);
  req.weights = parse_dit_weights(args.get("--weights", "auto"));
  req.check_finite = args.has("--check-finite");
  const DitKnobs knobs = parse_dit_knobs(args);  // docs/experiments.md
  opt.dit = knobs.forward;
  opt.long_prompt = knobs.long_prompt;
  ZIMAGE_CHECK(device == "cpu" || !opt.dit.scales_captions(),
               "--rope-scaling linear|ntk runs on the CPU reference only (--device cpu)");
  req.prompt_options = parse_prompt_options(args);
  for (const auto& f : kPromptOptionFlags)  // they shape the text encoding: meaningless for given embeddings
    ZIMAGE_CHECK(!args.has(f) || args.has("--prompt"), f + " needs --prompt (it changes how prompts are encoded)");
  s.dtype = args.get("--dtype", "float32");
  const std::string& dtype = s.dtype;
  if (device == "cpu")
    ZIMAGE_CHECK(dtype == "float32" || dtype == "float64",
                 "--dtype must be float32 or float64 with --device cpu (float32 or bfloat16 with --device cuda), not '" +
                     dtype + "'");
#ifdef ZIMAGE_WITH_CUDA
  if (device == "cuda") {
    ZIMAGE_CHECK(dtype == "float32" || dtype == "bfloat16",
                 "--dtype must be float32 or bfloat16 with --device cuda (float64 is the CPU's truth), not '" + dtype + "'");
    ZIMAGE_CHECK(!args.has("--weights"),
                 "--weights sets how the CPU holds the transformer; with --device cuda it is uploaded block by block");
    s.cuda.dtype = gpu::parse_dtype(dtype);
    s.cuda.attention = gpu::parse_attention_version(args.get("--attention", "auto"));
    gpu::check_cuda_environment();
    std::string why;  // before any file is read: no text encoder runs for an image that cannot be made
    ZIMAGE_CHECK(gpu::device_available(&why), "--device cuda: no CUDA device: " + why);
  }
#else
  ZIMAGE_CHECK(device == "cpu", "--device cuda: this zimage was built without the CUDA path (configure with "
                                "-DZIMAGE_CUDA=ON and a CUDA toolkit)");
#endif
  return s;
}

DeviceHooks device_hooks([[maybe_unused]] const GenerateSetup& s, [[maybe_unused]] const PipelineFolder& pipe) {
  DeviceHooks dev;
#ifdef ZIMAGE_WITH_CUDA
  if (s.device == "cuda") {
    gpu::CudaPipelineOptions o;
    o.dtype = s.cuda.dtype;
    o.attention = s.cuda.attention;
    // Checks the attention version against head_dim first.
    const GenerateHooks<float> h = gpu::cuda_generate_hooks(pipe.transformer.config, o);
    dev.open_dit = h.open_dit;
    dev.decode = h.decode;
    dev.text_encoder = h.text_encoder;
  }
#endif
  return dev;
}

std::string producer([[maybe_unused]] const GenerateSetup& s, [[maybe_unused]] bool encodes_prompts) {
#ifdef ZIMAGE_WITH_CUDA
  if (s.device == "cuda")
    return std::string("zimage generate --device cuda (") +
           (encodes_prompts ? "text encoder, transformer and VAE " : "transformer and VAE ") + s.dtype + " on " +
           gpu::describe_device() + "; the loop on the host)";
#endif
  return "zimage generate (CPU reference)";
}

int cmd_generate(const Args& args) {
  std::vector<std::string> known = {"--model", "--prompt-embeds", "--negative-prompt-embeds", "--latents", "--out",
                                    "--save-latents", "--prompt", "--negative-prompt"};
  known.insert(known.end(), generate_option_flags().begin(), generate_option_flags().end());
  allow_only(args, known);
  GenerateSetup setup = parse_generate_setup(args);  // every number first: a bad one is refused before any file is opened
  GenerateRequest& req = setup.req;
  if (args.has("--prompt")) {
    ZIMAGE_CHECK(!args.has("--prompt-embeds") && !args.has("--negative-prompt-embeds"),
                 "--prompt and --prompt-embeds exclude each other");
    req.prompts = args.values.at("--prompt");
    if (args.has("--negative-prompt")) req.negative_prompts = args.values.at("--negative-prompt");
  } else {
    ZIMAGE_CHECK(!args.has("--negative-prompt"), "--negative-prompt needs --prompt");
  }
  const PipelineFolder pipe = open_pipeline_folder(args.required("--model"));
  if (!args.has("--prompt")) {
    req.prompt_embeds = read_prompt_embeds(args.required("--prompt-embeds"), false);
    if (args.has("--negative-prompt-embeds")) req.negative_prompt_embeds = read_prompt_embeds(args.get("--negative-prompt-embeds"), true);
  }
  if (args.has("--latents")) req.latents = read_latents(args.get("--latents"));
  const int64_t prompts = int64_t(req.prompts.empty() ? req.prompt_embeds.size() : req.prompts.size());
  const std::vector<std::string> outs = output_paths(args.required("--out"), prompts * req.opt.num_images_per_prompt);
  const std::string save_latents = args.get("--save-latents");
  const DeviceHooks dev = device_hooks(setup, pipe);
  const std::string made_by = producer(setup, !req.prompts.empty());  // --prompt-embeds: no text encoder ran
  return setup.dtype == "float64" ? run<double>(pipe, req, outs, save_latents, setup.dtype, made_by, dev)
                                  : run<float>(pipe, req, outs, save_latents, setup.dtype, made_by, dev);
}

}  // namespace zimage::cli

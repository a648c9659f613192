// zimage generate: ZImagePipeline on the CPU reference, from prompt
// embeddings to PNG files (docs/pipeline.md).
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <unistd.h>

#include "cli.h"
#include "encode.h"
#include "io/safetensors.h"
#include "pipeline/pipeline.h"
#include "model/held_bf16.h"
#include "pipeline/torch_generator.h"

namespace zimage::cli {

namespace {

namespace fs = std::filesystem;

// prompt_embeds.{i} (or, in a negatives file, negative_prompt_embeds.{i}): F32 [L_i, D], finite.
std::vector<TensorView> read_embeds(const std::shared_ptr<SafetensorsFile>& f, const std::string& path, bool negative) {
  // A negatives file may name them negative_prompt_embeds.{i} (a pipeline golden holds both kinds).
  std::string stem = "prompt_embeds.";
  if (negative && f->contains("negative_prompt_embeds.0")) stem = "negative_prompt_embeds.";
  std::vector<TensorView> out;
  for (int i = 0; f->contains(stem + std::to_string(i)); ++i) {
    const TensorView& v = f->view(stem + std::to_string(i));
    ZIMAGE_CHECK(v.dtype == DType::F32, path + ": '" + v.name + "' is " + dtype_name(v.dtype) + ", expected F32");
    out.push_back(v);
  }
  ZIMAGE_CHECK(!out.empty(), path + ": no tensor '" + stem + "0' (embeddings are stored as " + stem + "{i}, [tokens, dim])");
  return out;
}

template <class T>
Tensor<T> finite_tensor(const TensorView& v, const std::string& path) {
  Tensor<T> t = to_tensor<T>(v);
  for (int64_t i = 0; i < t.numel(); ++i)
    ZIMAGE_CHECK(std::isfinite(t[i]), path + ": tensor '" + v.name + "' holds " + std::to_string(t[i]) +
                                          " at flat index " + std::to_string(i) + " (inputs must be finite)");
  return t;
}

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
int run(const Args& args, const std::string& dtype) {
  using clock = std::chrono::steady_clock;
  GenerateOptions opt;  // every number first: a bad one is refused before any file is opened
  opt.height = args.get_int("--height", 1024);
  opt.width = args.get_int("--width", 1024);
  opt.steps = int(args.get_int("--steps", 8));
  opt.num_images_per_prompt = int(args.get_int("--num-images-per-prompt", 1));
  opt.cfg.guidance_scale = args.get_number("--guidance", 0.0);
  opt.cfg.cfg_normalization = args.get_number("--cfg-normalization", 0.0);
  opt.cfg.cfg_truncation = args.get_number("--cfg-truncation", 1.0);
  if (args.has("--shift")) opt.shift = args.get_number("--shift", 0.0);
  const uint64_t seed = args.get_seed("--seed", 0);
  const PipelineFolder pipe = open_pipeline_folder(args.required("--model"));

  const std::string pos_path = args.required("--prompt-embeds");
  const auto pos_file = SafetensorsFile::open(pos_path);
  const std::vector<TensorView> pos_views = read_embeds(pos_file, pos_path, false);
  std::shared_ptr<SafetensorsFile> neg_file;
  std::vector<TensorView> neg_views;
  const std::string neg_path = args.get("--negative-prompt-embeds");
  if (!neg_path.empty()) {
    neg_file = SafetensorsFile::open(neg_path);
    neg_views = read_embeds(neg_file, neg_path, true);
  }
  std::vector<Shape> pos_shapes, neg_shapes;
  for (const auto& v : pos_views) pos_shapes.push_back(v.shape);
  for (const auto& v : neg_views) neg_shapes.push_back(v.shape);

  std::shared_ptr<SafetensorsFile> lat_file;
  const TensorView* lat_view = nullptr;
  const std::string lat_path = args.get("--latents");
  if (!lat_path.empty()) {
    lat_file = SafetensorsFile::open(lat_path);
    const std::string name = lat_file->contains("latents") ? "latents" : "latents.init";
    ZIMAGE_CHECK(lat_file->contains(name), lat_path + ": no tensor 'latents' (or 'latents.init')");
    lat_view = &lat_file->view(name);
    ZIMAGE_CHECK(lat_view->dtype == DType::F32, lat_path + ": '" + name + "' is " + dtype_name(lat_view->dtype) + ", expected F32");
  }
  check_generate_inputs(pipe.transformer.config, pipe.vae.config, opt, pos_shapes, neg_shapes,
                        lat_view ? &lat_view->shape : nullptr);
  const int64_t batch = int64_t(pos_views.size()) * opt.num_images_per_prompt;
  const std::vector<std::string> outs = output_paths(args.required("--out"), batch);
  const std::string save_latents = args.get("--save-latents");
  const Shape shape = pipeline_latent_shape(pipe.transformer.config, pipe.vae.config, batch, opt.height, opt.width);

  std::vector<Tensor<T>> pos, neg;
  for (const auto& v : pos_views) pos.push_back(finite_tensor<T>(v, pos_path));
  for (const auto& v : neg_views) neg.push_back(finite_tensor<T>(v, neg_path));
  pos = repeat_per_image(pos, opt.num_images_per_prompt);
  if (opt.cfg.guidance_scale > 0) neg = repeat_per_image(neg, opt.num_images_per_prompt);
  else neg.clear();
  // Initial latents: the user's, or torch.randn(shape, generator=Generator("cpu").manual_seed(seed)).
  const Tensor<float> init = lat_view ? finite_tensor<float>(*lat_view, lat_path) : randn_latents(seed, shape);
  Tensor<T> latents(shape);
  for (int64_t i = 0; i < init.numel(); ++i) latents[i] = T(init[i]);

  const Schedule sched = pipeline_schedule(pipe.scheduler, opt, shape);
  const auto t_load = clock::now();
  // Transformer weights: in memory as T, or streamed block by block (from the
  // file, or from a bf16-held copy when every value is bf16-exact, as in the
  // Turbo shards): bitwise the same results, a fraction of the memory.
  std::string how = args.get("--weights", "auto");
  ZIMAGE_CHECK(how == "auto" || how == "memory" || how == "stream" || how == "bf16",
               "--weights must be auto, memory, stream or bf16, not '" + how + "'");
  if (how == "auto") {
    double params = 0;
    for (const auto& [name, shape] : pipe.transformer.params->shapes()) params += double(shape_numel(shape));
    how = params * sizeof(T) <= 4.0 * (1 << 30) ? "memory" : "bf16";
  }
  DitForward<T> dit;
  std::optional<ZImageWeights<T>> in_memory;
  if (how == "memory") {
    in_memory = load_weights<T>(pipe.transformer.config, *pipe.transformer.params);
    dit = [&](const DitInputs<T>& in, Activations<T>* a) { return zimage_forward(*in_memory, in, a); };
  } else {
    std::shared_ptr<const ParamSource> src = pipe.transformer.params;
    if (how == "bf16") src = hold_as_bf16(src);  // names the first tensor that is not bf16-exact
    dit = streaming_dit<T>(pipe.transformer.config, src);
  }
  const VaeWeights<T> vae = load_vae_weights<T>(pipe.vae.config, *pipe.vae.params, VaePart::Decoder);
  const auto t0 = clock::now();
  std::fprintf(stderr, "zimage generate: %lld image(s) %lldx%lld, %d steps, guidance %g, %s, %s latents (seed %llu)\n",
               (long long)batch, (long long)opt.height, (long long)opt.width, opt.steps, opt.cfg.guidance_scale,
               dtype.c_str(), lat_view ? "given" : "seeded", (unsigned long long)seed);
  std::fprintf(stderr, "  weights (%s) ready in %s\n", how.c_str(),
               seconds(std::chrono::duration<double>(t0 - t_load).count()).c_str());

  Activations<T> acts;
  acts.store = false;
  acts.check_finite = args.has("--check-finite");
  Activations<T>* trace = acts.check_finite ? &acts : nullptr;
  auto report_nonfinite = [&](const std::string& where) {
    std::fprintf(stderr, "zimage: check-finite: %s: %s\n", where.c_str(), acts.first_nonfinite->describe().c_str());
    return 1;  // nothing is written: the run is not a result
  };
  for (int i = 0; i < opt.steps; ++i) {
    const Tensor<T> mo = pipeline_model_output(dit, sched, i, opt.cfg, latents, pos, neg, trace);
    if (acts.first_nonfinite) return report_nonfinite("step " + std::to_string(i + 1) + " (transformer)");
    pipeline_step(sched, i, mo, latents);
    const double el = std::chrono::duration<double>(clock::now() - t0).count();
    std::fprintf(stderr, "  step %d/%d  t=%.1f  %s elapsed, ETA %s\n", i + 1, opt.steps, double(sched.timesteps[i]),
                 seconds(el).c_str(), seconds(el / (i + 1) * (opt.steps - i - 1)).c_str());
  }
  std::fprintf(stderr, "  decoding with the VAE\n");
  const Tensor<T> image = decode_latents(pipe.vae.config, vae, latents, trace);
  if (acts.first_nonfinite) return report_nonfinite("VAE decode");
  Tensor<float> image_f(image.shape);
  for (int64_t i = 0; i < image.numel(); ++i) image_f[i] = float(image[i]);
  const std::vector<Image8> pngs = to_pil_images(image_f);

  if (!save_latents.empty()) {
    SafetensorsWriter w;
    w.set_metadata("producer", "zimage generate (CPU reference)");
    w.set_metadata("dtype", dtype);
    w.set_metadata("seed", std::to_string(seed));
    w.add("latents.init", init, DType::F32);
    w.add("latents", latents, DType::F32);
    w.write(save_latents);
  }
  for (size_t b = 0; b < pngs.size(); ++b) {
    write_png(outs[b], pngs[b]);
    std::printf("wrote %s\n", outs[b].c_str());
  }
  std::fprintf(stderr, "  done in %s\n", seconds(std::chrono::duration<double>(clock::now() - t_load).count()).c_str());
  return 0;
}

}  // namespace

int cmd_generate(const Args& in_args) {
  allow_only(in_args, {"--model", "--prompt-embeds", "--negative-prompt-embeds", "--height", "--width", "--steps",
                       "--guidance", "--cfg-normalization", "--cfg-truncation", "--shift", "--seed", "--latents", "--out",
                       "--save-latents", "--num-images-per-prompt", "--dtype", "--check-finite", "--weights", "--prompt",
                       "--negative-prompt"});
  // --prompt TEXT (issue 5): encode with the folder's text_encoder/ and tokenizer/ as encode_prompt does
  // (negatives "" per prompt under CFG, as diffusers), into files the --prompt-embeds path then reads.
  Args args = in_args;
  fs::path tmp;  // removed after the run, error or not
  struct RemoveTmp {
    fs::path& p;
    ~RemoveTmp() {
      std::error_code ec;
      if (!p.empty()) fs::remove_all(p, ec);
    }
  } remove_tmp{tmp};
  // Every number flag is checked before --prompt's encoding (minutes on a real text encoder).
  for (const char* f : {"--height", "--width", "--steps", "--num-images-per-prompt"}) args.get_int(f, 0);
  for (const char* f : {"--guidance", "--cfg-normalization", "--cfg-truncation", "--shift"}) args.get_number(f, 0);
  args.get_seed("--seed", 0);
  if (args.has("--prompt")) {
    ZIMAGE_CHECK(!args.has("--prompt-embeds") && !args.has("--negative-prompt-embeds"),
                 "--prompt and --prompt-embeds exclude each other");
    tmp = fs::temp_directory_path() / ("zimage_prompt_" + std::to_string(::getpid()));
    fs::create_directories(tmp);
    EncodeOptions eo;
    eo.dtype = args.get("--dtype", "float32");
    eo.check_finite = args.has("--check-finite");
    const auto& prompts = args.values.at("--prompt");
    if (encode_prompts_to_file(args.required("--model"), prompts, eo, (tmp / "pos.safetensors").string()).empty()) return 1;
    args.values["--prompt-embeds"] = {(tmp / "pos.safetensors").string()};
    if (args.has("--negative-prompt") || std::atof(args.get("--guidance", "0").c_str()) > 0) {
      std::vector<std::string> negs = args.has("--negative-prompt") ? args.values.at("--negative-prompt")
                                                                    : std::vector<std::string>(prompts.size(), "");
      if (negs.size() == 1 && prompts.size() > 1) negs.assign(prompts.size(), negs[0]);
      if (encode_prompts_to_file(args.required("--model"), negs, eo, (tmp / "neg.safetensors").string()).empty()) return 1;
      args.values["--negative-prompt-embeds"] = {(tmp / "neg.safetensors").string()};
    }
  } else {
    ZIMAGE_CHECK(!args.has("--negative-prompt"), "--negative-prompt needs --prompt");
  }
  const std::string dtype = args.get("--dtype", "float32");
  ZIMAGE_CHECK(dtype == "float32" || dtype == "float64", "--dtype must be float32 or float64, not '" + dtype + "'");
  return dtype == "float32" ? run<float>(args, dtype) : run<double>(args, dtype);
}

}  // namespace zimage::cli

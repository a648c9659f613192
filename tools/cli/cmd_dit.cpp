// zimage dit: one forward of the reference transformer on a user's inputs.
#include <cmath>
#include <cstdio>

#include "cli.h"
#include "io/safetensors.h"
#include "dit/transformer.h"
#include "dit/model_folder.h"
#ifdef ZIMAGE_WITH_CUDA
#include "forward.h"  // cuda/forward.h
#endif

namespace zimage::cli {

namespace {

// Reads x.{i}, cap_feats.{i}, t: float32 only, shapes checked against the
// config before any compute.
template <class T>
DitInputs<T> read_inputs(const std::string& path, const ZImageConfig& cfg, const DitKnobs& knobs) {
  const LongPromptMode mode = knobs.long_prompt.mode;
  const int64_t target = mode == LongPromptMode::None ? 0 : knobs.long_prompt.target_for(cfg);
  const auto f = SafetensorsFile::open(path);
  auto need_f32 = [&](const std::string& name) -> const TensorView& {
    ZIMAGE_CHECK(f->contains(name), path + ": missing input tensor '" + name + "'");
    const TensorView& v = f->view(name);
    ZIMAGE_CHECK(v.dtype == DType::F32, path + ": input tensor '" + name + "' is " + dtype_name(v.dtype) + ", expected F32");
    return v;
  };
  std::vector<Shape> xs, cs;
  for (int i = 0; f->contains("x." + std::to_string(i)); ++i) {
    xs.push_back(need_f32("x." + std::to_string(i)).shape);
    cs.push_back(need_f32("cap_feats." + std::to_string(i)).shape);
    if (mode != LongPromptMode::None && cs.back().size() == 2) cs.back()[0] = std::min(cs.back()[0], target);
  }
  ZIMAGE_CHECK(!xs.empty(), path + ": missing input tensor 'x.0'");
  for (const auto& name : f->names()) {
    const bool known = name == "t" || name.rfind("x.", 0) == 0 || name.rfind("cap_feats.", 0) == 0;
    ZIMAGE_CHECK(!known || name == "t" || (name.rfind("x.", 0) == 0 ? f->contains("cap_feats." + name.substr(2))
                                                                     : f->contains("x." + name.substr(10))),
                 path + ": input tensor '" + name + "' has no partner (x.{i} and cap_feats.{i} come in pairs)");
  }
  try {
    check_dit_inputs(cfg, xs, cs, need_f32("t").shape, knobs.forward);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  DitInputs<T> in;
  auto finite = [&](const std::string& name) {
    Tensor<T> t = f->get<T>(name);
    for (int64_t i = 0; i < t.numel(); ++i)
      ZIMAGE_CHECK(std::isfinite(t[i]), path + ": input tensor '" + name + "' holds " + std::to_string(t[i]) +
                                            " at flat index " + std::to_string(i) + " (inputs must be finite)");
    return t;
  };
  for (size_t i = 0; i < xs.size(); ++i) {
    in.x.push_back(finite("x." + std::to_string(i)));
    in.cap_feats.push_back(fit_long_prompt(finite("cap_feats." + std::to_string(i)), mode, std::max<int64_t>(target, 1)));
  }
  in.t = finite("t");
  return in;
}

template <class T>
int run(const Args& args, const std::string& dtype) {
  const ModelFolder model = open_model_folder(args.required("--model"));
  const std::string in_path = args.required("--inputs"), out_path = args.required("--output");
  const DitKnobs knobs = parse_dit_knobs(args);
  const ForwardOptions opts = knobs.forward;
  const DitInputs<T> in = read_inputs<T>(in_path, model.config, knobs);
  Activations<T> acts;
  const bool dump = args.has("--dump-activations"), check = args.has("--check-finite");
  acts.store = dump;
  acts.check_finite = check;
  // Block by block from the mapped files (one block in memory: Turbo runs in a few GB); bitwise the
  // same as zimage_forward(load_weights(...)) (tests/golden/test_streaming_forward.cpp).
  const std::vector<Tensor<T>> samples =
      zimage_forward_streaming(model.config, *model.params, in, dump || check ? &acts : nullptr, opts);
  if (acts.first_nonfinite) {  // nothing is written: the run is not a result
    std::fprintf(stderr, "zimage: check-finite: %s\n", acts.first_nonfinite->describe().c_str());
    return 1;
  }

  SafetensorsWriter out;
  out.set_metadata("producer", "zimage dit (CPU reference)");
  out.set_metadata("dtype", dtype);
  out.set_metadata("model", args.get("--model"));
  out.set_metadata("rope_extend", opts.extends_tables() ? "on (positions past axes_lens are extrapolated)" : "off");
  if (!opts.is_default() || knobs.long_prompt.mode != LongPromptMode::None)
    out.set_metadata("knobs", "rope_scaling " + rope_scaling_name(opts.rope_scaling) + ", skip_context_refiner " +
                                  (opts.skip_context_refiner ? "on" : "off") + ", long_prompt_mode " +
                                  long_prompt_mode_name(knobs.long_prompt.mode));
  for (size_t i = 0; i < samples.size(); ++i) out.add("sample." + std::to_string(i), samples[i], DType::F32);
  if (dump) {
    SafetensorsWriter a;
    a.set_metadata("producer", "zimage dit --dump-activations (CPU reference)");
    a.set_metadata("dtype", dtype);
    for (const auto& [name, t] : acts) a.add(name, t, sizeof(T) == 8 ? DType::F64 : DType::F32);
    a.write(args.get("--dump-activations"));
  }
  out.write(out_path);
  std::printf("wrote %zu samples to %s\n", samples.size(), out_path.c_str());
  return 0;
}

#ifdef ZIMAGE_WITH_CUDA
// --device cuda: the same inputs and output file, the forward on the GPU (cuda/forward.h).
int run_cuda(const Args& args, const std::string& dtype) {
  const gpu::DType dt = gpu::parse_dtype(dtype);
  gpu::refuse_fp16(dt);
  gpu::parse_attention_version(args.get("--attention", "auto"));  // a bad name is refused before any GPU work
  ZIMAGE_CHECK(!args.has("--dump-activations"), "--dump-activations is not available with --device cuda (use --device cpu)");
  std::string why;
  ZIMAGE_CHECK(gpu::device_available(&why), "--device cuda: no CUDA device: " + why);
  const ModelFolder model = open_model_folder(args.required("--model"));
  const std::string in_path = args.required("--inputs"), out_path = args.required("--output");
  const DitKnobs knobs = parse_dit_knobs(args);
  const ForwardOptions opts = knobs.forward;
  const DitInputs<float> in = read_inputs<float>(in_path, model.config, knobs);
  gpu::CudaOptions co;
  co.dtype = dt;
  co.attention = gpu::parse_attention_version(args.get("--attention", "auto"));
  gpu::CudaModel m(model.config, *model.params, co);
  const std::vector<Tensor<float>> samples = m.forward(in, opts);
  if (args.has("--check-finite"))  // the GPU path traces outputs only, not every module
    for (size_t i = 0; i < samples.size(); ++i) {
      int64_t bad = 0, first = -1;
      for (int64_t j = 0; j < samples[i].numel(); ++j)
        if (!std::isfinite(samples[i][j]) && bad++ == 0) first = j;
      if (bad) {
        std::fprintf(stderr, "zimage: check-finite: sample.%zu holds %lld NaN/Inf values, the first at flat index %lld\n",
                     i, (long long)bad, (long long)first);
        return 1;
      }
    }
  SafetensorsWriter out;
  out.set_metadata("producer", "zimage dit --device cuda (" + gpu::describe_device() + ")");
  out.set_metadata("dtype", dtype);
  out.set_metadata("model", args.get("--model"));
  out.set_metadata("rope_extend", opts.extends_tables() ? "on (positions past axes_lens are extrapolated)" : "off");
  for (size_t i = 0; i < samples.size(); ++i) out.add("sample." + std::to_string(i), samples[i], DType::F32);
  out.write(out_path);
  std::printf("wrote %zu samples to %s\n", samples.size(), out_path.c_str());
  return 0;
}
#endif

}  // namespace

int cmd_dit(const Args& args) {
  std::vector<std::string> known = {"--model", "--inputs", "--output", "--device", "--dtype", "--dump-activations",
                                    "--check-finite", "--attention"};
  known.insert(known.end(), kDitKnobFlags.begin(), kDitKnobFlags.end());
  allow_only(args, known);
  const DitKnobs knobs = parse_dit_knobs(args);  // bad values refused before any file is read
  const std::string device = args.get("--device", "cpu");
  ZIMAGE_CHECK(!args.has("--attention") || device == "cuda",
               "--attention chooses the CUDA attention kernel (auto, v1_simt, mma, mma_wide, cudnn): it needs --device cuda");
  const std::string dtype = args.get("--dtype", "float32");
  if (device == "cuda") {
    ZIMAGE_CHECK(!knobs.forward.scales_captions(), "--rope-scaling linear|ntk runs on the CPU reference only (--device cpu)");
#ifdef ZIMAGE_WITH_CUDA
    return run_cuda(args, dtype);
#else
    throw Error("--device cuda: this zimage was built without the CUDA path (configure with -DZIMAGE_CUDA=ON "
                "and a CUDA toolkit)");
#endif
  }
  ZIMAGE_CHECK(device == "cpu", "--device must be cpu or cuda, not '" + device + "'");
  if (dtype == "float32") return run<float>(args, dtype);
  if (dtype == "float64") return run<double>(args, dtype);
  throw Error("--dtype must be float32 or float64 with --device cpu (float32, bfloat16 with --device cuda), not '" +
              dtype + "'");
}

}  // namespace zimage::cli

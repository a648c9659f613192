// zimage vae: the AutoencoderKL reference from the command line.
//
//   zimage vae decode (--vae DIR | --synthetic [--config JSON] [--seed S])
//                     (--latents FILE [--name T] | --random-latents B,C,h,w [--seed S])
//                     [--out FILE] [--dtype float32|float64] [--unscale]
//                     [--tiled [--tile-latent N] [--tile-sample N] [--tile-overlap F]]
//   zimage vae encode (--vae DIR | --synthetic ...) --image FILE [--name T] --out FILE
//                     [--dtype float32|float64] [--allow-ragged]
//   zimage vae validate --golden FILE [--model DIR] [--dtype float64|float32]
//
// Decode writes `image` [B, out_channels, f*h, f*w] (F32); encode writes
// `mean` and `logvar` [B, latent_channels, H/f, W/f]. Both print the wall time
// and the peak RSS. Every user error is one line (zimage: error: ...), exit 2.
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <memory>
#include <random>
#include <tuple>
#include <sstream>

#include "cli.h"
#include "core/choices.h"
#include "io/safetensors.h"
#include "io/param_source.h"
#include "vae/autoencoder_kl.h"
#include "vae/synthetic_vae.h"
#include "vae/vae_golden.h"
#ifdef ZIMAGE_WITH_CUDA
#include "vae_cuda.h"  // cuda/vae_cuda.h
#endif

namespace zimage::cli {

namespace {

constexpr const char* kVaeUsage =
    "usage:\n"
    "  zimage vae decode (--vae DIR | --synthetic [--config CONFIG.json] [--seed S]) [--check-finite]\n"
    "                    (--latents FILE [--name TENSOR] | --random-latents B,C,h,w [--seed S])\n"
    "                    [--out OUT.safetensors] [--dtype float32|float64] [--unscale] [--device cpu|cuda]\n"
    "                    [--tiled [--tile-latent N] [--tile-sample N] [--tile-overlap F]]\n"
    "      AutoencoderKL.decode: latents [B, latent_channels, h, w] -> `image` [B, 3, f*h, f*w] (F32).\n"
    "      The latents are the VAE's input (already unscaled) unless --unscale, which first applies\n"
    "      ZImagePipeline's latents / scaling_factor + shift_factor. --tiled decodes as diffusers does\n"
    "      with enable_tiling() (tiles only when larger than one tile; sizes default to the config's).\n"
    "      --synthetic: counter-based weights (seed S, default 0) for CONFIG.json, default the FLUX.1\n"
    "      VAE config. TENSOR defaults to `latents` (or the file's only tensor).\n"
    "  zimage vae encode (--vae DIR | --synthetic ...) --image FILE [--name TENSOR] --out OUT.safetensors [--check-finite]\n"
    "                    [--dtype float32|float64] [--allow-ragged] [--device cpu|cuda]\n"
    "      AutoencoderKL.encode: image [B, in_channels, H, W] (about [-1, 1]) -> `mean`, `logvar`.\n"
    "      H and W must be multiples of f = 2^(blocks-1) unless --allow-ragged (diffusers floors).\n"
    "  zimage vae validate --golden FILE [--model DIR] [--dtype float64|float32]\n"
    "      Checks a VAE golden (golden/vae_*.safetensors): one row per module, exit 1 on a failure.\n"
    "Both decode and encode print the wall time and the process's peak RSS. --device cuda runs the VAE\n"
    "on the GPU (cuda/vae_cuda.h) in --dtype float32 or bfloat16 (default float32): --tiled decodes each\n"
    "tile there and blends on the host; --check-finite screens the output only (not with --tiled).\n";

const std::vector<std::string> kVaeSwitches = {"--synthetic", "--tiled", "--unscale", "--allow-ragged", "--check-finite"};

// --check-finite: the first module output holding NaN/Inf (module, count,
// first index), as zimage dit reports it; nothing is written then.
template <class T>
int report_nonfinite(const Activations<T>& acts, const char* what) {
  std::fprintf(stderr, "zimage: check-finite: vae %s: %s\n", what, acts.first_nonfinite->describe().c_str());
  return 1;
}

double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

struct Model {
  VaeConfig config;
  std::shared_ptr<ParamSource> params;
  std::string source;
};

Model open_model(const Args& a) {
  const bool synthetic = a.has("--synthetic");
  ZIMAGE_CHECK(synthetic != a.has("--vae"), "vae: give exactly one of --vae DIR and --synthetic");
  Model m;
  if (synthetic) {
    ZIMAGE_CHECK(!a.has("--model"), "vae: --model is not a vae decode/encode argument (use --vae DIR)");
    m.config = a.has("--config") ? load_vae_config(a.get("--config")) : flux_vae_config();
    const int64_t seed = parse_int_value("--seed", a.get("--seed", "0"));
    ZIMAGE_CHECK(seed >= 0, "vae: --seed must be >= 0");
    m.params = synthetic_param_source(vae_synthetic_spec(m.config, uint64_t(seed)));
    m.source = "synthetic(seed=" + std::to_string(seed) + ")";
  } else {
    ZIMAGE_CHECK(!a.has("--config"), "vae: --config goes with --synthetic (a --vae folder has its own config.json)");
    VaeModel v = open_vae_folder(a.get("--vae"));
    m.config = v.config;
    m.params = v.params;
    m.source = a.get("--vae");
  }
  return m;
}

// The input tensor: --name, else `default_name`, else the file's only tensor. Float dtypes only, finite.
template <class T>
Tensor<T> read_input(const std::string& path, const std::string& name_flag, const std::string& default_name) {
  const auto f = SafetensorsFile::open(path);
  std::string name = name_flag;
  if (name.empty()) {
    const auto names = f->names();
    if (f->contains(default_name)) name = default_name;
    else if (names.size() == 1) name = names[0];
    else
      throw Error(path + ": missing input tensor '" + default_name + "' (the file holds " + std::to_string(names.size()) +
                  " tensors; name one with --name)");
  }
  ZIMAGE_CHECK(f->contains(name), path + ": missing input tensor '" + name + "'");
  const TensorView& v = f->view(name);
  ZIMAGE_CHECK(dtype_is_float(v.dtype), path + ": input tensor '" + name + "' is " + dtype_name(v.dtype) +
                                            ", expected a float dtype (F32, F64, BF16, F16)");
  Tensor<T> t = to_tensor<T>(v);
  for (int64_t i = 0; i < t.numel(); ++i)
    ZIMAGE_CHECK(std::isfinite(t[i]), path + ": input tensor '" + name + "' holds " + std::to_string(t[i]) +
                                          " at flat index " + std::to_string(i) + " (inputs must be finite)");
  return t;
}

Shape parse_shape(const std::string& flag, const std::string& v) {
  Shape s;
  std::stringstream ss(v);
  std::string part;
  while (std::getline(ss, part, ',')) s.push_back(parse_int_value(flag, part));
  ZIMAGE_CHECK(s.size() == 4, "vae: " + flag + " '" + v + "' must be B,C,h,w");
  for (int64_t d : s) ZIMAGE_CHECK(d > 0 && d <= 65536, "vae: " + flag + " '" + v + "' must hold sizes in 1..65536");
  return s;
}

const char* device_label(const Args& a) { return a.get("--device", "cpu") == "cuda" ? "CUDA" : "CPU reference"; }

// --check-finite with --device cuda: the output as a whole (the GPU path traces no module inside).
template <class T>
bool screen_output(const Tensor<T>& t, const char* what, const char* name) {
  int64_t bad = 0, first = -1;
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(double(t[i])) && bad++ == 0) first = i;
  if (bad)
    std::fprintf(stderr, "zimage: check-finite: vae %s: %s: %lld non-finite values, the first at flat index %lld\n", what,
                 name, (long long)bad, (long long)first);
  return bad > 0;
}

// The GPU VAE for --device cuda: decode (latents -> image; tiled as vae_decode_maybe_tiled when
// `tiles` is given) or encode (image -> mean, with logvar written to the second argument); empty for
// --device cpu. Loads and uploads the part's weights.
template <class T>
using DeviceVae = std::function<Tensor<T>(const Tensor<T>&, Tensor<T>*)>;
template <class T>
DeviceVae<T> open_device_vae(const Args& a, const Model& m, VaePart part, std::optional<TileOptions> tiles = {}) {
  if (a.get("--device", "cpu") != "cuda") return {};
#ifdef ZIMAGE_WITH_CUDA
  if constexpr (std::is_same_v<T, float>) {
    gpu::VaeCudaOptions opts;
    opts.dtype = gpu::parse_dtype(a.get("--dtype", "float32"));
    auto vae = std::make_shared<gpu::CudaVae>(m.config, *m.params, part, opts);
    return [vae, part, tiles](const Tensor<float>& x, Tensor<float>* logvar) {
      if (part == VaePart::Decoder) return tiles ? vae->decode_maybe_tiled(x, *tiles) : vae->decode(x);
      auto [mean, lv] = vae->encode(x);
      *logvar = std::move(lv);
      return mean;
    };
  }
#endif
  (void)m;
  (void)part;
  (void)tiles;
  throw Error("--device cuda: internal: no CUDA VAE for this dtype");  // check_device refused it before
}

template <class T>
int decode(const Args& a, const std::string& dtype) {
  allow_only(a, {"--vae", "--synthetic", "--config", "--seed", "--latents", "--name", "--random-latents", "--out",
                 "--dtype", "--unscale", "--tiled", "--tile-latent", "--tile-sample", "--tile-overlap", "--check-finite",
                 "--device"},
             "vae decode: ");
  ZIMAGE_CHECK(a.has("--latents") != a.has("--random-latents"),
               "vae decode: give exactly one of --latents FILE and --random-latents B,C,h,w");
  ZIMAGE_CHECK(a.has("--tiled") || !(a.has("--tile-latent") || a.has("--tile-sample") || a.has("--tile-overlap")),
               "vae decode: --tile-latent / --tile-sample / --tile-overlap need --tiled");
  const Model m = open_model(a);
  Tensor<T> z;
  std::string what;
  if (a.has("--latents")) {
    z = read_input<T>(a.get("--latents"), a.get("--name"), "latents");
    what = a.get("--latents");
  } else {
    const Shape s = parse_shape("--random-latents", a.get("--random-latents"));
    std::mt19937_64 rng(uint64_t(parse_int_value("--seed", a.get("--seed", "0"))));
    std::normal_distribution<double> nd;
    z = Tensor<T>(s);
    for (auto& v : z.data) v = T(nd(rng));
    what = "--random-latents";
  }
  check_vae_latents(m.config, z.shape, what);
  TileOptions tiles;
  if (a.has("--tile-latent")) tiles.tile_latent = int(parse_int_value("--tile-latent", a.get("--tile-latent")));
  if (a.has("--tile-sample")) tiles.tile_sample = int(parse_int_value("--tile-sample", a.get("--tile-sample")));
  if (a.has("--tile-overlap")) tiles.overlap = parse_number_value("--tile-overlap", a.get("--tile-overlap"));
  if (a.has("--tiled")) tiles = resolved_tiles(m.config, tiles);  // argument errors before any compute

  ZIMAGE_CHECK(!(a.has("--check-finite") && a.has("--tiled")), "vae decode: --check-finite traces the untiled decode; drop --tiled");
  const auto t0 = std::chrono::steady_clock::now();
  Activations<T> acts;
  acts.store = false;
  acts.check_finite = a.has("--check-finite");
  Tensor<T> image;
  std::chrono::steady_clock::time_point t1, t2;
  if (const auto dev = open_device_vae<T>(a, m, VaePart::Decoder,
                                          a.has("--tiled") ? std::optional<TileOptions>(tiles) : std::nullopt)) {
    t1 = std::chrono::steady_clock::now();
    image = dev(a.has("--unscale") ? unscale_latents(m.config, z) : z, nullptr);
    t2 = std::chrono::steady_clock::now();
    if (acts.check_finite && screen_output(image, "decode", "image")) return 1;
  } else {
    const VaeWeights<T> w = load_vae_weights<T>(m.config, *m.params, VaePart::Decoder);
    t1 = std::chrono::steady_clock::now();
    if (a.has("--unscale")) z = unscale_latents(m.config, z);
    image = a.has("--tiled") ? vae_decode_maybe_tiled(m.config, w, z, tiles)
                             : vae_decode(m.config, w, z, acts.check_finite ? &acts : nullptr);
    t2 = std::chrono::steady_clock::now();
    if (acts.first_nonfinite) return report_nonfinite(acts, "decode");
  }

  if (a.has("--out")) {
    SafetensorsWriter out;
    out.set_metadata("producer", std::string("zimage vae decode (") + device_label(a) + ")");
    out.set_metadata("dtype", dtype);
    out.set_metadata("vae", m.source);
    out.set_metadata("unscale", a.has("--unscale") ? "latents / scaling_factor + shift_factor applied" : "no");
    out.set_metadata("tiled", a.has("--tiled") ? "on" : "off");
    out.add("image", image, DType::F32);
    out.write(a.get("--out"));
  }
  std::printf("vae decode: %s -> image %s (%s, %s), weights %.2f s, decode %.2f s, peak RSS %.0f MiB%s\n",
              shape_str(z.shape).c_str(), shape_str(image.shape).c_str(), dtype.c_str(), m.source.c_str(),
              std::chrono::duration<double>(t1 - t0).count(), std::chrono::duration<double>(t2 - t1).count(),
              peak_rss_mib(), a.has("--out") ? (", wrote " + a.get("--out")).c_str() : "");
  return 0;
}

template <class T>
int encode(const Args& a, const std::string& dtype) {
  allow_only(a, {"--vae", "--synthetic", "--config", "--seed", "--image", "--name", "--out", "--dtype", "--allow-ragged",
                 "--check-finite", "--device"},
             "vae encode: ");
  const Model m = open_model(a);
  const std::string path = a.required("--image"), out_path = a.required("--out");
  const Tensor<T> x = read_input<T>(path, a.get("--name"), "image");
  check_vae_image(m.config, x.shape, path);
  const int64_t f = m.config.spatial_factor();
  ZIMAGE_CHECK(a.has("--allow-ragged") || (x.dim(2) % f == 0 && x.dim(3) % f == 0),
               path + ": image " + shape_str(x.shape) + " has H, W not multiples of " + std::to_string(f) +
                   " (the VAE's spatial factor): the latents would not decode back to this size; "
                   "pass --allow-ragged to encode anyway, as diffusers does");
  const auto t0 = std::chrono::steady_clock::now();
  Activations<T> acts;
  acts.store = false;
  acts.check_finite = a.has("--check-finite");
  Tensor<T> mean, logvar;
  std::chrono::steady_clock::time_point t1, t2;
  if (const auto dev = open_device_vae<T>(a, m, VaePart::Encoder)) {
    t1 = std::chrono::steady_clock::now();
    Tensor<T> lv;
    mean = dev(x, &lv);
    logvar = std::move(lv);
    t2 = std::chrono::steady_clock::now();
    if (acts.check_finite && (screen_output(mean, "encode", "mean") || screen_output(logvar, "encode", "logvar"))) return 1;
  } else {
    const VaeWeights<T> w = load_vae_weights<T>(m.config, *m.params, VaePart::Encoder);
    t1 = std::chrono::steady_clock::now();
    std::tie(mean, logvar) = vae_encode(m.config, w, x, acts.check_finite ? &acts : nullptr);
    t2 = std::chrono::steady_clock::now();
    if (acts.first_nonfinite) return report_nonfinite(acts, "encode");
  }
  SafetensorsWriter out;
  out.set_metadata("producer", std::string("zimage vae encode (") + device_label(a) + ")");
  out.set_metadata("dtype", dtype);
  out.set_metadata("vae", m.source);
  out.add("mean", mean, DType::F32);
  out.add("logvar", logvar, DType::F32);
  out.write(out_path);
  std::printf("vae encode: %s -> mean/logvar %s (%s, %s), weights %.2f s, encode %.2f s, peak RSS %.0f MiB, wrote %s\n",
              shape_str(x.shape).c_str(), shape_str(mean.shape).c_str(), dtype.c_str(), m.source.c_str(),
              std::chrono::duration<double>(t1 - t0).count(), std::chrono::duration<double>(t2 - t1).count(),
              peak_rss_mib(), out_path.c_str());
  return 0;
}

int validate(const Args& a) {
  allow_only(a, {"--golden", "--model", "--dtype", "--check-finite"}, "vae validate: ");  // accepted: every row already counts NaN/Inf
  const std::string dtype = a.get("--dtype", "float64");
  require_choice(dtype, {"float64", "float32"}, "--dtype");
  size_t failed = 0, total = 0;
  for (const auto& path : a.values.count("--golden") ? a.values.at("--golden") : std::vector<std::string>{}) {
    const VaeGolden g = open_vae_golden(path, a.get("--model"));
    const auto rows = dtype == "float64" ? validate_vae_golden<double>(g) : validate_vae_golden<float>(g);
    std::printf("== %s (case %s, reference %s)\n%s", path.c_str(), g.case_name.c_str(), dtype.c_str(),
                format_rows(rows, true).c_str());
    for (const auto& r : rows) failed += !r.pass;
    total += rows.size();
  }
  ZIMAGE_CHECK(total > 0, "vae validate: give --golden FILE (a golden/vae_*.safetensors)");
  std::printf("%zu passed, %zu failed\n", total - failed, failed);
  return failed ? 1 : 0;
}

}  // namespace

int cmd_vae(int argc, char** argv) {
  if (argc < 1 || !std::strcmp(argv[0], "--help") || !std::strcmp(argv[0], "-h")) {
    std::fputs(kVaeUsage, argc < 1 ? stderr : stdout);
    return argc < 1 ? 2 : 0;
  }
  const std::string sub = argv[0];
  const Args a = parse_args(argc - 1, argv + 1, {kVaeSwitches, 0, "vae: ", {}});
  if (sub == "validate") return validate(a);
  ZIMAGE_CHECK(sub == "decode" || sub == "encode", "vae: unknown subcommand '" + sub + "' (decode, encode, validate)");
  const std::string dtype = a.get("--dtype", "float32");
  const std::string device = a.get("--device", "cpu");
  require_choice(device, {"cpu", "cuda"}, "--device");
  if (device == "cuda") {
#ifdef ZIMAGE_WITH_CUDA
    ZIMAGE_CHECK(dtype == "float32" || dtype == "bfloat16",
                 "--dtype must be float32 or bfloat16 with --device cuda (float64 is the CPU's truth), not '" + dtype + "'");
    std::string why;
    ZIMAGE_CHECK(gpu::device_available(&why), "--device cuda: no CUDA device: " + why);
    // The storage dtype goes to the GPU; the host side computes and writes float32.
    return sub == "decode" ? decode<float>(a, dtype) : encode<float>(a, dtype);
#else
    throw Error("--device cuda: this zimage was built without the CUDA path (configure with -DZIMAGE_CUDA=ON and a "
                "CUDA toolkit)");
#endif
  }
  ZIMAGE_CHECK(dtype == "float32" || dtype == "float64",
               "--dtype must be float32 or float64 with --device cpu (float32 or bfloat16 with --device cuda), not '" +
                   dtype + "'");
  if (sub == "decode") return dtype == "float32" ? decode<float>(a, dtype) : decode<double>(a, dtype);
  return dtype == "float32" ? encode<float>(a, dtype) : encode<double>(a, dtype);
}

}  // namespace zimage::cli

// zimage write-synthetic: a full-size transformer checkpoint in the real
// diffusers layout with synthetic (bf16-exact) weights, for loading, inspect
// and memory tests without the 24.6 GB download (dit/synthetic_checkpoint.h).
#include <chrono>
#include <cstdio>

#include "cli.h"
#include "io/synthetic.h"
#include "dit/synthetic_checkpoint.h"

namespace zimage::cli {

int cmd_write_synthetic(const Args& args) {
  // --check-finite is accepted as on every subcommand: the writer runs no module, and every
  // synthetic value is finite by construction (offset + scale * u, u in [-1, 1)).
  allow_only(args, {"--out", "--config", "--dtype", "--seed", "--shard-gb", "--inputs", "--latent", "--caption",
                    "--check-finite"});
  const std::string out = args.required("--out");
  ZImageConfig cfg;  // defaults are Z-Image-Turbo's
  if (args.has("--config")) cfg = ZImageConfig::from_file(args.get("--config"));
  SyntheticCheckpointOptions opt;
  const std::string dtype = args.get("--dtype", "float32");
  if (dtype == "float32") opt.dtype = DType::F32;
  else if (dtype == "bfloat16") opt.dtype = DType::BF16;
  else throw Error("--dtype must be float32 or bfloat16, not '" + dtype + "'");
  opt.seed = args.get_seed("--seed", 0);
  const double gb = args.get_number("--shard-gb", 5);
  ZIMAGE_CHECK(gb > 0, "--shard-gb must be positive");
  opt.max_shard_bytes = int64_t(gb * double(int64_t(1) << 30));
  // --inputs' sizes are checked now, before gigabytes of weights are written.
  const int64_t n = args.get_int("--latent", 64), L = args.get_int("--caption", 128);
  ZIMAGE_CHECK(n > 0 && L > 0, "--latent and --caption must be positive");
  const auto t0 = std::chrono::steady_clock::now();
  int last = -1;
  const int64_t total = write_synthetic_checkpoint(cfg, out, opt, [&](int64_t done, int64_t all) {
    const int pct = int(100 * done / all);
    if (pct / 10 != last / 10) std::fprintf(stderr, "write-synthetic: %d%%\n", pct), last = pct;
  });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wrote %s: %lld bytes of %s weights in %.1f s\n", out.c_str(), static_cast<long long>(total), dtype.c_str(), s);

  if (args.has("--inputs")) {  // one item: x.0 [C,1,N,N], cap_feats.0 [L, cap_feat_dim], t [1]
    Tensor<float> x({cfg.in_channels, 1, n, n}), cap({L, cfg.cap_feat_dim}), t({1}, 0.5f);
    synthetic_fill(opt.seed, "inputs.x.0", 0.0, 1.0, x.ptr(), x.numel());
    synthetic_fill(opt.seed, "inputs.cap_feats.0", 0.0, 1.0, cap.ptr(), cap.numel());
    SafetensorsWriter w;
    w.set_metadata("producer", "zimage write-synthetic --inputs");
    w.add("x.0", x);
    w.add("cap_feats.0", cap);
    w.add("t", t);
    w.write(args.get("--inputs"));
    std::printf("wrote %s: x.0 %s, cap_feats.0 %s, t [1]\n", args.get("--inputs").c_str(), shape_str(x.shape).c_str(),
                shape_str(cap.shape).c_str());
  }
  return 0;
}

}  // namespace zimage::cli

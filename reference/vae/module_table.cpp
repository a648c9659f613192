// Ref: autoencoder_kl.py AutoencoderKL, vae.py Encoder / Decoder,
// unet_2d_blocks.py, resnet.py, attention_processor.py (the paths are
// AutoencoderKL's named_modules()); budgets: docs/vae.md, docs/tolerances.md.
#include "vae/module_table.h"

#include <regex>
#include <type_traits>

#include "nn/linear.h"
#include "numerics/module_row.h"
#include "numerics/op_chain.h"
#include "vae/autoencoder_kl.h"

namespace zimage {

namespace {

using namespace numerics;

// ---------------------------------------------------------------- op chains

Op vae_conv_op(double K) { return {"conv(K=" + k_str(K) + ")", 1, K + 1, false}; }
Op vae_group_norm_op(double N) { return {"group_norm(N=" + k_str(N) + ")", 3, 2 * N, true}; }
Op vae_linear_op(double K) { return {"linear(K=" + k_str(K) + ")", 1, K + 1, false}; }

Ops vae_resnet_ops(double cin, double cout, double S, double G) {
  Ops o{vae_group_norm_op(cin / G * S), silu_op(), vae_conv_op(cin * 9), vae_group_norm_op(cout / G * S), silu_op(),
        vae_conv_op(cout * 9)};
  if (cin != cout) o.push_back(vae_conv_op(cin));
  o.push_back(elementwise_op("residual add"));
  return o;
}

Ops vae_attention_ops(double C, double L, double G) {
  Ops o{vae_group_norm_op(C / G * L), vae_linear_op(C)};
  append(o, sdpa_ops(C, L));
  append(o, {vae_linear_op(C), elementwise_op("residual add")});
  return o;
}

Ops vae_mid_ops(const VaeConfig& c, double C, double S) {
  Ops o = vae_resnet_ops(C, C, S, c.norm_num_groups);
  if (c.mid_block_add_attention) append(o, vae_attention_ops(C, S, c.norm_num_groups));
  append(o, vae_resnet_ops(C, C, S, c.norm_num_groups));
  return o;
}

int64_t down_size(int64_t h) { return (h - 2) / 2 + 1; }  // Downsample2D: pad (0,1,0,1), k 3, stride 2

// encoder.down_blocks.{i} on [*, cin, h, w]; returns the output spatial size through h, w.
Ops vae_down_block_ops(const VaeConfig& c, int i, double cin, int64_t& h, int64_t& w) {
  const double out = c.block_out_channels.at(size_t(i)), G = c.norm_num_groups;
  Ops o;
  for (int j = 0; j < c.layers_per_block; ++j) append(o, vae_resnet_ops(j == 0 ? cin : out, out, double(h * w), G));
  if (i < c.num_blocks() - 1) {
    o.push_back(vae_conv_op(out * 9));
    h = down_size(h), w = down_size(w);
  }
  return o;
}

// decoder.up_blocks.{i} on [*, cin, h, w]; returns the output spatial size through h, w.
Ops vae_up_block_ops(const VaeConfig& c, int i, double cin, int64_t& h, int64_t& w) {
  const double out = c.block_out_channels.at(size_t(c.num_blocks() - 1 - i)), G = c.norm_num_groups;
  Ops o;
  for (int j = 0; j < c.layers_per_block + 1; ++j) append(o, vae_resnet_ops(j == 0 ? cin : out, out, double(h * w), G));
  if (i < c.num_blocks() - 1) {
    h *= 2, w *= 2;
    o.push_back(vae_conv_op(out * 9));
  }
  return o;
}

Ops vae_encoder_ops(const VaeConfig& c, int64_t h, int64_t w) {
  Ops o{vae_conv_op(double(c.in_channels) * 9)};
  for (int i = 0; i < c.num_blocks(); ++i)
    append(o, vae_down_block_ops(c, i, c.block_out_channels[size_t(i == 0 ? 0 : i - 1)], h, w));
  const double top = c.block_out_channels.back();
  append(o, vae_mid_ops(c, top, double(h * w)));
  append(o, {vae_group_norm_op(top / c.norm_num_groups * double(h * w)), silu_op(), vae_conv_op(top * 9)});
  return o;
}

Ops vae_decoder_ops(const VaeConfig& c, int64_t h, int64_t w) {
  const double top = c.block_out_channels.back();
  Ops o{vae_conv_op(double(c.latent_channels) * 9)};
  append(o, vae_mid_ops(c, top, double(h * w)));
  for (int i = 0; i < c.num_blocks(); ++i)
    append(o, vae_up_block_ops(c, i, c.block_out_channels[size_t(c.num_blocks() - 1 - (i == 0 ? 0 : i - 1))], h, w));
  const double bottom = c.block_out_channels.front();
  append(o, {vae_group_norm_op(bottom / c.norm_num_groups * double(h * w)), silu_op(), vae_conv_op(bottom * 9)});
  return o;
}

Ops vae_decode_ops(const VaeConfig& c, int64_t h, int64_t w) {
  Ops o;
  if (c.use_post_quant_conv) o.push_back(vae_conv_op(c.latent_channels));
  append(o, vae_decoder_ops(c, h, w));
  return o;
}

Ops vae_encode_ops(const VaeConfig& c, int64_t h, int64_t w) {
  Ops o = vae_encoder_ops(c, h, w);
  if (c.use_quant_conv) o.push_back(vae_conv_op(2.0 * c.latent_channels));
  return o;
}

// ---------------------------------------------------------------- the table

// Group 1 of every pattern under the encoder / decoder is "encoder" or "decoder".
#define ZIMAGE_TOP R"(^(encoder|decoder))"
#define ZIMAGE_RESNET ZIMAGE_TOP R"(\.(mid_block|down_blocks\.(\d+)|up_blocks\.(\d+))\.resnets\.\d+)"
#define ZIMAGE_ATTN ZIMAGE_TOP R"(\.mid_block\.attentions\.0)"
#define ZIMAGE_SAMPLER ZIMAGE_TOP R"(\.(down_blocks|up_blocks)\.\d+\.(downsamplers|upsamplers)\.0)"

struct OpsArgs {
  const VaeConfig& c;
  const Shape& in;
  const std::string& path;
  const std::smatch& m;
  double G() const { return c.norm_num_groups; }
  double C() const { return double(in[1]); }
  double S() const {  // the spatial size (product of the dims after C)
    double s = 1;
    for (size_t d = 2; d < in.size(); ++d) s *= double(in[d]);
    return s;
  }
  int64_t h() const { return hw().first; }
  int64_t w() const { return hw().second; }
  std::pair<int64_t, int64_t> hw() const {
    ZIMAGE_CHECK(in.size() == 4, "tolerance policy: VAE module '" + path + "' needs a [B, C, H, W] input, got " + shape_str(in));
    return {in[2], in[3]};
  }
};

template <class T>
struct RunArgs {
  const VaeGolden& g;
  const std::string& path;
  const std::smatch& m;
  const Tensor<T>& x;  // the recorded input
  const VaeConfig& c() const { return g.config; }
  const ParamSource& src() const { return *g.params; }
  int G() const { return g.config.norm_num_groups; }
};

using Row = ModuleRow<OpsArgs, RunArgs>;
using OpsFn = Row::OpsFn;
template <class T>
using Runner = Row::Runner<T>;
constexpr auto& row = module_row<Row>;
Row ops_only(const char* pattern, OpsFn ops) { return Row{std::regex(pattern), ops, nullptr, nullptr}; }

#define ZIMAGE_RUN []<class T>(const RunArgs<T>& a) -> std::optional<Tensor<T>>

const auto run_conv3x3 = ZIMAGE_RUN { return conv2d(a.x, load_conv2d<T>(a.src(), a.path), ConvGeom::same3x3()); };
const auto run_conv1x1 = ZIMAGE_RUN { return conv2d(a.x, load_conv2d<T>(a.src(), a.path), ConvGeom::pointwise()); };
const auto run_group_norm = ZIMAGE_RUN { return group_norm(a.x, load_group_norm<T>(a.src(), a.path), a.G(), kVaeNormEps); };
const auto run_encode = ZIMAGE_RUN {
  auto [mean, logvar] = vae_encode(a.c(), load_vae_weights<T>(a.c(), a.src(), VaePart::Encoder), a.x);
  return a.path == "encode.mean" ? mean : logvar;
};

const OpsFn conv3x3_ops = [](const OpsArgs& a) { return Ops{vae_conv_op(a.C() * 9)}; };
const OpsFn conv1x1_ops = [](const OpsArgs& a) { return Ops{vae_conv_op(a.C())}; };
const OpsFn group_norm_ops = [](const OpsArgs& a) { return Ops{vae_group_norm_op(a.C() / a.G() * a.S())}; };
const OpsFn encode_ops = [](const OpsArgs& a) { return vae_encode_ops(a.c, a.h(), a.w()); };

const std::vector<Row>& table() {
  static const std::vector<Row> rows = {
      // -------- whole-model rows
      row(R"(^unscale$)", [](const OpsArgs&) { return Ops{{"latents / scaling_factor + shift_factor", 2, 1, false}}; },
          ZIMAGE_RUN { return unscale_latents(a.c(), a.x); }),
      row(R"(^decode$)", [](const OpsArgs& a) { return vae_decode_ops(a.c, a.h(), a.w()); },
          ZIMAGE_RUN { return vae_decode(a.c(), load_vae_weights<T>(a.c(), a.src(), VaePart::Decoder), a.x); }),
      // Each tile is one decode of at most tile_latent x tile_latent latents, then
      // two blends (a * (1 - y/E) + b * y/E: 2 weight roundings, 2 products, 1 sum each).
      row(R"(^tiled_decode$)",
          [](const OpsArgs& a) {
            const int64_t t = a.c.tile_latent_min_size();
            Ops o = vae_decode_ops(a.c, std::min(a.h(), t), std::min(a.w(), t));
            o.push_back({"blend_v", 5, 1, false});
            o.push_back({"blend_h", 5, 1, false});
            return o;
          },
          ZIMAGE_RUN {
            return vae_tiled_decode(a.c(), load_vae_weights<T>(a.c(), a.src(), VaePart::Decoder), a.x, a.g.tiles);
          }),
      row(R"(^encode\.(mean|logvar)$)", encode_ops, run_encode),
      ops_only(R"(^encode$)", encode_ops),
      row(R"(^(quant_conv|post_quant_conv)$)", conv1x1_ops, run_conv1x1),
      // -------- encoder / decoder
      row(ZIMAGE_TOP "$",
          [](const OpsArgs& a) {
            return a.m[1] == "encoder" ? vae_encoder_ops(a.c, a.h(), a.w()) : vae_decoder_ops(a.c, a.h(), a.w());
          },
          ZIMAGE_RUN {
            if (a.m[1] == "encoder") return vae_encoder_forward(a.c(), load_vae_encoder<T>(a.c(), a.src()), a.x);
            return vae_decoder_forward(a.c(), load_vae_decoder<T>(a.c(), a.src()), a.x);
          }),
      row(ZIMAGE_TOP R"(\.(conv_in|conv_out)$)", conv3x3_ops, run_conv3x3),
      row(ZIMAGE_TOP R"(\.conv_norm_out$)", group_norm_ops, run_group_norm),
      row(ZIMAGE_TOP R"(\.mid_block$)", [](const OpsArgs& a) { return vae_mid_ops(a.c, a.C(), a.S()); },
          ZIMAGE_RUN { return unet_mid_block_2d(a.x, load_unet_mid_block_2d<T>(a.c(), a.src(), a.path), a.G()); }),
      row(ZIMAGE_TOP R"(\.(down_blocks|up_blocks)\.(\d+)$)",
          [](const OpsArgs& a) {
            auto [h, w] = a.hw();
            const int i = std::stoi(a.m[3]);
            ZIMAGE_CHECK(i < a.c.num_blocks(), "tolerance policy: no block '" + a.path + "' in this config");
            return a.m[2] == "down_blocks" ? vae_down_block_ops(a.c, i, a.C(), h, w) : vae_up_block_ops(a.c, i, a.C(), h, w);
          },
          ZIMAGE_RUN {
            const int i = std::stoi(a.m[3]);
            if (a.m[2] == "down_blocks") return down_encoder_block_2d(a.x, load_down_encoder_block_2d<T>(a.c(), a.src(), i), a.G());
            return up_decoder_block_2d(a.x, load_up_decoder_block_2d<T>(a.c(), a.src(), i), a.G());
          }),
      // -------- resnets (mid_block, down_blocks.i, up_blocks.i) and their leaves
      row(ZIMAGE_RESNET "$",
          [](const OpsArgs& a) {
            double cout = a.C();  // the mid block keeps the width; the others: block_out_channels of their block
            if (a.m[3].matched) cout = a.c.block_out_channels.at(size_t(std::stoi(a.m[3])));
            if (a.m[4].matched) cout = a.c.block_out_channels.at(size_t(a.c.num_blocks() - 1 - std::stoi(a.m[4])));
            return vae_resnet_ops(a.C(), cout, a.S(), a.G());
          },
          ZIMAGE_RUN { return resnet_block_2d(a.x, load_resnet_block_2d<T>(a.src(), a.path), a.G()); }),
      row(ZIMAGE_RESNET R"(\.(norm1|norm2)$)", group_norm_ops, run_group_norm),
      row(ZIMAGE_RESNET R"(\.(conv1|conv2)$)", conv3x3_ops, run_conv3x3),
      row(ZIMAGE_RESNET R"(\.conv_shortcut$)", conv1x1_ops, run_conv1x1),
      // -------- the mid block's attention and its leaves
      row(ZIMAGE_ATTN "$", [](const OpsArgs& a) { return vae_attention_ops(a.C(), a.S(), a.G()); },
          ZIMAGE_RUN { return vae_attention(a.x, load_vae_attention<T>(a.src(), a.path), a.G()); }),
      row(ZIMAGE_ATTN R"(\.group_norm$)", group_norm_ops, run_group_norm),
      row(ZIMAGE_ATTN R"(\.(to_q|to_k|to_v|to_out\.0)$)",
          [](const OpsArgs& a) { return Ops{vae_linear_op(double(a.in.back()))}; },
          ZIMAGE_RUN {
            const LinearW<T> lin{a.src().load(a.path + ".weight").template cast<T>(),
                                 a.src().load(a.path + ".bias").template cast<T>()};
            return linear(a.x, lin);
          }),
      // -------- Downsample2D / Upsample2D (F.pad and nearest upsampling are exact)
      row(ZIMAGE_SAMPLER "$", conv3x3_ops,
          ZIMAGE_RUN {
            const Conv2dW<T> conv = load_conv2d<T>(a.src(), a.path + ".conv");
            return a.m[3] == "downsamplers" ? downsample_2d(a.x, conv) : upsample_2d(a.x, conv);
          }),
      // The bare conv: its input is already padded (down) / upsampled (up).
      row(ZIMAGE_SAMPLER R"(\.conv$)", conv3x3_ops,
          ZIMAGE_RUN {
            const bool down = a.m[3] == "downsamplers";
            return conv2d(a.x, load_conv2d<T>(a.src(), a.path), down ? ConvGeom{2, 0, 0, 0, 0, 1} : ConvGeom::same3x3());
          }),
  };
  return rows;
}

#undef ZIMAGE_RUN
#undef ZIMAGE_SAMPLER
#undef ZIMAGE_ATTN
#undef ZIMAGE_RESNET
#undef ZIMAGE_TOP

const Row* find_row(const std::string& path, std::smatch& m) { return numerics::match_row(table(), path, m); }

}  // namespace

std::vector<numerics::Op> vae_module_ops(const std::string& path, const VaeConfig& c, const Shape& in) {
  ZIMAGE_CHECK(in.size() >= 2, "tolerance policy: VAE module '" + path + "' input " + shape_str(in) + " has no channel dim");
  std::smatch m;
  const Row* r = find_row(path, m);
  if (!r) throw Error("tolerance policy: no op chain for VAE module '" + path + "'");
  return r->ops(OpsArgs{c, in, path, m});
}

numerics::Budget vae_module_budget(numerics::Tier tier, const std::string& path, const VaeConfig& cfg, const Shape& in) {
  return numerics::budget_for(tier, vae_module_ops(path, cfg, in));
}

numerics::Budget vae_row_budget(const VaeGolden& g, const std::string& path) {
  const auto in = vae_input_name(g, path);
  ZIMAGE_CHECK(in, g.path + ": no input recorded for '" + path + "'");
  return vae_module_budget(numerics::Tier::T2, path, g.config, g.shape(*in));
}

template <class T>
std::optional<Tensor<T>> run_vae_module(const VaeGolden& g, const std::string& path) {
  const auto in_name = vae_input_name(g, path);
  if (!in_name) return std::nullopt;
  std::smatch m;
  const Row* r = find_row(path, m);
  const Runner<T> run = numerics::runner_for<T>(r);
  if (!run) throw Error(g.path + ": no reference module for '" + path + "'");
  const Tensor<T> x = g.get<T>(*in_name);
  return run(RunArgs<T>{g, path, m, x});
}

template std::optional<Tensor<float>> run_vae_module<float>(const VaeGolden&, const std::string&);
template std::optional<Tensor<double>> run_vae_module<double>(const VaeGolden&, const std::string&);

}  // namespace zimage

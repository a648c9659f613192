// AutoencoderKL: parameter list, loading, encode / decode / tiled decode.
#include "vae/autoencoder_kl.h"

#include <algorithm>
#include <filesystem>

namespace zimage {

namespace fs = std::filesystem;

namespace {

std::string idx(const std::string& prefix, const char* list, int i) {
  return prefix + "." + list + "." + std::to_string(i);
}

// Input channels of encoder.down_blocks.{i}: block_out_channels[i-1] (conv_in's width for i = 0).
int down_in_channels(const VaeConfig& c, int i) { return c.block_out_channels[size_t(i == 0 ? 0 : i - 1)]; }
// decoder.up_blocks.{i} works on reversed(block_out_channels).
int up_out_channels(const VaeConfig& c, int i) { return c.block_out_channels[size_t(c.num_blocks() - 1 - i)]; }
int up_in_channels(const VaeConfig& c, int i) { return up_out_channels(c, i == 0 ? 0 : i - 1); }

}  // namespace

// Ref: AutoencoderKL.__init__ / Encoder.__init__ / Decoder.__init__ /
// DownEncoderBlock2D / UpDecoderBlock2D / UNetMidBlock2D / ResnetBlock2D /
// Attention(_from_deprecated_attn_block) / Downsample2D(name="op") / Upsample2D(name="conv").
// Checked against AutoencoderKL(config).state_dict() by the goldens' shipped folders.
std::map<std::string, Shape> expected_vae_parameter_shapes(const VaeConfig& cfg) {
  std::map<std::string, Shape> p;
  auto conv = [&](const std::string& prefix, int64_t cout, int64_t cin, int64_t k) {
    p[prefix + ".weight"] = {cout, cin, k, k};
    p[prefix + ".bias"] = {cout};
  };
  auto norm = [&](const std::string& prefix, int64_t c) {
    p[prefix + ".weight"] = {c};
    p[prefix + ".bias"] = {c};
  };
  auto resnet = [&](const std::string& prefix, int64_t cin, int64_t cout) {
    norm(prefix + ".norm1", cin);
    conv(prefix + ".conv1", cout, cin, 3);
    norm(prefix + ".norm2", cout);
    conv(prefix + ".conv2", cout, cout, 3);
    if (cin != cout) conv(prefix + ".conv_shortcut", cout, cin, 1);
  };
  auto mid = [&](const std::string& prefix, int64_t c) {
    resnet(prefix + ".resnets.0", c, c);
    resnet(prefix + ".resnets.1", c, c);
    if (cfg.mid_block_add_attention) {
      const std::string a = prefix + ".attentions.0";
      norm(a + ".group_norm", c);
      for (const char* l : {".to_q", ".to_k", ".to_v", ".to_out.0"}) {
        p[a + l + ".weight"] = {c, c};
        p[a + l + ".bias"] = {c};
      }
    }
  };
  const int n = cfg.num_blocks();
  const int64_t top = cfg.block_out_channels.back(), bottom = cfg.block_out_channels.front();
  // Encoder
  conv("encoder.conv_in", bottom, cfg.in_channels, 3);
  for (int i = 0; i < n; ++i) {
    const std::string b = idx("encoder", "down_blocks", i);
    const int64_t out = cfg.block_out_channels[size_t(i)];
    for (int j = 0; j < cfg.layers_per_block; ++j)
      resnet(idx(b, "resnets", j), j == 0 ? down_in_channels(cfg, i) : out, out);
    if (i < n - 1) conv(b + ".downsamplers.0.conv", out, out, 3);
  }
  mid("encoder.mid_block", top);
  norm("encoder.conv_norm_out", top);
  conv("encoder.conv_out", 2 * int64_t(cfg.latent_channels), top, 3);
  // Decoder
  conv("decoder.conv_in", top, cfg.latent_channels, 3);
  mid("decoder.mid_block", top);
  for (int i = 0; i < n; ++i) {
    const std::string b = idx("decoder", "up_blocks", i);
    const int64_t out = up_out_channels(cfg, i);
    for (int j = 0; j < cfg.layers_per_block + 1; ++j) resnet(idx(b, "resnets", j), j == 0 ? up_in_channels(cfg, i) : out, out);
    if (i < n - 1) conv(b + ".upsamplers.0.conv", out, out, 3);
  }
  norm("decoder.conv_norm_out", bottom);
  conv("decoder.conv_out", cfg.out_channels, bottom, 3);
  if (cfg.use_quant_conv) conv("quant_conv", 2 * int64_t(cfg.latent_channels), 2 * int64_t(cfg.latent_channels), 1);
  if (cfg.use_post_quant_conv) conv("post_quant_conv", cfg.latent_channels, cfg.latent_channels, 1);
  return p;
}

// ---------------------------------------------------------------- loaders

template <class T>
Conv2dW<T> load_conv2d(const ParamSource& src, const std::string& prefix, bool bias) {
  Conv2dW<T> w;
  w.weight = src.load(prefix + ".weight").template cast<T>();
  if (bias) w.bias = src.load(prefix + ".bias").template cast<T>();
  return w;
}

template <class T>
GroupNormW<T> load_group_norm(const ParamSource& src, const std::string& prefix) {
  return {src.load(prefix + ".weight").template cast<T>(), src.load(prefix + ".bias").template cast<T>()};
}

template <class T>
ResnetBlock2DW<T> load_resnet_block_2d(const ParamSource& src, const std::string& prefix) {
  ResnetBlock2DW<T> w;
  w.norm1 = load_group_norm<T>(src, prefix + ".norm1");
  w.conv1 = load_conv2d<T>(src, prefix + ".conv1");
  w.norm2 = load_group_norm<T>(src, prefix + ".norm2");
  w.conv2 = load_conv2d<T>(src, prefix + ".conv2");
  // Present iff C_in != C_out: decided by the weights' shapes, which the completeness check tied to the config.
  if (w.conv1.weight.dim(1) != w.conv2.weight.dim(0)) w.conv_shortcut = load_conv2d<T>(src, prefix + ".conv_shortcut");
  return w;
}

template <class T>
VaeAttentionW<T> load_vae_attention(const ParamSource& src, const std::string& prefix) {
  VaeAttentionW<T> w;
  w.group_norm = load_group_norm<T>(src, prefix + ".group_norm");
  auto lin = [&](const std::string& n) {
    return LinearW<T>{src.load(prefix + n + ".weight").template cast<T>(), src.load(prefix + n + ".bias").template cast<T>()};
  };
  w.to_q = lin(".to_q");
  w.to_k = lin(".to_k");
  w.to_v = lin(".to_v");
  w.to_out = lin(".to_out.0");
  return w;
}

template <class T>
UNetMidBlock2DW<T> load_unet_mid_block_2d(const VaeConfig& cfg, const ParamSource& src, const std::string& prefix) {
  UNetMidBlock2DW<T> w;
  w.resnets.push_back(load_resnet_block_2d<T>(src, prefix + ".resnets.0"));
  w.resnets.push_back(load_resnet_block_2d<T>(src, prefix + ".resnets.1"));
  if (cfg.mid_block_add_attention) w.attention = load_vae_attention<T>(src, prefix + ".attentions.0");
  return w;
}

template <class T>
DownEncoderBlock2DW<T> load_down_encoder_block_2d(const VaeConfig& cfg, const ParamSource& src, int i) {
  ZIMAGE_CHECK(i >= 0 && i < cfg.num_blocks(), "encoder.down_blocks." + std::to_string(i) + ": no such block");
  const std::string b = idx("encoder", "down_blocks", i);
  DownEncoderBlock2DW<T> w;
  for (int j = 0; j < cfg.layers_per_block; ++j) w.resnets.push_back(load_resnet_block_2d<T>(src, idx(b, "resnets", j)));
  if (i < cfg.num_blocks() - 1) w.downsampler = load_conv2d<T>(src, b + ".downsamplers.0.conv");
  return w;
}

template <class T>
UpDecoderBlock2DW<T> load_up_decoder_block_2d(const VaeConfig& cfg, const ParamSource& src, int i) {
  ZIMAGE_CHECK(i >= 0 && i < cfg.num_blocks(), "decoder.up_blocks." + std::to_string(i) + ": no such block");
  const std::string b = idx("decoder", "up_blocks", i);
  UpDecoderBlock2DW<T> w;
  for (int j = 0; j < cfg.layers_per_block + 1; ++j) w.resnets.push_back(load_resnet_block_2d<T>(src, idx(b, "resnets", j)));
  if (i < cfg.num_blocks() - 1) w.upsampler = load_conv2d<T>(src, b + ".upsamplers.0.conv");
  return w;
}

template <class T>
VaeEncoderW<T> load_vae_encoder(const VaeConfig& cfg, const ParamSource& src) {
  VaeEncoderW<T> w;
  w.conv_in = load_conv2d<T>(src, "encoder.conv_in");
  for (int i = 0; i < cfg.num_blocks(); ++i) w.down_blocks.push_back(load_down_encoder_block_2d<T>(cfg, src, i));
  w.mid_block = load_unet_mid_block_2d<T>(cfg, src, "encoder.mid_block");
  w.conv_norm_out = load_group_norm<T>(src, "encoder.conv_norm_out");
  w.conv_out = load_conv2d<T>(src, "encoder.conv_out");
  return w;
}

template <class T>
VaeDecoderW<T> load_vae_decoder(const VaeConfig& cfg, const ParamSource& src) {
  VaeDecoderW<T> w;
  w.conv_in = load_conv2d<T>(src, "decoder.conv_in");
  w.mid_block = load_unet_mid_block_2d<T>(cfg, src, "decoder.mid_block");
  for (int i = 0; i < cfg.num_blocks(); ++i) w.up_blocks.push_back(load_up_decoder_block_2d<T>(cfg, src, i));
  w.conv_norm_out = load_group_norm<T>(src, "decoder.conv_norm_out");
  w.conv_out = load_conv2d<T>(src, "decoder.conv_out");
  return w;
}

template <class T>
VaeWeights<T> load_vae_weights(const VaeConfig& cfg, const ParamSource& src, VaePart part) {
  check_complete(src, expected_vae_parameter_shapes(cfg), "AutoencoderKL");
  VaeWeights<T> w;
  const bool enc = int(part) & int(VaePart::Encoder), dec = int(part) & int(VaePart::Decoder);
  if (enc) {
    w.encoder = load_vae_encoder<T>(cfg, src);
    if (cfg.use_quant_conv) w.quant_conv = load_conv2d<T>(src, "quant_conv");
  }
  if (dec) {
    w.decoder = load_vae_decoder<T>(cfg, src);
    if (cfg.use_post_quant_conv) w.post_quant_conv = load_conv2d<T>(src, "post_quant_conv");
  }
  return w;
}

VaeModel open_vae_folder(const std::string& dir) {
  VaeModel m;
  m.config = load_vae_config((fs::path(dir) / "config.json").string());
  m.params = open_weight_folder(dir);
  check_complete(*m.params, expected_vae_parameter_shapes(m.config), "AutoencoderKL");
  return m;
}

// ---------------------------------------------------------------- forward

void check_vae_latents(const VaeConfig& cfg, const Shape& z, const std::string& what) {
  ZIMAGE_CHECK(z.size() == 4, what + ": latents " + shape_str(z) + " must be [B, " + std::to_string(cfg.latent_channels) +
                                  ", h, w]");
  ZIMAGE_CHECK(z[1] == cfg.latent_channels, what + ": latents " + shape_str(z) + " have " + std::to_string(z[1]) +
                                                " channels, the VAE config has latent_channels " +
                                                std::to_string(cfg.latent_channels));
  ZIMAGE_CHECK(z[0] > 0 && z[2] > 0 && z[3] > 0, what + ": latents " + shape_str(z) + " must not be empty");
}

void check_vae_image(const VaeConfig& cfg, const Shape& x, const std::string& what) {
  ZIMAGE_CHECK(x.size() == 4, what + ": image " + shape_str(x) + " must be [B, " + std::to_string(cfg.in_channels) + ", H, W]");
  ZIMAGE_CHECK(x[1] == cfg.in_channels, what + ": image " + shape_str(x) + " has " + std::to_string(x[1]) +
                                            " channels, the VAE config has in_channels " + std::to_string(cfg.in_channels));
  ZIMAGE_CHECK(x[0] > 0, what + ": image " + shape_str(x) + " has an empty batch");
  int64_t h = x[2], w = x[3];
  for (int i = 0; i < cfg.num_blocks() - 1; ++i) {
    ZIMAGE_CHECK(h >= 2 && w >= 2, what + ": image " + shape_str(x) + " is too small: encoder.down_blocks." +
                                       std::to_string(i) + " would downsample a " + std::to_string(h) + "x" +
                                       std::to_string(w) + " map (each of the " + std::to_string(cfg.num_blocks() - 1) +
                                       " downsamplers needs at least 2x2)");
    h = (h - 2) / 2 + 1, w = (w - 2) / 2 + 1;
  }
  ZIMAGE_CHECK(h >= 1 && w >= 1, what + ": image " + shape_str(x) + " is empty");
}

template <class T>
Tensor<T> vae_encoder_forward(const VaeConfig& cfg, const VaeEncoderW<T>& w, Tensor<T> x, Activations<T>* acts) {
  const int G = cfg.norm_num_groups;
  x = conv2d(x, w.conv_in, ConvGeom::same3x3());
  record(acts, "encoder.conv_in", x);
  for (size_t i = 0; i < w.down_blocks.size(); ++i)
    x = down_encoder_block_2d(std::move(x), w.down_blocks[i], G, acts, "encoder.down_blocks." + std::to_string(i));
  x = unet_mid_block_2d(std::move(x), w.mid_block, G, acts, "encoder.mid_block");
  group_norm_(x, w.conv_norm_out, G, kVaeNormEps);
  record(acts, "encoder.conv_norm_out", x);
  silu_(x);
  x = conv2d(x, w.conv_out, ConvGeom::same3x3());
  record(acts, "encoder.conv_out", x);
  record(acts, "encoder", x);
  return x;
}

template <class T>
Tensor<T> vae_decoder_forward(const VaeConfig& cfg, const VaeDecoderW<T>& w, Tensor<T> z, Activations<T>* acts) {
  const int G = cfg.norm_num_groups;
  Tensor<T> x = conv2d(z, w.conv_in, ConvGeom::same3x3());
  z = Tensor<T>();
  record(acts, "decoder.conv_in", x);
  x = unet_mid_block_2d(std::move(x), w.mid_block, G, acts, "decoder.mid_block");
  for (size_t i = 0; i < w.up_blocks.size(); ++i)
    x = up_decoder_block_2d(std::move(x), w.up_blocks[i], G, acts, "decoder.up_blocks." + std::to_string(i));
  group_norm_(x, w.conv_norm_out, G, kVaeNormEps);
  record(acts, "decoder.conv_norm_out", x);
  silu_(x);
  x = conv2d(x, w.conv_out, ConvGeom::same3x3());
  record(acts, "decoder.conv_out", x);
  record(acts, "decoder", x);
  return x;
}

template <class T>
Tensor<T> vae_decode(const VaeConfig& cfg, const VaeWeights<T>& w, const Tensor<T>& z, Activations<T>* acts) {
  ZIMAGE_CHECK(w.decoder, "vae_decode: the decoder weights were not loaded (VaePart::Decoder)");
  check_vae_latents(cfg, z.shape, "vae_decode");
  Tensor<T> x = z;
  if (cfg.use_post_quant_conv && !mutated(Mutation::NoPostQuantConv)) {
    ZIMAGE_CHECK(w.post_quant_conv, "vae_decode: the config has use_post_quant_conv but no post_quant_conv was loaded");
    x = conv2d(x, *w.post_quant_conv, ConvGeom::pointwise());
    record(acts, "post_quant_conv", x);
  }
  return vae_decoder_forward(cfg, *w.decoder, std::move(x), acts);
}

template <class T>
std::pair<Tensor<T>, Tensor<T>> vae_encode(const VaeConfig& cfg, const VaeWeights<T>& w, const Tensor<T>& x,
                                           Activations<T>* acts) {
  ZIMAGE_CHECK(w.encoder, "vae_encode: the encoder weights were not loaded (VaePart::Encoder)");
  check_vae_image(cfg, x.shape, "vae_encode");
  Tensor<T> h = vae_encoder_forward(cfg, *w.encoder, x, acts);
  if (cfg.use_quant_conv) {
    ZIMAGE_CHECK(w.quant_conv, "vae_encode: the config has use_quant_conv but no quant_conv was loaded");
    h = conv2d(h, *w.quant_conv, ConvGeom::pointwise());
    record(acts, "quant_conv", h);
  }
  // torch.chunk(moments, 2, dim=1); logvar = clamp(logvar, -30, 20).
  const int64_t B = h.dim(0), C2 = h.dim(1), S = h.dim(2) * h.dim(3), Lc = C2 / 2;
  Tensor<T> mean({B, Lc, h.dim(2), h.dim(3)}), logvar({B, Lc, h.dim(2), h.dim(3)});
  for (int64_t b = 0; b < B; ++b) {
    std::copy_n(h.ptr() + b * C2 * S, Lc * S, mean.ptr() + b * Lc * S);
    const T* lv = h.ptr() + (b * C2 + Lc) * S;
    T* dst = logvar.ptr() + b * Lc * S;
    for (int64_t i = 0; i < Lc * S; ++i) dst[i] = std::clamp(lv[i], T(-30), T(20));
  }
  return {std::move(mean), std::move(logvar)};
}

template <class T>
Tensor<T> unscale_latents(const VaeConfig& cfg, const Tensor<T>& latents) {
  const T scale = T(cfg.scaling_factor), shift = T(cfg.shift_factor.value_or(0.0));
  Tensor<T> out(latents.shape);
  const bool wrong = mutated(Mutation::WrongLatentScale);
  for (int64_t i = 0; i < latents.numel(); ++i) out[i] = wrong ? latents[i] * scale - shift : latents[i] / scale + shift;
  return out;
}

TileOptions resolved_tiles(const VaeConfig& cfg, TileOptions o) {
  if (o.tile_latent <= 0) o.tile_latent = cfg.tile_latent_min_size();
  if (o.tile_sample <= 0) o.tile_sample = cfg.tile_sample_min_size();
  ZIMAGE_CHECK(o.tile_latent > 0 && o.tile_sample > 0, "tiled decode: tile sizes must be positive (latent " +
                                                           std::to_string(o.tile_latent) + ", sample " +
                                                           std::to_string(o.tile_sample) + ")");
  ZIMAGE_CHECK(o.overlap >= 0 && o.overlap < 1, "tiled decode: overlap factor " + std::to_string(o.overlap) +
                                                    " must be in [0, 1)");
  ZIMAGE_CHECK(int(double(o.tile_latent) * (1.0 - o.overlap)) > 0,
               "tiled decode: tile_latent " + std::to_string(o.tile_latent) + " with overlap " + std::to_string(o.overlap) +
                   " gives a stride of 0 latents");
  return o;
}

std::optional<TileOptions> tiles_for_decode(const VaeConfig& cfg, const Shape& z, TileOptions opts) {
  check_vae_latents(cfg, z, "vae_decode");
  opts = resolved_tiles(cfg, opts);
  if (z[2] > opts.tile_latent || z[3] > opts.tile_latent) return opts;
  return std::nullopt;
}

namespace {

// Ref: AutoencoderKL.blend_v / blend_h, in place on b:
//   b[.., y, ..] = a[.., -E + y, ..] * (1 - y / E) + b[.., y, ..] * (y / E)
// The weights are Python floats (double) that torch rounds to the tensor dtype.
template <class T>
void blend(const Tensor<T>& a, Tensor<T>& b, int64_t extent, bool vertical) {
  const int64_t B = b.dim(0), C = b.dim(1), Ha = a.dim(2), Wa = a.dim(3), Hb = b.dim(2), Wb = b.dim(3);
  const int64_t E = std::min({vertical ? Ha : Wa, vertical ? Hb : Wb, extent});
  for (int64_t y = 0; y < E; ++y) {
    const T wa = T(1.0 - double(y) / double(E)), wb = T(double(y) / double(E));
    for (int64_t bc = 0; bc < B * C; ++bc) {
      const T* pa = a.ptr() + bc * Ha * Wa;
      T* pb = b.ptr() + bc * Hb * Wb;
      if (vertical) {
        ZIMAGE_CHECK(Wa == Wb, "blend_v: tile widths differ");
        const T* ra = pa + (Ha - E + y) * Wa;
        T* rb = pb + y * Wb;
        for (int64_t x = 0; x < Wb; ++x) rb[x] = ra[x] * wa + rb[x] * wb;
      } else {
        ZIMAGE_CHECK(Ha == Hb, "blend_h: tile heights differ");
        for (int64_t r = 0; r < Hb; ++r) pb[r * Wb + y] = pa[r * Wa + (Wa - E + y)] * wa + pb[r * Wb + y] * wb;
      }
    }
  }
}

template <class T>
Tensor<T> crop(const Tensor<T>& t, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
  h1 = std::min(h1, t.dim(2)), w1 = std::min(w1, t.dim(3));
  const int64_t B = t.dim(0), C = t.dim(1), H = t.dim(2), W = t.dim(3);
  Tensor<T> out({B, C, h1 - h0, w1 - w0});
  for (int64_t bc = 0; bc < B * C; ++bc)
    for (int64_t r = h0; r < h1; ++r)
      std::copy(t.ptr() + (bc * H + r) * W + w0, t.ptr() + (bc * H + r) * W + w1,
                out.ptr() + (bc * (h1 - h0) + (r - h0)) * (w1 - w0));
  return out;
}

}  // namespace

template <class T>
Tensor<T> vae_tiled_decode(const VaeConfig& cfg, const VaeWeights<T>& w, const Tensor<T>& z, TileOptions opts) {
  ZIMAGE_CHECK(w.decoder, "vae_tiled_decode: the decoder weights were not loaded (VaePart::Decoder)");
  return tiled_decode_with<T>(cfg, z, opts, [&](const Tensor<T>& part) {
    Tensor<T> tile = part;
    if (cfg.use_post_quant_conv && !mutated(Mutation::NoPostQuantConv))
      tile = conv2d(tile, *w.post_quant_conv, ConvGeom::pointwise());
    return vae_decoder_forward(cfg, *w.decoder, std::move(tile));
  });
}

template <class T>
Tensor<T> tiled_decode_with(const VaeConfig& cfg, const Tensor<T>& z, TileOptions opts, const TileDecoder<T>& decode_tile) {
  check_vae_latents(cfg, z.shape, "vae_tiled_decode");
  opts = resolved_tiles(cfg, opts);
  const int64_t overlap_size = int64_t(double(opts.tile_latent) * (1.0 - opts.overlap));
  const int64_t blend_extent = int64_t(double(opts.tile_sample) * opts.overlap);
  const int64_t row_limit = opts.tile_sample - blend_extent;
  const int64_t H = z.dim(2), W = z.dim(3);
  // rows[i][j]: the decoded tile at latent (i * overlap_size, j * overlap_size).
  std::vector<std::vector<Tensor<T>>> rows;
  for (int64_t i = 0; i < H; i += overlap_size) {
    rows.emplace_back();
    for (int64_t j = 0; j < W; j += overlap_size) {
      rows.back().push_back(decode_tile(crop(z, i, i + opts.tile_latent, j, j + opts.tile_latent)));
      const Shape& s = rows.back().back().shape;
      ZIMAGE_CHECK(s.size() == 4 && s[0] == z.dim(0), "tiled decode: the tile decoder returned " + shape_str(s) +
                                                          " for a batch of " + std::to_string(z.dim(0)));
    }
  }
  // Blend in raster order, in place (a tile's upper / left neighbour has already been blended), crop, concatenate.
  std::vector<std::vector<Tensor<T>>> cropped(rows.size());
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t j = 0; j < rows[i].size(); ++j) {
      Tensor<T>& tile = rows[i][j];
      if (i > 0) blend(rows[i - 1][j], tile, blend_extent, true);
      if (j > 0) blend(rows[i][j - 1], tile, blend_extent, false);
      cropped[i].push_back(crop(tile, 0, row_limit, 0, row_limit));
    }
  int64_t out_h = 0, out_w = 0;
  for (const auto& r : cropped) out_h += r[0].dim(2);
  for (const auto& t : cropped[0]) out_w += t.dim(3);
  const int64_t B = z.dim(0), C = cropped[0][0].dim(1);
  Tensor<T> out({B, C, out_h, out_w});
  int64_t y0 = 0;
  for (const auto& r : cropped) {
    int64_t x0 = 0;
    for (const auto& t : r) {
      ZIMAGE_CHECK(t.dim(2) == r[0].dim(2), "tiled decode: tiles of one row differ in height");
      for (int64_t bc = 0; bc < B * C; ++bc)
        for (int64_t y = 0; y < t.dim(2); ++y)
          std::copy_n(t.ptr() + (bc * t.dim(2) + y) * t.dim(3), t.dim(3), out.ptr() + (bc * out_h + y0 + y) * out_w + x0);
      x0 += t.dim(3);
    }
    ZIMAGE_CHECK(x0 == out_w, "tiled decode: rows of tiles differ in width");
    y0 += r[0].dim(2);
  }
  return out;
}

template <class T>
Tensor<T> vae_decode_maybe_tiled(const VaeConfig& cfg, const VaeWeights<T>& w, const Tensor<T>& z, TileOptions opts) {
  if (const std::optional<TileOptions> tiles = tiles_for_decode(cfg, z.shape, opts)) return vae_tiled_decode(cfg, w, z, *tiles);
  return vae_decode(cfg, w, z);
}

#define ZIMAGE_VAE_MODEL(T)                                                                                            \
  template Conv2dW<T> load_conv2d<T>(const ParamSource&, const std::string&, bool);                                    \
  template GroupNormW<T> load_group_norm<T>(const ParamSource&, const std::string&);                                   \
  template ResnetBlock2DW<T> load_resnet_block_2d<T>(const ParamSource&, const std::string&);                          \
  template VaeAttentionW<T> load_vae_attention<T>(const ParamSource&, const std::string&);                             \
  template UNetMidBlock2DW<T> load_unet_mid_block_2d<T>(const VaeConfig&, const ParamSource&, const std::string&);     \
  template DownEncoderBlock2DW<T> load_down_encoder_block_2d<T>(const VaeConfig&, const ParamSource&, int);            \
  template UpDecoderBlock2DW<T> load_up_decoder_block_2d<T>(const VaeConfig&, const ParamSource&, int);                \
  template VaeEncoderW<T> load_vae_encoder<T>(const VaeConfig&, const ParamSource&);                                   \
  template VaeDecoderW<T> load_vae_decoder<T>(const VaeConfig&, const ParamSource&);                                   \
  template VaeWeights<T> load_vae_weights<T>(const VaeConfig&, const ParamSource&, VaePart);                           \
  template Tensor<T> vae_encoder_forward(const VaeConfig&, const VaeEncoderW<T>&, Tensor<T>, Activations<T>*);         \
  template Tensor<T> vae_decoder_forward(const VaeConfig&, const VaeDecoderW<T>&, Tensor<T>, Activations<T>*);         \
  template Tensor<T> vae_decode(const VaeConfig&, const VaeWeights<T>&, const Tensor<T>&, Activations<T>*);            \
  template std::pair<Tensor<T>, Tensor<T>> vae_encode(const VaeConfig&, const VaeWeights<T>&, const Tensor<T>&,        \
                                                      Activations<T>*);                                                \
  template Tensor<T> unscale_latents(const VaeConfig&, const Tensor<T>&);                                              \
  template Tensor<T> vae_tiled_decode(const VaeConfig&, const VaeWeights<T>&, const Tensor<T>&, TileOptions);          \
  template Tensor<T> tiled_decode_with(const VaeConfig&, const Tensor<T>&, TileOptions, const TileDecoder<T>&);        \
  template Tensor<T> vae_decode_maybe_tiled(const VaeConfig&, const VaeWeights<T>&, const Tensor<T>&, TileOptions);
ZIMAGE_VAE_MODEL(float)
ZIMAGE_VAE_MODEL(double)
#undef ZIMAGE_VAE_MODEL

}  // namespace zimage

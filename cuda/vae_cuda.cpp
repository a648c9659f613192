#include "vae_cuda.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <regex>

#include "conv_cudnn.h"
#include "core/choices.h"
#include "kernels/convert.h"
#include "kernels/group_norm.h"
#include "kernels/residual_add.h"
#include "kernels/softmax_rows.h"
#include "kernels/transpose.h"
#include "kernels/upsample.h"

namespace zimage::gpu {

namespace {

DeviceTensor up(const Tensor<float>& t, DType dt, Runtime& rt) { return upload(t, dt, rt.staging(), rt.stream()); }

int64_t B_(const DeviceTensor& x) { return x.shape[0]; }
int64_t H_(const DeviceTensor& x) { return x.shape[1]; }
int64_t W_(const DeviceTensor& x) { return x.shape[2]; }
int64_t C_(const DeviceTensor& x) { return x.shape[3]; }

void check_nhwc(const DeviceTensor& x, int64_t C, const char* what) {
  ZIMAGE_CHECK(x.shape.size() == 4 && x.shape[3] == C, std::string(what) + ": input " + shape_str(x.shape) +
                                                           " is not NHWC with " + std::to_string(C) + " channels");
}

}  // namespace

Im2colGeom geom_same3x3(int upsample) {
  Im2colGeom g;
  g.up = upsample;
  return g;
}
Im2colGeom geom_pointwise() { return {1, 1, 1, 0, 0, 0, 0, 1}; }
Im2colGeom geom_downsample() { return {3, 3, 2, 0, 0, 1, 1, 1}; }

Tensor<float> permute_conv_weight(const Tensor<float>& w) {
  ZIMAGE_CHECK(w.ndim() == 4, "conv weight " + shape_str(w.shape) + " is not [C_out, C_in, kh, kw]");
  const int64_t O = w.dim(0), I = w.dim(1), T = w.dim(2) * w.dim(3);
  Tensor<float> p({O, w.dim(2), w.dim(3), I});
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < I; ++c)
      for (int64_t t = 0; t < T; ++t) p[(o * T + t) * I + c] = w[(o * I + c) * T + t];
  return p;
}

DeviceConv upload_conv(const Conv2dW<float>& w, DType dt, Runtime& rt) {
  refuse_fp16(dt);
  DeviceConv d;
  const Tensor<float> p = permute_conv_weight(w.weight);  // kernels/im2col.h column order
  d.cout = w.weight.dim(0), d.cin = w.weight.dim(1), d.kh = int(w.weight.dim(2)), d.kw = int(w.weight.dim(3));
  d.weight = up(p, dt, rt);
  if (w.bias.numel()) d.bias = up(w.bias, dt, rt);
  return d;
}

DeviceGroupNorm upload_group_norm(const GroupNormW<float>& w, DType dt, Runtime& rt) {
  refuse_fp16(dt);
  return {up(w.weight, dt, rt), up(w.bias, dt, rt)};
}

DeviceResnet upload_resnet(const ResnetBlock2DW<float>& w, DType dt, Runtime& rt) {
  DeviceResnet d;
  d.norm1 = upload_group_norm(w.norm1, dt, rt);
  d.norm2 = upload_group_norm(w.norm2, dt, rt);
  d.conv1 = upload_conv(w.conv1, dt, rt);
  d.conv2 = upload_conv(w.conv2, dt, rt);
  if (w.conv_shortcut) d.conv_shortcut = upload_conv(*w.conv_shortcut, dt, rt);
  return d;
}

DeviceVaeAttention upload_vae_attention(const VaeAttentionW<float>& w, DType dt, Runtime& rt) {
  DeviceVaeAttention d;
  d.group_norm = upload_group_norm(w.group_norm, dt, rt);
  d.to_q = upload_linear(w.to_q, dt, rt);
  d.to_k = upload_linear(w.to_k, dt, rt);
  d.to_v = upload_linear(w.to_v, dt, rt);
  d.to_out = upload_linear(w.to_out, dt, rt);
  return d;
}

DeviceMidBlock upload_mid_block(const UNetMidBlock2DW<float>& w, DType dt, Runtime& rt) {
  DeviceMidBlock d;
  for (const auto& r : w.resnets) d.resnets.push_back(upload_resnet(r, dt, rt));
  if (w.attention) d.attention = upload_vae_attention(*w.attention, dt, rt);
  return d;
}

namespace {

// The resnets and the optional sampler conv of an up or a down block.
DeviceSampledBlock upload_sampled_block(const std::vector<ResnetBlock2DW<float>>& resnets,
                                        const std::optional<Conv2dW<float>>& sampler, DType dt, Runtime& rt) {
  DeviceSampledBlock d;
  for (const auto& r : resnets) d.resnets.push_back(upload_resnet(r, dt, rt));
  if (sampler) d.sampler = upload_conv(*sampler, dt, rt);
  return d;
}

}  // namespace

DeviceSampledBlock upload_up_block(const UpDecoderBlock2DW<float>& w, DType dt, Runtime& rt) {
  return upload_sampled_block(w.resnets, w.upsampler, dt, rt);
}

DeviceSampledBlock upload_down_block(const DownEncoderBlock2DW<float>& w, DType dt, Runtime& rt) {
  return upload_sampled_block(w.resnets, w.downsampler, dt, rt);
}

DeviceVaeDecoder upload_vae_decoder(const VaeDecoderW<float>& w, DType dt, Runtime& rt) {
  DeviceVaeDecoder d;
  d.conv_in = upload_conv(w.conv_in, dt, rt);
  d.mid_block = upload_mid_block(w.mid_block, dt, rt);
  for (const auto& b : w.up_blocks) d.up_blocks.push_back(upload_up_block(b, dt, rt));
  d.conv_norm_out = upload_group_norm(w.conv_norm_out, dt, rt);
  d.conv_out = upload_conv(w.conv_out, dt, rt);
  return d;
}

DeviceVaeEncoder upload_vae_encoder(const VaeEncoderW<float>& w, DType dt, Runtime& rt) {
  DeviceVaeEncoder d;
  d.conv_in = upload_conv(w.conv_in, dt, rt);
  for (const auto& b : w.down_blocks) d.down_blocks.push_back(upload_down_block(b, dt, rt));
  d.mid_block = upload_mid_block(w.mid_block, dt, rt);
  d.conv_norm_out = upload_group_norm(w.conv_norm_out, dt, rt);
  d.conv_out = upload_conv(w.conv_out, dt, rt);
  return d;
}

namespace {
constexpr ChoiceTable<VaeConvVersion, 3> kVaeConvVersions{
    {{VaeConvVersion::automatic, "auto"}, {VaeConvVersion::im2col, "im2col"}, {VaeConvVersion::cudnn, "cudnn"}}};
}  // namespace

const char* vae_conv_version_name(VaeConvVersion v) { return choice_name(kVaeConvVersions, v); }

VaeConvVersion parse_vae_conv_version(const std::string& s, const std::string& what) {
  return parse_choice(kVaeConvVersions, s, what);
}

CudnnConvShape cudnn_conv_shape(int64_t cin, int64_t cout, int64_t B, int64_t H, int64_t W, const Im2colGeom& g,
                                bool bias) {
  CudnnConvShape c;
  c.B = B, c.H = H * g.up, c.W = W * g.up, c.cin = cin, c.cout = cout, c.kh = g.kh, c.kw = g.kw;
  c.stride = g.stride, c.pad_top = g.pad_top, c.pad_left = g.pad_left, c.pad_bottom = g.pad_bottom;
  c.pad_right = g.pad_right, c.bias = bias;
  return c;
}

VaeConvVersion requested_vae_conv(VaeConvVersion requested) {
  if (requested != VaeConvVersion::automatic) return requested;
  requested = choice_from_env(kVaeConvVersions, "ZIMAGE_VAE_CONV", VaeConvVersion::im2col);
  return requested == VaeConvVersion::automatic ? VaeConvVersion::im2col : requested;
}

VaeConvVersion resolve_vae_conv(VaeConvVersion requested, DType dt, int64_t cin, int64_t cout, const Im2colGeom& g,
                                std::string* why) {
  if (requested_vae_conv(requested) != VaeConvVersion::cudnn) return VaeConvVersion::im2col;
  // The image size does not decide: one as large as the kernel.
  const CudnnConvShape c = cudnn_conv_shape(cin, cout, 1, std::max(g.kh, 1), std::max(g.kw, 1), g, true);
  if (!cudnn_conv_supports(dt, c, why) || !cudnn_available(why)) return VaeConvVersion::im2col;
  return VaeConvVersion::cudnn;
}

// Twin: reference/vae/layers.h conv2d.
DeviceTensor conv2d_nhwc(VaeRun& r, const DeviceConv& w, const DeviceTensor& x, const Im2colGeom& geom) {
  check_nhwc(x, w.cin, "conv2d");
  Im2colGeom g = geom;
  g.kh = w.kh, g.kw = w.kw;
  const int64_t B = B_(x), H = H_(x), W = W_(x), Ho = g.out_h(H), Wo = g.out_w(W), Q = B * Ho * Wo;
  ZIMAGE_CHECK(Ho > 0 && Wo > 0, "conv2d: input " + shape_str(x.shape) + " is smaller than the kernel");
  const cudaStream_t s = r.rt.stream();
  DeviceTensor out(r.dt, {B, Ho, Wo, w.cout}, s);
  const void* bias = w.bias.empty() ? nullptr : w.bias.data();
  // cudnn where resolve_vae_conv says so and a plan exists for this shape; a shape whose plan cannot
  // be built runs on im2col (said once per shape on stderr).
  const CudnnConvShape c = cudnn_conv_shape(w.cin, w.cout, B, H, W, g, bias != nullptr);
  bool cudnn = resolve_vae_conv(r.conv, r.dt, w.cin, w.cout, g) == VaeConvVersion::cudnn;
  if (cudnn) {
    std::string refused;
    bool first = false;
    cudnn = cudnn_conv_prepare(r.dt, c, &refused, &first);
    if (!cudnn && first) std::fprintf(stderr, "zimage: %s; this convolution runs on im2col\n", refused.c_str());
  }
  if (cudnn) {
    if (g.up == 1) {
      cudnn_conv(r.dt, x.data(), w.weight.data(), bias, out.data(), c, s);
    } else {  // Upsample2D: the nearest x2 image, then the conv on it
      const DeviceTensor xu(r.dt, {B, c.H, c.W, w.cin}, s);
      upsample_nearest_nhwc(r.dt, x.data(), B, H, W, w.cin, g.up, xu.data(), s);
      cudnn_conv(r.dt, xu.data(), w.weight.data(), bias, out.data(), c, s);
    }
    return out;
  }
  const bool pointwise = g.kh == 1 && g.kw == 1 && g.stride == 1 && g.up == 1 && g.pad_top == 0 && g.pad_left == 0 &&
                         g.pad_bottom == 0 && g.pad_right == 0;
  if (pointwise) {
    for (int64_t q0 = 0; q0 < Q; q0 += kGemmRowsMax) {
      const int64_t P = std::min(kGemmRowsMax, Q - q0);
      r.rt.linear({offset(x.data(), q0 * w.cin, r.dt), w.cin, r.dt}, w.weight.data(), bias,
                  {offset(out.data(), q0 * w.cout, r.dt), w.cout, r.dt}, {P, w.cout, w.cin}, r.gemm);
    }
    return out;
  }
  const int64_t K = int64_t(g.kh) * g.kw * w.cin;
  const int64_t band = std::max<int64_t>(1, std::min({Q, kColElements / K, kGemmRowsMax}));
  r.col.reserve(size_t(band * K) * dtype_size(r.dt));
  for (int64_t q0 = 0; q0 < Q; q0 += band) {
    const int64_t P = std::min(band, Q - q0);
    im2col_nhwc(r.dt, x.data(), B, H, W, w.cin, g, q0, P, r.col.get(), s);
    r.rt.linear({r.col.get(), K, r.dt}, w.weight.data(), bias, {offset(out.data(), q0 * w.cout, r.dt), w.cout, r.dt},
                {P, w.cout, K}, r.gemm);
  }
  return out;
}

// Twin: group_norm (and silu_ after it when `silu`).
DeviceTensor group_norm_nhwc(VaeRun& r, const DeviceGroupNorm& w, const DeviceTensor& x, bool silu) {
  const int64_t B = B_(x), P = H_(x) * W_(x), C = C_(x);
  ZIMAGE_CHECK(w.weight.numel() == C, "group_norm: weight of " + std::to_string(w.weight.numel()) + " for " +
                                          std::to_string(C) + " channels");
  DeviceTensor y(r.dt, x.shape, r.rt.stream());
  group_norm_nhwc(r.dt, x.data(), y.data(), {B, P, C, r.groups}, w.weight.data(), w.bias.data(), kVaeNormEps, silu,
                  r.stats, r.rt.stream());
  return y;
}

// Twin: resnet_block_2d.
DeviceTensor resnet_block_nhwc(VaeRun& r, const DeviceResnet& w, const DeviceTensor& x) {
  DeviceTensor h = conv2d_nhwc(r, w.conv1, group_norm_nhwc(r, w.norm1, x, true), geom_same3x3());
  h = conv2d_nhwc(r, w.conv2, group_norm_nhwc(r, w.norm2, h, true), geom_same3x3());
  if (w.conv_shortcut) {
    const DeviceTensor xs = conv2d_nhwc(r, *w.conv_shortcut, x, geom_pointwise());
    residual_add(r.dt, h.data(), xs.data(), h.numel(), r.rt.stream());
  } else {
    ZIMAGE_CHECK(x.shape == h.shape, "resnet: residual " + shape_str(x.shape) + " vs " + shape_str(h.shape) +
                                         " (C_in != C_out needs conv_shortcut)");
    residual_add(r.dt, h.data(), x.data(), h.numel(), r.rt.stream());
  }
  return h;
}

// Twin: vae_attention (one head, D = C). The core (scores, softmax, P V) in fp32.
DeviceTensor vae_attention_nhwc(VaeRun& r, const DeviceVaeAttention& w, const DeviceTensor& x) {
  const int64_t B = B_(x), L = H_(x) * W_(x), C = C_(x), N = B * L;
  const cudaStream_t s = r.rt.stream();
  const DType dt = r.dt, f32 = DType::F32;
  const DeviceTensor h = group_norm_nhwc(r, w.group_norm, x, false);
  // to_q / to_k / to_v in the storage dtype, then widened to fp32 (a copy for fp32 storage).
  DeviceTensor proj(dt, {N, C}, s);
  for (auto [lin, buf] : {std::pair{&w.to_q, &r.q}, std::pair{&w.to_k, &r.k}, std::pair{&w.to_v, &r.v}}) {
    buf->reserve(size_t(N * C) * sizeof(float));
    r.rt.linear({h.data(), C, dt}, lin->weight.data(), lin->b(), {proj.data(), C, dt}, {N, C, C}, r.gemm);
    convert_to_f32(dt, proj.data(), buf->as<float>(), N * C, s);
  }
  r.o.reserve(size_t(N * C) * sizeof(float));
  const float scale = 1.0f / std::sqrt(float(C));
  const int64_t rows = std::min(kQueryBlock, L);
  r.scores.reserve(size_t(rows * L) * sizeof(float));
  r.vt.reserve(size_t(L * C) * sizeof(float));
  for (int64_t b = 0; b < B; ++b) {
    transpose_batched(f32, r.v.as<float>() + b * L * C, r.vt.get(), 1, L, C, s);  // V^T [C, L]
    for (int64_t i0 = 0; i0 < L; i0 += kQueryBlock) {
      const int64_t R = std::min(kQueryBlock, L - i0);
      // S = q k^T [R, L]: x = the block's q rows, W = k [L, C].
      r.rt.linear({r.q.as<float>() + (b * L + i0) * C, C, f32}, r.k.as<float>() + b * L * C, nullptr,
                  {r.scores.get(), L, f32}, {R, L, C}, r.gemm);
      softmax_rows({r.scores.get(), L, f32}, R, L, scale, s);
      // O = P V [R, C]: x = P, W = V^T [C, L].
      r.rt.linear({r.scores.get(), L, f32}, r.vt.get(), nullptr, {r.o.as<float>() + (b * L + i0) * C, C, f32},
                  {R, C, L}, r.gemm);
    }
  }
  convert_from_f32(dt, r.o.as<float>(), proj.data(), N * C, s);  // O rounded to storage once
  DeviceTensor out(dt, x.shape, s);
  r.rt.linear({proj.data(), C, dt}, w.to_out.weight.data(), w.to_out.b(), {out.data(), C, dt}, {N, C, C}, r.gemm);
  residual_add(dt, out.data(), x.data(), out.numel(), s);
  return out;
}

// Twin: unet_mid_block_2d.
DeviceTensor mid_block_nhwc(VaeRun& r, const DeviceMidBlock& w, DeviceTensor x) {
  ZIMAGE_CHECK(w.resnets.size() == 2, "mid_block: expected 2 resnets");
  x = resnet_block_nhwc(r, w.resnets[0], x);
  if (w.attention) x = vae_attention_nhwc(r, *w.attention, x);
  return resnet_block_nhwc(r, w.resnets[1], x);
}

// Twin: up_decoder_block_2d (Upsample2D: nearest x2 then the 3x3 conv, fused).
DeviceTensor up_block_nhwc(VaeRun& r, const DeviceSampledBlock& w, DeviceTensor x) {
  for (const auto& res : w.resnets) x = resnet_block_nhwc(r, res, x);
  if (w.sampler) x = conv2d_nhwc(r, *w.sampler, x, geom_same3x3(2));
  return x;
}

// Twin: down_encoder_block_2d (Downsample2D: pad (0, 1, 0, 1), 3x3 stride 2).
DeviceTensor down_block_nhwc(VaeRun& r, const DeviceSampledBlock& w, DeviceTensor x) {
  for (const auto& res : w.resnets) x = resnet_block_nhwc(r, res, x);
  if (w.sampler) x = conv2d_nhwc(r, *w.sampler, x, geom_downsample());
  return x;
}

// Twin: vae_decoder_forward.
DeviceTensor vae_decoder_nhwc(VaeRun& r, const DeviceVaeDecoder& w, DeviceTensor z) {
  DeviceTensor x = conv2d_nhwc(r, w.conv_in, z, geom_same3x3());
  z = DeviceTensor();
  x = mid_block_nhwc(r, w.mid_block, std::move(x));
  for (const auto& b : w.up_blocks) x = up_block_nhwc(r, b, std::move(x));
  return conv2d_nhwc(r, w.conv_out, group_norm_nhwc(r, w.conv_norm_out, x, true), geom_same3x3());
}

// Twin: vae_encoder_forward.
DeviceTensor vae_encoder_nhwc(VaeRun& r, const DeviceVaeEncoder& w, DeviceTensor x) {
  x = conv2d_nhwc(r, w.conv_in, x, geom_same3x3());
  for (const auto& b : w.down_blocks) x = down_block_nhwc(r, b, std::move(x));
  x = mid_block_nhwc(r, w.mid_block, std::move(x));
  return conv2d_nhwc(r, w.conv_out, group_norm_nhwc(r, w.conv_norm_out, x, true), geom_same3x3());
}

DeviceTensor upload_nchw(const Tensor<float>& x, DType dt, Runtime& rt) {
  ZIMAGE_CHECK(x.ndim() == 4, "upload_nchw: " + shape_str(x.shape) + " is not [B, C, H, W]");
  const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const DeviceTensor nchw = up(x, dt, rt);
  DeviceTensor out(dt, {B, H, W, C}, rt.stream());
  transpose_batched(dt, nchw.data(), out.data(), B, C, H * W, rt.stream());
  rt.sync();  // nchw is freed (not stream-ordered) when this returns
  return out;
}

Tensor<float> download_nchw(const DeviceTensor& x, Runtime& rt) {
  const int64_t B = B_(x), H = H_(x), W = W_(x), C = C_(x);
  DeviceTensor nchw(x.dtype, {B, C, H, W}, rt.stream());
  transpose_batched(x.dtype, x.data(), nchw.data(), B, H * W, C, rt.stream());
  return download(nchw, rt.staging(), rt.stream());
}

CudaVae::CudaVae(const VaeConfig& cfg, const ParamSource& src, VaePart part, const VaeCudaOptions& opts)
    : cfg_(cfg), opts_(opts) {
  const MemoryScope scope("the VAE (upload)");
  refuse_fp16(opts.dtype);
  opts_.conv = requested_vae_conv(opts.conv);  // a bad ZIMAGE_VAE_CONV is refused before any upload
  const VaeWeights<float> w = load_vae_weights<float>(cfg, src, part);
  rt_ = std::make_unique<Runtime>();
  if (w.decoder) decoder_ = upload_vae_decoder(*w.decoder, opts.dtype, *rt_);
  if (w.encoder) encoder_ = upload_vae_encoder(*w.encoder, opts.dtype, *rt_);
  if (w.quant_conv) quant_conv_ = upload_conv(*w.quant_conv, opts.dtype, *rt_);
  if (w.post_quant_conv) post_quant_conv_ = upload_conv(*w.post_quant_conv, opts.dtype, *rt_);
  rt_->sync();
}

CudaVae::~CudaVae() {
  if (rt_) {
    try {
      rt_->sync();
    } catch (...) {
    }
  }
}

Tensor<float> CudaVae::decode(const Tensor<float>& z) {
  const MemoryScope scope("the VAE (decode)");
  ZIMAGE_CHECK(decoder_, "vae decode on CUDA: the decoder was not loaded (VaePart::Decoder)");
  check_vae_latents(cfg_, z.shape, "vae_decode");
  VaeRun r(*rt_, opts_, cfg_.norm_num_groups);
  DeviceTensor x = upload_nchw(z, opts_.dtype, *rt_);
  if (cfg_.use_post_quant_conv) {
    ZIMAGE_CHECK(post_quant_conv_, "vae_decode: the config has use_post_quant_conv but no post_quant_conv was loaded");
    x = conv2d_nhwc(r, *post_quant_conv_, x, geom_pointwise());
  }
  return download_nchw(vae_decoder_nhwc(r, *decoder_, std::move(x)), *rt_);
}

// Twin: vae_tiled_decode (reference/vae/autoencoder_kl.h): its tiling, blends and crops
// (tiled_decode_with, on the host), each tile through decode() on the GPU.
Tensor<float> CudaVae::tiled_decode(const Tensor<float>& z, TileOptions opts) {
  ZIMAGE_CHECK(decoder_, "vae tiled decode on CUDA: the decoder was not loaded (VaePart::Decoder)");
  return tiled_decode_with<float>(cfg_, z, opts, [this](const Tensor<float>& tile) { return decode(tile); });
}

// Twin: vae_decode_maybe_tiled.
Tensor<float> CudaVae::decode_maybe_tiled(const Tensor<float>& z, TileOptions opts) {
  if (const std::optional<TileOptions> tiles = tiles_for_decode(cfg_, z.shape, opts)) return tiled_decode(z, *tiles);
  return decode(z);
}

std::pair<Tensor<float>, Tensor<float>> CudaVae::encode(const Tensor<float>& x) {
  const MemoryScope scope("the VAE (encode)");
  ZIMAGE_CHECK(encoder_, "vae encode on CUDA: the encoder was not loaded (VaePart::Encoder)");
  check_vae_image(cfg_, x.shape, "vae_encode");
  VaeRun r(*rt_, opts_, cfg_.norm_num_groups);
  DeviceTensor h = vae_encoder_nhwc(r, *encoder_, upload_nchw(x, opts_.dtype, *rt_));
  if (cfg_.use_quant_conv) {
    ZIMAGE_CHECK(quant_conv_, "vae_encode: the config has use_quant_conv but no quant_conv was loaded");
    h = conv2d_nhwc(r, *quant_conv_, h, geom_pointwise());
  }
  const Tensor<float> m = download_nchw(h, *rt_);
  // torch.chunk(moments, 2, dim=1); logvar clamped to [-30, 20] (on the host, as the reference).
  const int64_t B = m.dim(0), C2 = m.dim(1), S = m.dim(2) * m.dim(3), Lc = C2 / 2;
  Tensor<float> mean({B, Lc, m.dim(2), m.dim(3)}), logvar({B, Lc, m.dim(2), m.dim(3)});
  for (int64_t b = 0; b < B; ++b) {
    std::copy_n(m.ptr() + b * C2 * S, Lc * S, mean.ptr() + b * Lc * S);
    const float* lv = m.ptr() + (b * C2 + Lc) * S;
    for (int64_t i = 0; i < Lc * S; ++i) logvar[b * Lc * S + i] = std::clamp(lv[i], -30.0f, 20.0f);
  }
  return {std::move(mean), std::move(logvar)};
}

std::function<Tensor<float>(const VaeModel&, const Tensor<float>&)> cuda_vae_decoder(const VaeCudaOptions& opts) {
  return [opts](const VaeModel& vae, const Tensor<float>& latents) {
    CudaVae dev(vae.config, *vae.params, VaePart::Decoder, opts);
    return dev.decode(unscale_latents(vae.config, latents));
  };
}

std::optional<Tensor<float>> run_vae_module_cuda(const VaeGolden& g, const std::string& path, const VaeCudaOptions& opts,
                                                 Runtime& rt) {
  const auto in_name = vae_input_name(g, path);
  if (!in_name) return std::nullopt;
  const Tensor<float> x = g.get<float>(*in_name);
  const VaeConfig& c = g.config;
  const ParamSource& src = *g.params;
  const DType dt = opts.dtype;
  refuse_fp16(dt);
  VaeRun r(rt, opts, c.norm_num_groups);
  auto to_host = [&](const DeviceTensor& y) { return download_nchw(y, rt); };

  if (path == "decode" || path == "tiled_decode" || path == "encode.mean" || path == "encode.logvar") {
    CudaVae vae(c, src, path.rfind("encode.", 0) == 0 ? VaePart::Encoder : VaePart::Decoder, opts);
    if (path == "decode") return vae.decode(x);
    if (path == "tiled_decode") return vae.tiled_decode(x, g.tiles);
    auto [mean, logvar] = vae.encode(x);
    return path == "encode.mean" ? mean : logvar;
  }
  if (path == "quant_conv" || path == "post_quant_conv")
    return to_host(conv2d_nhwc(r, upload_conv(load_conv2d<float>(src, path), dt, rt), upload_nchw(x, dt, rt), geom_pointwise()));
  if (path == "encoder")
    return to_host(vae_encoder_nhwc(r, upload_vae_encoder(load_vae_encoder<float>(c, src), dt, rt), upload_nchw(x, dt, rt)));
  if (path == "decoder")
    return to_host(vae_decoder_nhwc(r, upload_vae_decoder(load_vae_decoder<float>(c, src), dt, rt), upload_nchw(x, dt, rt)));

  std::smatch m;
  static const std::regex top_re(R"(^(encoder|decoder)\.(.+)$)");
  ZIMAGE_CHECK(std::regex_match(path, m, top_re), g.path + ": no CUDA module for '" + path + "'");
  const std::string top = std::string(m[1]) + ".", sub = m[2];
  auto conv = [&](const std::string& p, const Im2colGeom& geom) {
    return to_host(conv2d_nhwc(r, upload_conv(load_conv2d<float>(src, p), dt, rt), upload_nchw(x, dt, rt), geom));
  };
  // GroupNorm rows take [B, C, *]: the attention's norm sees x.view(B, C, L) (3-D), run as [B, C, L, 1].
  auto norm = [&](const std::string& p) {
    const Tensor<float> x4 = x.ndim() == 3 ? x.reshaped({x.dim(0), x.dim(1), x.dim(2), 1}) : x;
    const DeviceGroupNorm gn = upload_group_norm(load_group_norm<float>(src, p), dt, rt);
    return to_host(group_norm_nhwc(r, gn, upload_nchw(x4, dt, rt), false)).reshaped(x.shape);
  };
  if (sub == "conv_in" || sub == "conv_out") return conv(path, geom_same3x3());
  if (sub == "conv_norm_out") return norm(path);
  if (sub == "mid_block")
    return to_host(mid_block_nhwc(r, upload_mid_block(load_unet_mid_block_2d<float>(c, src, path), dt, rt), upload_nchw(x, dt, rt)));

  static const std::regex block_re(R"(^(down_blocks|up_blocks)\.(\d+)$)");
  static const std::regex resnet_re(R"(^(.*\.resnets\.\d+)(\.(norm1|norm2|conv1|conv2|conv_shortcut))?$)");
  static const std::regex attn_re(R"(^(mid_block\.attentions\.0)(\.(group_norm|to_q|to_k|to_v|to_out\.0))?$)");
  static const std::regex sampler_re(R"(^((down_blocks|up_blocks)\.\d+\.(downsamplers|upsamplers)\.0)(\.conv)?$)");
  if (std::regex_match(sub, m, block_re)) {
    const int i = std::stoi(m[2]);
    if (m[1] == "down_blocks")
      return to_host(down_block_nhwc(r, upload_down_block(load_down_encoder_block_2d<float>(c, src, i), dt, rt), upload_nchw(x, dt, rt)));
    return to_host(up_block_nhwc(r, upload_up_block(load_up_decoder_block_2d<float>(c, src, i), dt, rt), upload_nchw(x, dt, rt)));
  }
  if (std::regex_match(sub, m, resnet_re)) {
    const std::string prefix = top + std::string(m[1]), leaf = m[3];
    if (leaf.empty())
      return to_host(resnet_block_nhwc(r, upload_resnet(load_resnet_block_2d<float>(src, prefix), dt, rt), upload_nchw(x, dt, rt)));
    if (leaf == "norm1" || leaf == "norm2") return norm(path);
    return conv(path, leaf == "conv_shortcut" ? geom_pointwise() : geom_same3x3());
  }
  if (std::regex_match(sub, m, attn_re)) {
    const std::string prefix = top + std::string(m[1]), leaf = m[3];
    if (leaf.empty())
      return to_host(vae_attention_nhwc(r, upload_vae_attention(load_vae_attention<float>(src, prefix), dt, rt), upload_nchw(x, dt, rt)));
    if (leaf == "group_norm") return norm(path);
    // A Linear on token rows [B, L, C] (the golden's layout): one GEMM.
    const LinearW<float> lin{src.load_float(path + ".weight"), src.load_float(path + ".bias")};
    const DeviceLinear d = upload_linear(lin, dt, rt);
    const DeviceTensor xd = up(x, dt, rt);
    const int64_t N = x.numel() / d.in;
    DeviceTensor y(dt, {N, d.out}, rt.stream());
    rt.linear({xd.data(), d.in, dt}, d.weight.data(), d.b(), {y.data(), d.out, dt}, {N, d.out, d.in}, opts.gemm);
    Tensor<float> out = download(y, rt.staging(), rt.stream());
    Shape shape = x.shape;
    shape.back() = d.out;
    return out.reshaped(shape);
  }
  if (std::regex_match(sub, m, sampler_re)) {
    const std::string prefix = top + std::string(m[1]);
    const bool down = m[3] == "downsamplers";
    if (m[4].matched)  // the bare conv: its input is already padded (down) / upsampled (up)
      return conv(prefix + ".conv", down ? Im2colGeom{3, 3, 2, 0, 0, 0, 0, 1} : geom_same3x3());
    return conv(prefix + ".conv", down ? geom_downsample() : geom_same3x3(2));
  }
  throw Error(g.path + ": no CUDA module for '" + path + "'");
}

}  // namespace zimage::gpu

// The layers of diffusers' AutoencoderKL, one function per diffusers module,
// shapes in PyTorch order (NCHW): B batch, C channels, H x W spatial,
// L = H * W tokens in the mid-block attention. Templated on the scalar
// (double is the truth, float the parity path); defined in layers.cpp with
// explicit instantiations for float and double.
//
// Determinism: convolutions are an im2col per band of output rows times the
// weight matrix, each band one single-threaded GEMM (core/gemm.h, whose
// rounding depends on K only), bands split between OpenMP threads;
// GroupNorm statistics are fixed-order blocked sums per (batch, group); the
// attention works on fixed blocks of kAttnQueryBlock query rows. No result
// depends on the thread count (tests/unit/test_vae_layers.cpp checks it).
// Memory: the im2col of a band is at most C_in*k*k x kConvBandPixels values
// per thread; the full im2col of a layer and the L x L attention matrix are
// never materialised (a 1024x1024 decode: docs/vae.md).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "nn/common.h"

namespace zimage {

// Output pixels per im2col band (a whole number of output rows, at least one;
// thinner when that leaves fewer than two bands per thread).
constexpr int64_t kConvBandPixels = 4096;
// Query rows per attention block.
constexpr int64_t kAttnQueryBlock = 256;

// torch.nn.Conv2d parameters: weight [C_out, C_in, kh, kw], bias [C_out].
template <class T>
struct Conv2dW {
  Tensor<T> weight;
  Tensor<T> bias;
};

// torch.nn.GroupNorm(affine=True) parameters: weight [C], bias [C].
template <class T>
struct GroupNormW {
  Tensor<T> weight;
  Tensor<T> bias;
};

// How a conv reads its input. `upsample` 2 reads the input through a nearest
// x2 upsampling (Upsample2D's F.interpolate(scale_factor=2, mode="nearest")
// fused into the gather: exact, and the 4x larger tensor is never built).
struct ConvGeom {
  int stride = 1;
  int pad_top = 1, pad_left = 1, pad_bottom = 1, pad_right = 1;
  int upsample = 1;
  static ConvGeom same3x3() { return {}; }
  static ConvGeom pointwise() { return {1, 0, 0, 0, 0, 1}; }
};

// Ref: torch.nn.Conv2d.forward (cross-correlation, zero padding, dilation 1, groups 1)
// x [B, C_in, H, W] -> [B, C_out, H_o, W_o], H_o = (H*up + pad_t + pad_b - kh) / stride + 1.
template <class T>
Tensor<T> conv2d(const Tensor<T>& x, const Conv2dW<T>& w, const ConvGeom& g);

// Ref: torch.nn.GroupNorm.forward (biased variance: divide by N = C/G * spatial)
//   y = (x - mean_g) / sqrt(var_g + eps) * weight[c] + bias[c]
// x [B, C, *] -> same shape. In place: x is overwritten.
template <class T>
void group_norm_(Tensor<T>& x, const GroupNormW<T>& w, int groups, double eps);
template <class T>
Tensor<T> group_norm(const Tensor<T>& x, const GroupNormW<T>& w, int groups, double eps);

// Ref: torch.nn.SiLU (x * sigmoid(x)), in place.
template <class T>
void silu_(Tensor<T>& x);

// ---------------------------------------------------------------- blocks

// Ref: diffusers/models/resnet.py ResnetBlock2D (temb None, time_embedding_norm
// "default", output_scale_factor 1, pre_norm):
//   h = conv1(silu(norm1(x))); h = conv2(silu(norm2(h))); out = shortcut(x) + h
// conv_shortcut (1x1, bias) exists iff C_in != C_out.
template <class T>
struct ResnetBlock2DW {
  GroupNormW<T> norm1, norm2;
  Conv2dW<T> conv1, conv2;
  std::optional<Conv2dW<T>> conv_shortcut;
};
// x [B, C_in, H, W] -> [B, C_out, H, W]
template <class T>
Tensor<T> resnet_block_2d(Tensor<T> x, const ResnetBlock2DW<T>& w, int groups, Activations<T>* acts = nullptr,
                          const std::string& path = "resnet");

// Ref: diffusers/models/attention_processor.py Attention(query_dim=C, heads=1,
// dim_head=C, norm_num_groups=G, residual_connection=True, bias=True,
// rescale_output_factor=1, eps=1e-6) with AttnProcessor2_0 (spatial_norm None):
//   h = group_norm(x.view(B, C, L)).transpose(1, 2)       [B, L, C]
//   q, k, v = to_q(h), to_k(h), to_v(h)                   [B, L, C], one head, D = C
//   o = to_out.0(softmax(q k^T / sqrt(C)) v)              [B, L, C]
//   out = o.transpose(-1, -2).reshape(B, C, H, W) + x
template <class T>
struct VaeAttentionW {
  GroupNormW<T> group_norm;
  LinearW<T> to_q, to_k, to_v, to_out;
};
// x [B, C, H, W] -> [B, C, H, W]
template <class T>
Tensor<T> vae_attention(Tensor<T> x, const VaeAttentionW<T>& w, int groups, Activations<T>* acts = nullptr,
                        const std::string& path = "attention");

// Ref: diffusers/models/downsampling.py Downsample2D(use_conv=True, padding=0):
//   F.pad(x, (0, 1, 0, 1)) then Conv2d(C, C, 3, stride=2, padding=0)
// x [B, C, H, W] -> [B, C, (H - 2) / 2 + 1, (W - 2) / 2 + 1] (H, W >= 2; H/2 for even H, (H-1)/2 for odd H)
template <class T>
Tensor<T> downsample_2d(const Tensor<T>& x, const Conv2dW<T>& conv, Activations<T>* acts = nullptr,
                        const std::string& path = "downsampler");

// Ref: diffusers/models/upsampling.py Upsample2D(use_conv=True):
//   F.interpolate(x, scale_factor=2.0, mode="nearest") then Conv2d(C, C, 3, padding=1)
// x [B, C, H, W] -> [B, C, 2H, 2W]
template <class T>
Tensor<T> upsample_2d(const Tensor<T>& x, const Conv2dW<T>& conv, Activations<T>* acts = nullptr,
                      const std::string& path = "upsampler");

// Ref: diffusers/models/unets/unet_2d_blocks.py UNetMidBlock2D (num_layers=1):
//   resnets[0], then [attentions[0] if add_attention], resnets[1]
template <class T>
struct UNetMidBlock2DW {
  std::vector<ResnetBlock2DW<T>> resnets;     // 2
  std::optional<VaeAttentionW<T>> attention;  // mid_block_add_attention
};
template <class T>
Tensor<T> unet_mid_block_2d(Tensor<T> x, const UNetMidBlock2DW<T>& w, int groups, Activations<T>* acts = nullptr,
                            const std::string& path = "mid_block");

// Ref: unet_2d_blocks.py DownEncoderBlock2D: resnets, then Downsample2D(padding=0) unless last.
template <class T>
struct DownEncoderBlock2DW {
  std::vector<ResnetBlock2DW<T>> resnets;     // layers_per_block
  std::optional<Conv2dW<T>> downsampler;      // downsamplers.0.conv
};
template <class T>
Tensor<T> down_encoder_block_2d(Tensor<T> x, const DownEncoderBlock2DW<T>& w, int groups,
                                Activations<T>* acts = nullptr, const std::string& path = "down_block");

// Ref: unet_2d_blocks.py UpDecoderBlock2D: resnets, then Upsample2D unless last.
template <class T>
struct UpDecoderBlock2DW {
  std::vector<ResnetBlock2DW<T>> resnets;     // layers_per_block + 1
  std::optional<Conv2dW<T>> upsampler;        // upsamplers.0.conv
};
template <class T>
Tensor<T> up_decoder_block_2d(Tensor<T> x, const UpDecoderBlock2DW<T>& w, int groups, Activations<T>* acts = nullptr,
                              const std::string& path = "up_block");

}  // namespace zimage

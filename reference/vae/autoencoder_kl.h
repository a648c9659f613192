// Ref: diffusers/models/autoencoders/autoencoder_kl.py AutoencoderKL
//      diffusers/models/autoencoders/vae.py Encoder, Decoder, DiagonalGaussianDistribution
//
// Shapes (PyTorch order), n = len(block_out_channels), f = 2^(n-1):
//   decode: z [B, latent_channels, h, w] -> post_quant_conv (if the config has it)
//           -> Decoder -> image [B, out_channels, f*h, f*w]
//   encode: image [B, in_channels, H, W] -> Encoder -> [B, 2*latent_channels, H/f, W/f]
//           -> quant_conv (if the config has it) -> (mean, logvar) split on dim 1,
//           logvar clamped to [-30, 20] as DiagonalGaussianDistribution does.
// Module outputs are recorded in Activations under diffusers' named_modules()
// paths: "post_quant_conv", "decoder.conv_in", "decoder.mid_block.attentions.0",
// "decoder.up_blocks.1.resnets.0.conv1", "decoder", "encoder", "quant_conv", ...
// docs/vae.md describes the structure and the tests.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "io/param_source.h"
#include "vae/config.h"
#include "vae/layers.h"

namespace zimage {

// Ref: vae.py Encoder(double_z=True)
template <class T>
struct VaeEncoderW {
  Conv2dW<T> conv_in;
  std::vector<DownEncoderBlock2DW<T>> down_blocks;
  UNetMidBlock2DW<T> mid_block;
  GroupNormW<T> conv_norm_out;
  Conv2dW<T> conv_out;
};

// Ref: vae.py Decoder(norm_type="group")
template <class T>
struct VaeDecoderW {
  Conv2dW<T> conv_in;
  UNetMidBlock2DW<T> mid_block;
  std::vector<UpDecoderBlock2DW<T>> up_blocks;
  GroupNormW<T> conv_norm_out;
  Conv2dW<T> conv_out;
};

// Which halves load_vae_weights reads (the completeness check always covers the whole model).
enum class VaePart { Encoder = 1, Decoder = 2, Both = 3 };

template <class T>
struct VaeWeights {
  std::optional<VaeEncoderW<T>> encoder;           // absent when not loaded
  std::optional<VaeDecoderW<T>> decoder;
  std::optional<Conv2dW<T>> quant_conv;            // use_quant_conv (and the encoder loaded)
  std::optional<Conv2dW<T>> post_quant_conv;       // use_post_quant_conv (and the decoder loaded)
};

// Every parameter AutoencoderKL(config) has, with its shape, named as in its state_dict().
std::map<std::string, Shape> expected_vae_parameter_shapes(const VaeConfig& cfg);

// Loads the weights (converted to T), after checking that `src` holds
// exactly the parameters the config implies (names and shapes).
template <class T>
VaeWeights<T> load_vae_weights(const VaeConfig& cfg, const ParamSource& src, VaePart part = VaePart::Both);

// Loaders of one submodule by its diffusers path prefix (no trailing dot),
// used by load_vae_weights and by teacher forcing (vae/vae_golden.h).
template <class T> Conv2dW<T> load_conv2d(const ParamSource& src, const std::string& prefix, bool bias = true);
template <class T> GroupNormW<T> load_group_norm(const ParamSource& src, const std::string& prefix);
template <class T> ResnetBlock2DW<T> load_resnet_block_2d(const ParamSource& src, const std::string& prefix);
template <class T> VaeAttentionW<T> load_vae_attention(const ParamSource& src, const std::string& prefix);
template <class T> UNetMidBlock2DW<T> load_unet_mid_block_2d(const VaeConfig& cfg, const ParamSource& src, const std::string& prefix);
// encoder.down_blocks.{i} / decoder.up_blocks.{i}: the resnet count and the
// down/upsampler come from the config and the block index.
template <class T> DownEncoderBlock2DW<T> load_down_encoder_block_2d(const VaeConfig& cfg, const ParamSource& src, int i);
template <class T> UpDecoderBlock2DW<T> load_up_decoder_block_2d(const VaeConfig& cfg, const ParamSource& src, int i);
template <class T> VaeEncoderW<T> load_vae_encoder(const VaeConfig& cfg, const ParamSource& src);
template <class T> VaeDecoderW<T> load_vae_decoder(const VaeConfig& cfg, const ParamSource& src);

// A pipeline's vae/ folder: config.json + diffusion_pytorch_model.safetensors
// (or its shards). The parameters are checked against the config on open.
struct VaeModel {
  VaeConfig config;
  std::shared_ptr<ParamSource> params;
};
VaeModel open_vae_folder(const std::string& dir);

// Ref: vae.py Encoder.forward / Decoder.forward. x [B, C, H, W].
template <class T>
Tensor<T> vae_encoder_forward(const VaeConfig& cfg, const VaeEncoderW<T>& w, Tensor<T> x, Activations<T>* acts = nullptr);
template <class T>
Tensor<T> vae_decoder_forward(const VaeConfig& cfg, const VaeDecoderW<T>& w, Tensor<T> z, Activations<T>* acts = nullptr);

// Ref: AutoencoderKL._decode (use_tiling False): post_quant_conv when the
// config has one, then the decoder. z [B, latent_channels, h, w] (already
// unscaled, see unscale_latents) -> image [B, out_channels, f*h, f*w], about
// [-1, 1] for trained weights (no clamp: the pipeline's image processor clamps).
template <class T>
Tensor<T> vae_decode(const VaeConfig& cfg, const VaeWeights<T>& w, const Tensor<T>& z, Activations<T>* acts = nullptr);

// Ref: AutoencoderKL._encode + DiagonalGaussianDistribution(moments):
// returns (mean, logvar), each [B, latent_channels, h, w], logvar clamped to [-30, 20].
template <class T>
std::pair<Tensor<T>, Tensor<T>> vae_encode(const VaeConfig& cfg, const VaeWeights<T>& w, const Tensor<T>& x,
                                           Activations<T>* acts = nullptr);

// Ref: pipelines/z_image/pipeline_z_image.py (decode):
//   latents = (latents / vae.config.scaling_factor) + vae.config.shift_factor
// with shift 0 when the config's shift_factor is null.
template <class T>
Tensor<T> unscale_latents(const VaeConfig& cfg, const Tensor<T>& latents);

// Ref: AutoencoderKL.tiled_decode / blend_v / blend_h. Tiles of
// tile_latent x tile_latent latents start every int(tile_latent * (1 - overlap))
// latent rows/columns; each is decoded alone (post_quant_conv when the config
// has it), blended into its upper and left neighbours over
// int(tile_sample * overlap) pixels (in place, in raster order, as diffusers
// does), and cropped to tile_sample - blend_extent. Defaults (<= 0): the
// config's tile_latent_min_size / tile_sample_min_size, overlap 0.25.
struct TileOptions {
  int tile_latent = 0;
  int tile_sample = 0;
  double overlap = 0.25;
};
template <class T>
Tensor<T> vae_tiled_decode(const VaeConfig& cfg, const VaeWeights<T>& w, const Tensor<T>& z, TileOptions opts = {});

// vae_tiled_decode with each tile's decode supplied: `decode_tile` maps a latent crop
// [B, latent_channels, <= tile_latent, <= tile_latent] to its image, post_quant_conv included
// (what AutoencoderKL.tiled_decode does per tile). The tiling, the blends, the crops and the
// concatenation are vae_tiled_decode's, on the host in T: vae_tiled_decode passes the reference's
// decode, the CUDA VAE (gpu::CudaVae::tiled_decode) its own.
template <class T>
using TileDecoder = std::function<Tensor<T>(const Tensor<T>& tile)>;
template <class T>
Tensor<T> tiled_decode_with(const VaeConfig& cfg, const Tensor<T>& z, TileOptions opts, const TileDecoder<T>& decode_tile);

// Ref: AutoencoderKL._decode with use_tiling True: tiled_decode only when
// z is larger than tile_latent in h or w, else the plain decode.
template <class T>
Tensor<T> vae_decode_maybe_tiled(const VaeConfig& cfg, const VaeWeights<T>& w, const Tensor<T>& z, TileOptions opts = {});

// Resolves the TileOptions defaults against the config.
TileOptions resolved_tiles(const VaeConfig& cfg, TileOptions opts);

// AutoencoderKL._decode's choice with use_tiling True, for latents of shape z (checked first,
// as vae_decode checks them): the resolved tiles when z is larger than tile_latent in h or w
// (tiled_decode), else nothing (the plain decode). vae_decode_maybe_tiled and the CUDA VAE's
// decode_maybe_tiled both ask it.
std::optional<TileOptions> tiles_for_decode(const VaeConfig& cfg, const Shape& z, TileOptions opts);

// Checks a latent / image input before any compute: rank 4, the channel
// count of the config, positive sizes. Throws naming `what`.
void check_vae_latents(const VaeConfig& cfg, const Shape& z, const std::string& what);
void check_vae_image(const VaeConfig& cfg, const Shape& x, const std::string& what);

}  // namespace zimage

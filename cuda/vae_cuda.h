// AutoencoderKL (the Flux VAE) on the GPU: decode and encode, module by module as the reference.
// Twin: reference/vae/autoencoder_kl.h vae_decode / vae_encode and reference/vae/layers.h, step for
// step:
//   conv2d          im2col of bands of output pixels (kernels/im2col.h) times the weight through
//                   cuBLASLt (bias in the epilogue); 1x1 convs are one GEMM on the activation itself;
//                   or cuDNN's convolution (VaeConvVersion below)
//   group_norm      kernels/group_norm.h (fp32 chunk sums added in double; SiLU fused where the
//                   reference applies silu_ right after the norm)
//   ResnetBlock2D   norm1+silu, conv1, norm2+silu, conv2, conv_shortcut, + residual (residual_add)
//   mid attention   group_norm, to_q / to_k / to_v GEMMs on the NHWC rows (tokens), then in fp32
//                   whatever the storage (q, k, v widened: the scores of a bf16 run are not rounded
//                   to bf16, as torch's SDPA keeps them fp32), per batch item and per block of
//                   kQueryBlock query rows: S = q k^T (GEMM), softmax of S * C^-0.5
//                   (kernels/softmax_rows.h), O = P V (GEMM on V^T, kernels/transpose.h); O rounded
//                   to storage once; to_out.0, + residual
//   Upsample2D      the nearest x2 fused into the conv's gather (Im2colGeom::up = 2), as the reference;
//                   with cuDNN, the x2 image written first (kernels/upsample.h)
//   Downsample2D    F.pad (0, 1, 0, 1) then the stride-2 conv: the pad is the gather's bottom/right pad
// Activations are NHWC on the device ([B, H, W, C]: a pixel's channels are one GEMM row); inputs and
// outputs are NCHW host tensors, transposed on the device. Conv weights are uploaded permuted to
// [C_out, kh, kw, C_in] to match the gather's column order (the layout is defined here and in
// kernels/im2col.h). Storage float32 or bfloat16, fp32 math; float16 is refused.
// Memory: an im2col band holds at most kColElements values, the attention scores kQueryBlock x L.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "conv_cudnn.h"
#include "forward.h"
#include "kernels/im2col.h"
#include "vae/autoencoder_kl.h"
#include "vae/vae_golden.h"

namespace zimage::gpu {

// How conv2d_nhwc convolves (docs/cuda.md, "The VAE's convolutions"):
//   im2col  bands of output pixels gathered by kernels/im2col.h times the weight through cuBLASLt
//           (1x1 convs: one GEMM on the activation itself): every dtype and geometry
//   cudnn   cuDNN's convolution with the bias fused (conv_cudnn.h) for the convs it takes
//           (bfloat16, C_in and C_out multiples of 8, equal pads on both sides), Upsample2D's x2
//           materialized first (kernels/upsample.h); im2col for the others (the encoder's conv_in
//           and downsamplers, the decoder's conv_out)
// automatic: ZIMAGE_VAE_CONV (im2col | cudnn) when set, else im2col. cudnn has not run on a GPU yet:
// auto does not take it until a GPU check has shown it within budget and faster.
enum class VaeConvVersion { automatic, im2col, cudnn };
const char* vae_conv_version_name(VaeConvVersion v);  // "auto", "im2col", "cudnn"
// "auto" | "im2col" | "cudnn"; anything else throws one line naming `what` (e.g. "ZIMAGE_VAE_CONV").
VaeConvVersion parse_vae_conv_version(const std::string& s, const std::string& what = "VAE convolution version");
// `requested` with automatic resolved: ZIMAGE_VAE_CONV when set (a bad value throws one line), else
// im2col. VaeRun and CudaVae resolve it once, when they are made.
VaeConvVersion requested_vae_conv(VaeConvVersion requested);

struct VaeCudaOptions {
  DType dtype = DType::F32;
  GemmOptions gemm;
  VaeConvVersion conv = VaeConvVersion::automatic;
};

constexpr int64_t kColElements = int64_t(64) << 20;  // im2col band: at most 64 Mi values
// Rows of one convolution GEMM at most (a 1 x 1 conv and the im2col bands are split past it). torch
// sends addmm to cuBLASLt's bias epilogue only below 65535 x 32 rows, after that epilogue failed on
// larger ones (pytorch/pytorch#73455); 2^20 rows is a 1024 x 1024 latent-to-pixel stage, so the
// sizes the tests run are one GEMM as before.
constexpr int64_t kGemmRowsMax = int64_t(1) << 20;
constexpr int64_t kQueryBlock = 1024;                // attention query rows per score block

struct DeviceConv {
  DeviceTensor weight, bias;  // [C_out, kh, kw, C_in], [C_out]
  int64_t cin = 0, cout = 0;
  int kh = 1, kw = 1;
};
struct DeviceGroupNorm {
  DeviceTensor weight, bias;
};
struct DeviceResnet {
  DeviceGroupNorm norm1, norm2;
  DeviceConv conv1, conv2;
  std::optional<DeviceConv> conv_shortcut;
};
struct DeviceVaeAttention {
  DeviceGroupNorm group_norm;
  DeviceLinear to_q, to_k, to_v, to_out;
};
struct DeviceMidBlock {
  std::vector<DeviceResnet> resnets;
  std::optional<DeviceVaeAttention> attention;
};
struct DeviceSampledBlock {  // DownEncoderBlock2D / UpDecoderBlock2D
  std::vector<DeviceResnet> resnets;
  std::optional<DeviceConv> sampler;
};
struct DeviceVaeDecoder {
  DeviceConv conv_in, conv_out;
  DeviceMidBlock mid_block;
  std::vector<DeviceSampledBlock> up_blocks;
  DeviceGroupNorm conv_norm_out;
};
struct DeviceVaeEncoder {
  DeviceConv conv_in, conv_out;
  std::vector<DeviceSampledBlock> down_blocks;
  DeviceMidBlock mid_block;
  DeviceGroupNorm conv_norm_out;
};

// [C_out, C_in, kh, kw] -> [C_out, kh, kw, C_in]: the conv weight as its GEMM reads it (host).
Tensor<float> permute_conv_weight(const Tensor<float>& w);

// Uploads (float16 refused with one line).
DeviceConv upload_conv(const Conv2dW<float>& w, DType dt, Runtime& rt);
DeviceGroupNorm upload_group_norm(const GroupNormW<float>& w, DType dt, Runtime& rt);
DeviceResnet upload_resnet(const ResnetBlock2DW<float>& w, DType dt, Runtime& rt);
DeviceVaeAttention upload_vae_attention(const VaeAttentionW<float>& w, DType dt, Runtime& rt);
DeviceMidBlock upload_mid_block(const UNetMidBlock2DW<float>& w, DType dt, Runtime& rt);
DeviceSampledBlock upload_up_block(const UpDecoderBlock2DW<float>& w, DType dt, Runtime& rt);
DeviceSampledBlock upload_down_block(const DownEncoderBlock2DW<float>& w, DType dt, Runtime& rt);
DeviceVaeDecoder upload_vae_decoder(const VaeDecoderW<float>& w, DType dt, Runtime& rt);
DeviceVaeEncoder upload_vae_encoder(const VaeEncoderW<float>& w, DType dt, Runtime& rt);

// The scratch buffers and settings every VAE module call shares.
// The scratch buffers are stream-ordered: growing one frees the old memory after the work queued
// before it, without a device-wide synchronization.
struct VaeRun {
  VaeRun(Runtime& runtime, const VaeCudaOptions& opts, int norm_groups)
      : rt(runtime), dt(opts.dtype), gemm(opts.gemm), conv(requested_vae_conv(opts.conv)), groups(norm_groups),
        col(0, runtime.stream()), scores(0, runtime.stream()), vt(0, runtime.stream()), q(0, runtime.stream()),
        k(0, runtime.stream()), v(0, runtime.stream()), o(0, runtime.stream()), stats(0, runtime.stream()) {}
  Runtime& rt;
  DType dt;
  GemmOptions gemm;
  VaeConvVersion conv;
  int groups;
  DeviceBuffer col, scores, vt, q, k, v, o, stats;  // q, k, v, o, scores, vt: fp32 (the attention core)
};

// The cuDNN request of one conv of geometry g (kh, kw set) on x [B, H, W, C_in]: Upsample2D's x2
// applied to H and W (the caller upsamples first), the gather's pads as pre / post paddings.
CudnnConvShape cudnn_conv_shape(int64_t cin, int64_t cout, int64_t B, int64_t H, int64_t W, const Im2colGeom& g,
                                bool bias);

// The version conv2d_nhwc runs for one conv of this dtype, channels and geometry (kh, kw set):
// `requested` resolved (requested_vae_conv), then cudnn only where conv_cudnn.h takes the conv and
// cuDNN is available here (else im2col; the reason in `why` when given).
VaeConvVersion resolve_vae_conv(VaeConvVersion requested, DType dt, int64_t cin, int64_t cout, const Im2colGeom& g,
                                std::string* why = nullptr);

// NHWC activations [B, H, W, C] on the device, allocated in stream order. Each function is the twin
// named in the header comment.
DeviceTensor conv2d_nhwc(VaeRun& r, const DeviceConv& w, const DeviceTensor& x, const Im2colGeom& g);
DeviceTensor group_norm_nhwc(VaeRun& r, const DeviceGroupNorm& w, const DeviceTensor& x, bool silu);
DeviceTensor resnet_block_nhwc(VaeRun& r, const DeviceResnet& w, const DeviceTensor& x);
DeviceTensor vae_attention_nhwc(VaeRun& r, const DeviceVaeAttention& w, const DeviceTensor& x);
DeviceTensor mid_block_nhwc(VaeRun& r, const DeviceMidBlock& w, DeviceTensor x);
DeviceTensor up_block_nhwc(VaeRun& r, const DeviceSampledBlock& w, DeviceTensor x);
DeviceTensor down_block_nhwc(VaeRun& r, const DeviceSampledBlock& w, DeviceTensor x);
DeviceTensor vae_decoder_nhwc(VaeRun& r, const DeviceVaeDecoder& w, DeviceTensor z);
DeviceTensor vae_encoder_nhwc(VaeRun& r, const DeviceVaeEncoder& w, DeviceTensor x);

// The gathers of the reference's ConvGeom cases.
Im2colGeom geom_same3x3(int up = 1);
Im2colGeom geom_pointwise();
Im2colGeom geom_downsample();  // F.pad (0, 1, 0, 1) + 3x3 stride 2, padding 0

// Host NCHW <-> device NHWC.
DeviceTensor upload_nchw(const Tensor<float>& x, DType dt, Runtime& rt);
Tensor<float> download_nchw(const DeviceTensor& x, Runtime& rt);

// The host picture of upload_nchw's layout change, for tests and benchmarks that compare NHWC
// device tensors: x [B, C, H, W] -> [B, H, W, C], a copy.
template <class T>
Tensor<T> nchw_to_nhwc(const Tensor<T>& x) {
  ZIMAGE_CHECK(x.ndim() == 4, "nchw_to_nhwc: " + shape_str(x.shape) + " is not [B, C, H, W]");
  const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  Tensor<T> y({B, H, W, C});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t p = 0; p < H * W; ++p) y[(b * H * W + p) * C + c] = x[(b * C + c) * H * W + p];
  return y;
}

class CudaVae {
 public:
  // Loads the part's weights from `src` (checked against the config, load_vae_weights) and
  // uploads them. Refuses float16 before touching the device.
  CudaVae(const VaeConfig& cfg, const ParamSource& src, VaePart part, const VaeCudaOptions& opts);
  ~CudaVae();
  // Ref: vae_decode. z [B, latent_channels, h, w] (unscaled) -> image [B, out_channels, f h, f w].
  Tensor<float> decode(const Tensor<float>& z);
  // Ref: vae_tiled_decode. The tiles as diffusers cuts them, each one decode() on the GPU; the
  // blends, crops and concatenation on the host in fp32 (tiled_decode_with: the reference's own
  // code). Memory: one tile's activations at a time.
  Tensor<float> tiled_decode(const Tensor<float>& z, TileOptions opts = {});
  // Ref: vae_decode_maybe_tiled: tiled_decode when z is larger than a tile in h or w, else decode.
  Tensor<float> decode_maybe_tiled(const Tensor<float>& z, TileOptions opts = {});
  // Ref: vae_encode. x [B, in_channels, H, W] -> (mean, logvar clamped to [-30, 20]).
  std::pair<Tensor<float>, Tensor<float>> encode(const Tensor<float>& x);
  const VaeConfig& config() const { return cfg_; }

 private:
  VaeConfig cfg_;
  VaeCudaOptions opts_;
  std::unique_ptr<Runtime> rt_;
  std::optional<DeviceVaeDecoder> decoder_;
  std::optional<DeviceVaeEncoder> encoder_;
  std::optional<DeviceConv> quant_conv_, post_quant_conv_;
};

// generate()'s GenerateHooks::decode on the GPU (`zimage generate --device cuda`): unscale_latents
// on the host, then CudaVae::decode; the VAE is loaded and uploaded when the hook is called (after
// the denoising loop) and released when it returns.
std::function<Tensor<float>(const VaeModel&, const Tensor<float>&)> cuda_vae_decoder(const VaeCudaOptions& opts);

// The twin of run_vae_module (reference/vae/vae_golden.h) on the GPU: the module at `path` on its
// golden input, NCHW in and out (a Linear's rows as they are). nullopt when the golden has no
// input for it; throws for a path without a CUDA twin (unscale: a host-side step). tiled_decode
// uses the golden's tile options (metadata "tile").
std::optional<Tensor<float>> run_vae_module_cuda(const VaeGolden& g, const std::string& path, const VaeCudaOptions& opts,
                                                 Runtime& rt);

}  // namespace zimage::gpu

// cuDNN's convolution forward for the VAE (the `cudnn` VaeConvVersion of vae_cuda.h), through the
// backend API (cudnn_plan.h): one CONVOLUTION_FORWARD operation, plus a pointwise ADD of the bias
// when there is one, in one fused graph.
// Twin: reference/vae/layers.h conv2d (torch.nn.Conv2d.forward: cross-correlation, zero padding,
//       stride, dilation 1, groups 1), in NHWC.
// Computes y = conv(x, w) + bias with fp32 accumulation (the convolution's compute type) and the
// bias added in fp32 (the pointwise op's math precision) before the one rounding to storage, as
// the im2col version's cuBLASLt epilogue does; the conv result never reaches memory in between
// (a virtual fp32 tensor).
// Shapes: x [B, H, W, C_in] (NHWC), w [C_out, kh, kw, C_in] (vae_cuda.h's permuted layout, which
// is cuDNN's KRSC), bias [C_out] or null, y [B, Ho, Wo, C_out] with Ho = (H + pad_top +
// pad_bottom - kh) / stride + 1 (likewise Wo). Described to cuDNN as NCHW dims with NHWC strides.
// Limits: bfloat16 only (fp32 convolutions would pick TF32 tensor-core engines, and the fp32 path
// keeps TF32 off: it stays on im2col); C_in and C_out multiples of 8 (16-byte rows); equal pads on
// both sides of each axis (Downsample2D's F.pad (0, 1, 0, 1) stays on im2col: cuDNN's engines are
// not known to take unequal pre / post paddings); x, w, y, bias 16-byte aligned. Upsample2D's
// nearest x2 is not a convolution parameter: the caller upsamples first (kernels/upsample.h).
// Plans are built once per shape (the engine heuristics choose the algorithm once) from engines
// without the NONDETERMINISTIC, REDUCED_PRECISION_REDUCTION, WINOGRAD, FFT or DOWN_CONVERT_INPUTS
// numerical notes (deterministic, fp32 accumulation, a direct or implicit-GEMM algorithm), and
// cached for the process; calls are serialized by cudnn_session.h's mutex.
#pragma once
#include <cstdint>
#include <string>

#include "common.h"
#include "cudnn_session.h"

namespace zimage::gpu {

struct CudnnConvShape {
  int64_t B = 1, H = 1, W = 1, cin = 1, cout = 1;
  int kh = 3, kw = 3, stride = 1;
  int pad_top = 1, pad_left = 1, pad_bottom = 1, pad_right = 1;
  bool bias = true;
  int64_t out_h() const { return (H + pad_top + pad_bottom - kh) / stride + 1; }
  int64_t out_w() const { return (W + pad_left + pad_right - kw) / stride + 1; }
  // "B 1, H 128, W 128, C_in 512, C_out 512, 3x3, stride 1, pad 1 1 1 1, bias" (messages).
  std::string text() const;
};

// Whether the request is one this path takes, without touching the GPU or loading cuDNN (so true
// even in a build without cuDNN: ask cudnn_available too): dt BF16, C_in and C_out multiples of 8,
// equal pads on both sides of each axis, positive sizes, an output of at least one pixel. Otherwise false and `why` gets one line naming
// cuDNN and the reason.
bool cudnn_conv_supports(DType dt, const CudnnConvShape& s, std::string* why = nullptr);

// Builds, once per device and shape, the plan cudnn_conv runs, or finds that none can be built (no
// engine config finalizes, or each one carries a numerical note passed over): then false, the
// reason in `why`, and the shape refused for the process (not tried again; any failure of the
// build counts, a transient one too, which costs that shape cuDNN's speed, not correctness). `first` (when given)
// is true when this call built or tried to build. Throws one line when the request is not one
// this path takes (cudnn_conv_supports) or cuDNN is unavailable here. vae_cuda.cpp's conv2d_nhwc
// calls it first and runs a refused shape on im2col instead.
bool cudnn_conv_prepare(DType dt, const CudnnConvShape& s, std::string* why = nullptr, bool* first = nullptr);

// y = conv(x, w) + bias, enqueued on `stream`. Throws zimage::Error with one line naming cuDNN and
// the failing step, e.g. "cuDNN conv: cudnnBackendFinalize(EXECUTION_PLAN) failed:
// CUDNN_STATUS_NOT_SUPPORTED (B 1, H 128, ...)" (a refused shape throws its reason each time); an
// unsupported shape, a misaligned pointer or cuDNN being unavailable throws too.
void cudnn_conv(DType dt, const void* x, const void* w, const void* bias, void* y, const CudnnConvShape& s,
                cudaStream_t stream);

// Execution plans in the process-wide cache (all devices), and convolutions run through cuDNN in
// this process, for tests (which assert that cuDNN, not the im2col fallback, ran).
size_t cudnn_conv_cached_plans();
uint64_t cudnn_conv_calls();
// Shapes whose plan could not be built (cudnn_conv_prepare returned false), all devices.
size_t cudnn_conv_refused_shapes();
// The plan-cache key of one call, e.g. "bfloat16 conv B1 H128 W128 Cin512 Cout512 k3x3 s1 p1,1,1,1 bias". Host only.
std::string cudnn_conv_plan_key(DType dt, const CudnnConvShape& s);

}  // namespace zimage::gpu

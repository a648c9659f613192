#include "conv_cudnn.h"

#include <cstdint>
#include <string>

#ifdef ZIMAGE_WITH_CUDNN
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "cudnn_plan.h"
#endif

namespace zimage::gpu {

namespace {

void validate(DType dt, const void* x, const void* w, const void* bias, const void* y, const CudnnConvShape& s) {
  std::string why;
  if (!cudnn_conv_supports(dt, s, &why)) throw Error(why);
  ZIMAGE_CHECK((bias != nullptr) == s.bias, "cuDNN conv: the shape says " + std::string(s.bias ? "a" : "no") +
                                                " bias but the bias pointer is " + (bias ? "set" : "null") + " (" +
                                                s.text() + ")");
  for (const void* p : {x, w, bias, y})
    ZIMAGE_CHECK(reinterpret_cast<uintptr_t>(p) % 16 == 0, "cuDNN conv: x, w, bias and y must be 16-byte aligned (" +
                                                               s.text() + ")");
}

}  // namespace

std::string CudnnConvShape::text() const {
  return "B " + std::to_string(B) + ", H " + std::to_string(H) + ", W " + std::to_string(W) + ", C_in " +
         std::to_string(cin) + ", C_out " + std::to_string(cout) + ", " + std::to_string(kh) + "x" +
         std::to_string(kw) + ", stride " + std::to_string(stride) + ", pad " + std::to_string(pad_top) + " " +
         std::to_string(pad_left) + " " + std::to_string(pad_bottom) + " " + std::to_string(pad_right) +
         (bias ? ", bias" : ", no bias");
}

bool cudnn_conv_supports(DType dt, const CudnnConvShape& s, std::string* why) {
  if (dt != DType::BF16)
    return refuse(why, std::string("cuDNN conv runs bfloat16 only, not ") + dtype_name(dt) +
                           " (fp32 would take TF32 engines; the fp32 path stays on im2col)");
  if (s.B < 1 || s.H < 1 || s.W < 1 || s.cin < 1 || s.cout < 1 || s.kh < 1 || s.kw < 1 || s.stride < 1 ||
      s.pad_top < 0 || s.pad_left < 0 || s.pad_bottom < 0 || s.pad_right < 0)
    return refuse(why, "cuDNN conv: bad shape (" + s.text() + ")");
  if (s.cin % 8 != 0 || s.cout % 8 != 0)
    return refuse(why, "cuDNN conv needs C_in and C_out that are multiples of 8 (16-byte rows), not C_in " +
                           std::to_string(s.cin) + ", C_out " + std::to_string(s.cout));
  if (s.pad_top != s.pad_bottom || s.pad_left != s.pad_right)
    return refuse(why, "cuDNN conv takes equal pads on both sides of an axis, not top " + std::to_string(s.pad_top) +
                           " / bottom " + std::to_string(s.pad_bottom) + ", left " + std::to_string(s.pad_left) +
                           " / right " + std::to_string(s.pad_right));
  if (s.H + s.pad_top + s.pad_bottom < s.kh || s.W + s.pad_left + s.pad_right < s.kw)
    return refuse(why, "cuDNN conv: the input is smaller than the kernel (" + s.text() + ")");
  return true;
}

std::string cudnn_conv_plan_key(DType dt, const CudnnConvShape& s) {
  return std::string(dtype_name(dt)) + " conv B" + std::to_string(s.B) + " H" + std::to_string(s.H) + " W" +
         std::to_string(s.W) + " Cin" + std::to_string(s.cin) + " Cout" + std::to_string(s.cout) + " k" +
         std::to_string(s.kh) + "x" + std::to_string(s.kw) + " s" + std::to_string(s.stride) + " p" +
         std::to_string(s.pad_top) + "," + std::to_string(s.pad_left) + "," + std::to_string(s.pad_bottom) + "," +
         std::to_string(s.pad_right) + (s.bias ? " bias" : " nobias");
}

#ifndef ZIMAGE_WITH_CUDNN

void cudnn_conv(DType dt, const void* x, const void* w, const void* bias, void* y, const CudnnConvShape& s,
                cudaStream_t) {
  validate(dt, x, w, bias, y, s);
  std::string why;
  cudnn_available(&why);
  throw Error("cuDNN conv: " + why);
}

bool cudnn_conv_prepare(DType dt, const CudnnConvShape& s, std::string*, bool*) {
  std::string why;
  if (!cudnn_conv_supports(dt, s, &why)) throw Error(why);
  cudnn_available(&why);
  throw Error("cuDNN conv: " + why);
}

size_t cudnn_conv_cached_plans() { return 0; }
uint64_t cudnn_conv_calls() { return 0; }
size_t cudnn_conv_refused_shapes() { return 0; }

#else  // ZIMAGE_WITH_CUDNN

namespace {

using cudnn::DescPtr;
using cudnn::TensorSpec;
using cudnn::Where;
#define SET ZIMAGE_CUDNN_SET
#define SET_DESC ZIMAGE_CUDNN_SET_DESC

// Tensor unique ids in the graph and the variant pack.
enum Uid : int64_t { kX = 1, kW = 2, kBias = 3, kY = 4, kConvOut = 5 };

// NCHW dims, NHWC strides: what cuDNN calls a channels-last 4-d tensor.
TensorSpec nhwc(int64_t uid, cudnnDataType_t type, int64_t B, int64_t C, int64_t H, int64_t W) {
  return {uid, type, {B, C, H, W}, {H * W * C, 1, W * C, C}};
}

// Graph: CONVOLUTION_FORWARD of x [B, C_in, H, W] (channels last) with w [C_out, C_in, kh, kw] (KRSC
// strides), fp32 compute, cross-correlation, dilation 1, the pre (top, left) and post (bottom,
// right) paddings; with a bias, its output is a virtual fp32 tensor and a pointwise ADD of the
// bias [1, C_out, 1, 1] (fp32 math) writes y; without one, the convolution writes y.
std::unique_ptr<cudnn::Plan> build_plan(cudnnHandle_t handle, const CudnnConvShape& s) {
  const Where where{"cuDNN conv", s.text()};
  const cudnnDataType_t bf16 = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
  const int64_t Ho = s.out_h(), Wo = s.out_w();
  std::vector<DescPtr> keep;
  auto x = cudnn::make_tensor(nhwc(kX, bf16, s.B, s.cin, s.H, s.W), where);
  auto w = cudnn::make_tensor(nhwc(kW, bf16, s.cout, s.cin, s.kh, s.kw), where);
  auto y = cudnn::make_tensor(nhwc(kY, bf16, s.B, s.cout, Ho, Wo), where);
  DescPtr conv_out;
  if (s.bias) {
    TensorSpec t = nhwc(kConvOut, f32, s.B, s.cout, Ho, Wo);
    t.is_virtual = true;
    conv_out = cudnn::make_tensor(t, where);
  }

  auto conv = std::make_unique<cudnn::Desc>(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, "CONVOLUTION", where);
  const int64_t dims = 2, dilation[2] = {1, 1}, stride[2] = {s.stride, s.stride};
  const int64_t pre[2] = {s.pad_top, s.pad_left}, post[2] = {s.pad_bottom, s.pad_right};
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  SET(*conv, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32);
  SET(*conv, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode);
  SET(*conv, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &dims);
  SET(*conv, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, dilation);
  SET(*conv, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, stride);
  SET(*conv, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, pre);
  SET(*conv, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, post);
  conv->finalize();

  auto op = std::make_unique<cudnn::Desc>(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
                                          "OPERATION_CONVOLUTION_FORWARD", where);
  const float alpha = 1.0f, beta = 0.0f;  // float scalars for a float compute type
  SET_DESC(*op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, *x);
  SET_DESC(*op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, *w);
  SET_DESC(*op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, s.bias ? *conv_out : *y);
  SET_DESC(*op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, *conv);
  SET(*op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha);
  SET(*op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta);
  op->finalize();
  std::vector<const cudnn::Desc*> ops{op.get()};

  DescPtr bias, add, add_op;
  if (s.bias) {
    bias = cudnn::make_tensor({kBias, bf16, {1, s.cout, 1, 1}, {s.cout, 1, s.cout, s.cout}}, where);
    add = std::make_unique<cudnn::Desc>(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, "POINTWISE", where);
    const cudnnPointwiseMode_t pw = CUDNN_POINTWISE_ADD;
    SET(*add, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &pw);
    SET(*add, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &f32);
    add->finalize();
    add_op = std::make_unique<cudnn::Desc>(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, "OPERATION_POINTWISE", where);
    SET_DESC(*add_op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, *add);
    SET_DESC(*add_op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, *conv_out);
    SET_DESC(*add_op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, *bias);
    SET_DESC(*add_op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, *y);
    add_op->finalize();
    ops.push_back(add_op.get());
  }

  DescPtr graph = cudnn::make_graph(handle, ops, where);
  for (auto* d : {&x, &w, &y, &conv_out, &conv, &op, &bias, &add, &add_op})
    if (*d) keep.push_back(std::move(*d));
  return cudnn::build_plan(handle, std::move(graph), std::move(keep), where,
                           {CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC, CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION,
                            CUDNN_NUMERICAL_NOTE_WINOGRAD, CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_4x4,
                            CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_6x6, CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_13x13,
                            CUDNN_NUMERICAL_NOTE_FFT, CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS});
}

#undef SET
#undef SET_DESC

// The convolution plans of every device; used with the session's mutex held.
cudnn::PlanCache& plans() {
  static auto* c = new cudnn::PlanCache;
  return *c;
}
uint64_t calls = 0;  // with the session's mutex held

// The plan of (current device, shape), or nullptr with the reason (`st.mu` held).
const cudnn::Plan* plan_locked(cudnn::Session& st, DType dt, const CudnnConvShape& s, int* dev, std::string* why,
                               bool* first) {
  std::string unavailable;
  if (!cudnn::available_locked(st, dev, &unavailable)) throw Error("cuDNN conv: " + unavailable);
  const cudnnHandle_t handle = st.handles.at(*dev);
  return plans().try_get(*dev, cudnn_conv_plan_key(dt, s), [&] { return build_plan(handle, s); }, why, first);
}

}  // namespace

bool cudnn_conv_prepare(DType dt, const CudnnConvShape& s, std::string* why, bool* first) {
  std::string unsupported;
  if (!cudnn_conv_supports(dt, s, &unsupported)) throw Error(unsupported);
  cudnn::Session& st = cudnn::session();
  std::lock_guard<std::mutex> lock(st.mu);
  int dev = 0;
  return plan_locked(st, dt, s, &dev, why, first) != nullptr;
}

void cudnn_conv(DType dt, const void* x, const void* w, const void* bias, void* y, const CudnnConvShape& s,
                cudaStream_t stream) {
  validate(dt, x, w, bias, y, s);
  cudnn::Session& st = cudnn::session();
  std::lock_guard<std::mutex> lock(st.mu);
  int dev = 0;
  std::string why;
  const cudnn::Plan* plan = plan_locked(st, dt, s, &dev, &why, nullptr);
  if (!plan) throw Error(why);
  std::vector<int64_t> uids{kX, kW, kY};
  std::vector<void*> ptrs{const_cast<void*>(x), const_cast<void*>(w), y};
  if (s.bias) uids.push_back(kBias), ptrs.push_back(const_cast<void*>(bias));
  cudnn::execute(st, dev, *plan, uids, ptrs, stream, {"cuDNN conv", s.text()});
  ++calls;
}

size_t cudnn_conv_cached_plans() {
  cudnn::Session& st = cudnn::session();
  std::lock_guard<std::mutex> lock(st.mu);
  return plans().size();
}

size_t cudnn_conv_refused_shapes() {
  cudnn::Session& st = cudnn::session();
  std::lock_guard<std::mutex> lock(st.mu);
  return plans().refused();
}

uint64_t cudnn_conv_calls() {
  cudnn::Session& st = cudnn::session();
  std::lock_guard<std::mutex> lock(st.mu);
  return calls;
}

#endif  // ZIMAGE_WITH_CUDNN

}  // namespace zimage::gpu

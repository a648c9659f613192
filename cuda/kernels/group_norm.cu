#include "kernels/device_common.cuh"
#include "kernels/group_norm.h"

namespace zimage::gpu {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kPixelsPerChunk = 256;

// partial[(bg) * chunks + chunk] = sum over the chunk's pixels and the group's channels of
// x (mean == nullptr) or (x - mean[bg])^2, in fp32, block-reduced.
template <class T>
__global__ void __launch_bounds__(kThreads)
    gn_partial(const T* __restrict__ x, int64_t P, int64_t C, int64_t G, int64_t chunks,
               const double* __restrict__ mean, double* __restrict__ partial) {
  const int64_t bg = blockIdx.y, b = bg / G, g = bg % G, chunk = blockIdx.x, Cg = C / G;
  const int64_t p0 = chunk * kPixelsPerChunk, p1 = min(P, p0 + kPixelsPerChunk), n = (p1 - p0) * Cg;
  const float mu = mean ? float(mean[bg]) : 0.f;
  float s = 0.f;
  for (int64_t e = threadIdx.x; e < n; e += kThreads) {
    const int64_t p = p0 + e / Cg, c = g * Cg + e % Cg;
    const float v = to_f32(x[(b * P + p) * C + c]);
    s += mean ? (v - mu) * (v - mu) : v;
  }
  s = block_sum(s);
  if (threadIdx.x == 0) partial[bg * chunks + chunk] = double(s);
}

// stat[bg] = (sum of the chunk sums in order) / count; for the variance pass: 1 / sqrt(var + eps).
__global__ void gn_finalize(const double* __restrict__ partial, int64_t chunks, int64_t BG, double count, double eps,
                            bool rstd, double* __restrict__ stat) {
  const int64_t bg = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (bg >= BG) return;
  double s = 0;
  for (int64_t i = 0; i < chunks; ++i) s += partial[bg * chunks + i];
  s /= count;
  stat[bg] = rstd ? 1.0 / sqrt(s + eps) : s;
}

template <class T>
__global__ void gn_apply(const T* __restrict__ x, T* __restrict__ y, int64_t P, int64_t C, int64_t G,
                         const double* __restrict__ mean, const double* __restrict__ rstd, const T* __restrict__ w,
                         const T* __restrict__ bias, bool silu, int64_t n) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = e % C, b = e / (P * C), bg = b * G + c / (C / G);
    float v = (to_f32(x[e]) - float(mean[bg])) * float(rstd[bg]) * to_f32(w[c]) + to_f32(bias[c]);
    if (silu) v = v / (1.0f + expf(-v));
    y[e] = from_f32<T>(v);
  }
}

}  // namespace

void group_norm_nhwc(DType dt, const void* x, void* y, GroupNormShape shape, const void* weight, const void* bias,
                     double eps, bool silu, DeviceBuffer& scratch, cudaStream_t stream) {
  const int64_t B = shape.B, P = shape.P, C = shape.C, G = shape.G;
  ZIMAGE_CHECK(G > 0 && C % G == 0 && weight && bias, "group_norm_nhwc: " + std::to_string(G) +
                                                          " groups do not divide " + std::to_string(C) + " channels");
  if (B == 0 || P == 0) return;
  const int64_t chunks = (P + kPixelsPerChunk - 1) / kPixelsPerChunk, BG = B * G;
  ZIMAGE_CHECK(BG <= 65535 && chunks <= 0x7fffffff, "group_norm_nhwc: too many groups or pixels");
  scratch.reserve(size_t(BG * chunks + 2 * BG) * sizeof(double));
  double* partial = scratch.as<double>();
  double* mean = partial + BG * chunks;
  double* rstd = mean + BG;
  const double count = double(P) * double(C / G);
  const dim3 grid{unsigned(chunks), unsigned(BG), 1u};
  const unsigned fin = unsigned((BG + 127) / 128);
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    const T* xt = static_cast<const T*>(x);
    gn_partial<T><<<grid, kThreads, 0, stream>>>(xt, P, C, G, chunks, nullptr, partial);
    gn_finalize<<<fin, 128, 0, stream>>>(partial, chunks, BG, count, eps, false, mean);
    gn_partial<T><<<grid, kThreads, 0, stream>>>(xt, P, C, G, chunks, mean, partial);
    gn_finalize<<<fin, 128, 0, stream>>>(partial, chunks, BG, count, eps, true, rstd);
    gn_apply<T><<<grid_for(B * P * C, 256), 256, 0, stream>>>(xt, static_cast<T*>(y), P, C, G, mean, rstd,
                                                              static_cast<const T*>(weight),
                                                              static_cast<const T*>(bias), silu, B * P * C);
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("group_norm_nhwc");
}

}  // namespace zimage::gpu

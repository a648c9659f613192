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
  const int64_t bg = blockIdx.y, b = bg / G, g = bg % G, chunk = blockIdx.x;
  const int64_t p0 = chunk * kPixelsPerChunk, p1 = min(P, p0 + kPixelsPerChunk);
  // 32-bit within the chunk (the host checks kPixelsPerChunk x C/G < 2^31): one 32-bit division per
  // element instead of two 64-bit ones; the sums are the same.
  const int Cg = int(C / G), n = int(p1 - p0) * Cg;
  const T* xc = x + (b * P + p0) * C + g * Cg;  // the chunk's first pixel, the group's first channel
  const float mu = mean ? float(mean[bg]) : 0.f;
  float s = 0.f;
  for (int e = threadIdx.x; e < n; e += kThreads) {
    const int dp = e / Cg, dc = e - dp * Cg;
    const float v = to_f32(xc[int64_t(dp) * C + dc]);
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

// I: the index type, uint32_t when every index (and a grid-stride step past the last) fits, else
// int64_t; the arithmetic on the values is the same in both.
template <class T, class I>
__global__ void gn_apply(const T* __restrict__ x, T* __restrict__ y, I P, I C, I G, const double* __restrict__ mean,
                         const double* __restrict__ rstd, const T* __restrict__ w, const T* __restrict__ bias,
                         bool silu, I n) {
  const I PC = P * C, Cg = C / G;
  for (I e = I(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += I(gridDim.x) * blockDim.x) {
    const I c = e % C, b = e / PC, bg = b * G + c / Cg;
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
  ZIMAGE_CHECK(BG <= 65535 && chunks <= 0x7fffffff && kPixelsPerChunk * (C / G) <= 0x7fffffff,
               "group_norm_nhwc: too many groups, pixels or channels");
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
    const int64_t n = B * P * C;
    const unsigned blocks = grid_for(n, 256);
    T* yt = static_cast<T*>(y);
    const T *wt = static_cast<const T*>(weight), *bt = static_cast<const T*>(bias);
    if (n + int64_t(blocks) * 256 <= int64_t(UINT32_MAX))
      gn_apply<T, uint32_t><<<blocks, 256, 0, stream>>>(xt, yt, uint32_t(P), uint32_t(C), uint32_t(G), mean, rstd, wt,
                                                        bt, silu, uint32_t(n));
    else
      gn_apply<T, int64_t><<<blocks, 256, 0, stream>>>(xt, yt, P, C, G, mean, rstd, wt, bt, silu, n);
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("group_norm_nhwc");
}

}  // namespace zimage::gpu

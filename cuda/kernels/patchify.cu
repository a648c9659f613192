#include "kernels/device_common.cuh"
#include "kernels/patchify.h"

namespace zimage::gpu {
namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void patchify_v1(const T* __restrict__ image, int64_t C, int64_t F, int64_t H, int64_t W, int p, int pf,
                            int64_t total_rows, T* __restrict__ tokens) {
  const int64_t Ft = F / pf, Ht = H / p, Wt = W / p, n_tok = Ft * Ht * Wt, P = int64_t(pf) * p * p * C;
  const int64_t total = total_rows * P;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / P, col = i % P;
    const int64_t src = row < n_tok ? row : n_tok - 1;  // pad rows repeat the last token
    const int64_t f = src / (Ht * Wt), hh = (src / Wt) % Ht, w = src % Wt;
    const int64_t c = col % C, d = (col / C) % p, bb = (col / (C * p)) % p, a = col / (C * p * p);
    tokens[i] = image[((c * F + f * pf + a) * H + hh * p + bb) * W + w * p + d];
  }
}

template <class T>
__global__ void fill_rows_v1(T* __restrict__ x, int64_t ldx, int64_t row_begin, int64_t rows, const T* __restrict__ token,
                             int64_t C) {
  const int64_t total = rows * C;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    x[(row_begin + i / C) * ldx + i % C] = token[i % C];
}

template <class T>
__global__ void unpatchify_v1(const T* __restrict__ x, int64_t C, int64_t F, int64_t H, int64_t W, int p, int pf,
                              float* __restrict__ image) {
  const int64_t Ht = H / p, Wt = W / p, P = int64_t(pf) * p * p * C;
  const int64_t total = C * F * H * W;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t wi = i % W, hi = (i / W) % H, fi = (i / (W * H)) % F, c = i / (W * H * F);
    const int64_t f = fi / pf, a = fi % pf, hh = hi / p, bb = hi % p, w = wi / p, d = wi % p;
    const int64_t row = (f * Ht + hh) * Wt + w, col = ((a * p + bb) * p + d) * C + c;
    image[i] = to_f32(x[row * P + col]);
  }
}

}  // namespace

void patchify_image(DType dt, const void* image, int64_t C, int64_t F, int64_t H, int64_t W, int p, int pf,
                    int64_t total_rows, void* tokens, cudaStream_t stream) {
  const int64_t n_tok = (F / pf) * (H / p) * (W / p);
  ZIMAGE_CHECK(n_tok > 0 && total_rows >= n_tok && F % pf == 0 && H % p == 0 && W % p == 0,
               "patchify_image: bad shape");
  const int64_t total = total_rows * pf * p * p * C;
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    patchify_v1<T><<<grid_for(total, kThreads), kThreads, 0, stream>>>(static_cast<const T*>(image), C, F, H, W, p, pf,
                                                                        total_rows, static_cast<T*>(tokens));
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("patchify_v1");
}

void fill_rows(DevRows xv, int64_t row_begin, int64_t row_end, const void* token, int64_t C, cudaStream_t stream) {
  const DType dt = xv.dt;
  void* x = xv.data;
  const int64_t ldx = xv.ld;
  if (row_end <= row_begin) return;
  const int64_t rows = row_end - row_begin;
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    fill_rows_v1<T><<<grid_for(rows * C, kThreads), kThreads, 0, stream>>>(static_cast<T*>(x), ldx, row_begin, rows,
                                                                            static_cast<const T*>(token), C);
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("fill_rows_v1");
}

void unpatchify(DType dt, const void* x, int64_t C, int64_t F, int64_t H, int64_t W, int p, int pf, float* image,
                cudaStream_t stream) {
  ZIMAGE_CHECK(F % pf == 0 && H % p == 0 && W % p == 0 && C * F * H * W > 0, "unpatchify: bad shape");
  const int64_t total = C * F * H * W;
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    unpatchify_v1<T><<<grid_for(total, kThreads), kThreads, 0, stream>>>(static_cast<const T*>(x), C, F, H, W, p, pf,
                                                                          image);
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("unpatchify_v1");
}

}  // namespace zimage::gpu

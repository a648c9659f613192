#include <cmath>

#include "kernels/device_common.cuh"
#include "kernels/timestep_embedding.h"

namespace zimage::gpu {
namespace {

template <class T>
__global__ void timestep_embedding_v1(const float* __restrict__ t, int64_t B, int dim, float neg_log, T* __restrict__ emb) {
  const int half = dim / 2;
  const int64_t total = B * half;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = i / half;
    const int kk = int(i % half);
    const float freq = expf(neg_log * float(kk) / float(half));
    const float arg = t[b] * freq;
    emb[b * dim + kk] = from_f32<T>(cosf(arg));
    emb[b * dim + half + kk] = from_f32<T>(sinf(arg));
    if ((dim & 1) && kk == 0) emb[b * dim + dim - 1] = from_f32<T>(0.f);
  }
}

}  // namespace

void timestep_embedding(DType dt, const float* t, int64_t B, int64_t dim, double max_period, void* emb,
                        cudaStream_t stream) {
  if (B == 0) return;
  ZIMAGE_CHECK(dim >= 2, "timestep_embedding: dim must be at least 2");
  const float neg_log = -float(std::log(max_period));  // the twin's fp32 constant, computed the same way
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    timestep_embedding_v1<T><<<grid_for(B * (dim / 2), 256), 256, 0, stream>>>(t, B, int(dim), neg_log,
                                                                                 static_cast<T*>(emb));
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("timestep_embedding_v1");
}

}  // namespace zimage::gpu

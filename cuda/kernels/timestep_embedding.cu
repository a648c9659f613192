#include <cmath>

#include "kernels/device_common.cuh"
#include "kernels/timestep_embedding.h"
#include "dit/timestep_frequencies.h"

namespace zimage::gpu {
namespace {

// The twin's fp32 frequency table, passed by value (kernel parameters are constant memory).
struct FreqTable {
  float f[kTimestepMaxHalf];
};

template <class T>
__global__ void timestep_embedding_v2(const float* __restrict__ t, int64_t B, int dim, const FreqTable freqs,
                                      T* __restrict__ emb) {
  const int half = dim / 2;
  const int64_t total = B * half;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = i / half;
    const int kk = int(i % half);
    const float arg = t[b] * freqs.f[kk];  // bit-identical to the reference's fp32 argument
    emb[b * dim + kk] = from_f32<T>(cosf(arg));
    emb[b * dim + half + kk] = from_f32<T>(sinf(arg));
    if ((dim & 1) && kk == 0) emb[b * dim + dim - 1] = from_f32<T>(0.f);
  }
}

}  // namespace

void timestep_embedding(DType dt, const float* t, int64_t B, int64_t dim, double max_period, void* emb,
                        cudaStream_t stream) {
  if (B == 0) return;
  ZIMAGE_CHECK(dim >= 2 && dim / 2 <= kTimestepMaxHalf,
               "timestep_embedding: dim " + std::to_string(dim) + " is outside 2.." + std::to_string(2 * kTimestepMaxHalf + 1));
  FreqTable table{};
  const std::vector<float> f = timestep_frequencies(int(dim), max_period);  // the twin's own table, on the host
  for (size_t k = 0; k < f.size(); ++k) table.f[k] = f[k];
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    timestep_embedding_v2<T><<<grid_for(B * (dim / 2), 256), 256, 0, stream>>>(t, B, int(dim), table,
                                                                                 static_cast<T*>(emb));
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("timestep_embedding_v2");
}

}  // namespace zimage::gpu

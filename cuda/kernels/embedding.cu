#include "kernels/device_common.cuh"
#include "kernels/embedding.h"

namespace zimage::gpu {
namespace {

template <class T>
__global__ void embedding_gather_v1(const int32_t* __restrict__ ids, const T* __restrict__ table, int64_t C,
                                    T* __restrict__ out) {
  const int64_t n = blockIdx.x;
  const T* row = table + int64_t(ids[n]) * C;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) out[n * C + c] = row[c];
}

}  // namespace

void embedding_gather(DType dt, const int32_t* ids, int64_t N, const void* table, int64_t C, void* out,
                      cudaStream_t stream) {
  if (N == 0) return;
  ZIMAGE_CHECK(N <= 0x7fffffff && C > 0, "embedding_gather: bad shape");
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    embedding_gather_v1<T><<<unsigned(N), 256, 0, stream>>>(ids, static_cast<const T*>(table), C, static_cast<T*>(out));
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("embedding_gather_v1");
}

}  // namespace zimage::gpu

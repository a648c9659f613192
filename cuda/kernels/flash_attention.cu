#include <cmath>

#include "kernels/device_common.cuh"
#include "kernels/flash_attention.h"

namespace zimage::gpu {
namespace {

constexpr int kRows = 32;  // query rows per block
constexpr int kTpr = 4;    // threads per query row
constexpr int kKeys = 32;  // keys per tile
constexpr int kThreads = kRows * kTpr;

template <class T, int D>
__global__ void __launch_bounds__(kThreads)
    flash_attention_v1(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, int64_t ld,
                       const int32_t* __restrict__ mask, T* __restrict__ out, int64_t ldo, int L, int H,
                       float scale) {
  constexpr int kDpt = D / kTpr;  // dims per thread: d = sub + kTpr * i
  __shared__ float ks[kKeys][D];
  __shared__ float vs[kKeys][D];
  __shared__ float sc[kRows][kKeys + 1];
  const int b = blockIdx.z, h = blockIdx.y;
  const int row = threadIdx.x / kTpr, sub = threadIdx.x % kTpr;
  const int qi = blockIdx.x * kRows + row;
  const bool active = qi < L;
  const int64_t tok0 = int64_t(b) * L;  // first token of batch item b
  const int64_t hoff = int64_t(h) * D;

  float qr[kDpt], acc[kDpt];
#pragma unroll
  for (int i = 0; i < kDpt; ++i) {
    qr[i] = active ? to_f32(q[(tok0 + qi) * ld + hoff + sub + kTpr * i]) : 0.f;
    acc[i] = 0.f;
  }
  const int32_t* mrow = mask ? mask + tok0 : nullptr;
  float m = -INFINITY, l = 0.f;

  for (int j0 = 0; j0 < L; j0 += kKeys) {
    for (int idx = threadIdx.x; idx < kKeys * D; idx += kThreads) {
      const int j = idx / D, d = idx % D, key = j0 + j;
      float kv = 0.f, vv = 0.f;
      if (key < L) {
        const int64_t off = (tok0 + key) * ld + hoff + d;
        kv = to_f32(k[off]);
        vv = to_f32(v[off]);
      }
      ks[j][d] = kv;
      vs[j][d] = vv;
    }
    __syncthreads();

    // Scores of this tile; the 4 threads of a row end with the same value (xor-shuffle sums are
    // commutative bit for bit). Every thread of the warp runs the shuffles (inactive rows too).
    float tile_max = -INFINITY;
    for (int j = 0; j < kKeys; ++j) {
      float part = 0.f;
#pragma unroll
      for (int i = 0; i < kDpt; ++i) part += qr[i] * ks[j][sub + kTpr * i];
      part += __shfl_xor_sync(0xffffffffu, part, 1);
      part += __shfl_xor_sync(0xffffffffu, part, 2);
      const int key = j0 + j;
      const bool valid = key < L && (mrow == nullptr || mrow[key] != 0);
      const float s = valid ? part * scale : -INFINITY;
      tile_max = fmaxf(tile_max, s);
      if (sub == 0) sc[row][j] = s;
    }
    __syncwarp();  // sc[row][*] is written by sub 0 and read by subs 1..3 of the same warp

    const float m_new = fmaxf(m, tile_max);
    if (m_new != -INFINITY) {  // otherwise no valid key so far: nothing to add
      const float alpha = m == -INFINITY ? 0.f : expf(m - m_new);
      l *= alpha;
#pragma unroll
      for (int i = 0; i < kDpt; ++i) acc[i] *= alpha;
      for (int j = 0; j < kKeys; ++j) {
        const float s = sc[row][j];
        const float p = s == -INFINITY ? 0.f : expf(s - m_new);
        l += p;
#pragma unroll
        for (int i = 0; i < kDpt; ++i) acc[i] += p * vs[j][sub + kTpr * i];
      }
      m = m_new;
    }
    __syncthreads();  // every thread is done with ks, vs and sc before the next tile overwrites them
  }

  if (active) {
    const float inv = l > 0.f ? 1.0f / l : NAN;
#pragma unroll
    for (int i = 0; i < kDpt; ++i) out[(tok0 + qi) * ldo + hoff + sub + kTpr * i] = from_f32<T>(acc[i] * inv);
  }
}

template <class T, int D>
void launch_v1(const void* q, const void* k, const void* v, int64_t ld, const int32_t* mask, void* out, int64_t ldo,
               int64_t B, int64_t L, int64_t H, cudaStream_t stream) {
  const dim3 grid(unsigned((L + kRows - 1) / kRows), unsigned(H), unsigned(B));
  flash_attention_v1<T, D><<<grid, kThreads, 0, stream>>>(static_cast<const T*>(q), static_cast<const T*>(k),
                                                          static_cast<const T*>(v), ld, mask, static_cast<T*>(out),
                                                          ldo, int(L), int(H), 1.0f / sqrtf(float(D)));
}

}  // namespace

const char* attention_version_name(AttentionVersion v) {
  switch (v) {
    case AttentionVersion::v1_simt: return "v1_simt";
  }
  return "?";
}

void flash_attention(DType dt, const void* q, const void* k, const void* v, int64_t ld, const int32_t* mask, void* out,
                     int64_t ldo, int64_t B, int64_t L, int64_t H, int64_t D, cudaStream_t stream,
                     AttentionVersion version) {
  if (B == 0 || L == 0) return;
  ZIMAGE_CHECK(version == AttentionVersion::v1_simt, "flash_attention: unknown kernel version");
  ZIMAGE_CHECK(D == 32 || D == 128, "flash_attention: head_dim " + std::to_string(D) +
                                        " is not built (v1_simt has head_dim 32 and 128)");
  ZIMAGE_CHECK(ld >= H * D && ldo >= H * D && L < 0x7fffffff && H <= 65535 && B <= 65535,
               "flash_attention: bad shape");
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    if (D == 128)
      launch_v1<T, 128>(q, k, v, ld, mask, out, ldo, B, L, H, stream);
    else
      launch_v1<T, 32>(q, k, v, ld, mask, out, ldo, B, L, H, stream);
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("flash_attention_v1");
}

}  // namespace zimage::gpu

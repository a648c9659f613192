#include "kernels/device_common.cuh"
#include "kernels/im2col.h"
#include "kernels/im2col_map.h"

namespace zimage::gpu {
namespace {

template <class T>
__global__ void im2col_nhwc_v1(const T* __restrict__ x, int64_t H, int64_t W, int64_t C, Im2colGeom g, int64_t Ho,
                               int64_t Wo, int64_t q0, int64_t P, T* __restrict__ out) {
  const int64_t K = int64_t(g.kh) * g.kw * C, n = P * K;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = e / K, k = e % K;
    const int64_t c = k % C, tap = k / C, dy = tap / g.kw, dx = tap % g.kw;
    const int64_t q = q0 + p, ox = q % Wo, oy = (q / Wo) % Ho, b = q / (Wo * Ho);
    const int64_t iy = oy * g.stride + dy - g.pad_top, ix = ox * g.stride + dx - g.pad_left;
    T v = from_f32<T>(0.f);
    if (iy >= 0 && iy < H * g.up && ix >= 0 && ix < W * g.up)
      v = x[((b * H + iy / g.up) * W + ix / g.up) * C + c];
    out[e] = v;
  }
}

// One thread per 16-byte vector of E channels (the map: kernels/im2col_map.h). A plain copy of the
// bits, so one kernel serves every dtype; a zero vector is +0 in each.
__global__ void im2col_nhwc_v2(const uint4* __restrict__ x, Im2colVecMap m, uint32_t nv, uint4* __restrict__ out) {
  for (uint32_t v = blockIdx.x * blockDim.x + threadIdx.x; v < nv; v += gridDim.x * blockDim.x) {
    const int64_t src = m.source(v);
    out[v] = src >= 0 ? x[src] : make_uint4(0u, 0u, 0u, 0u);
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace

std::optional<Im2colVecMap> im2col_vec_map(int64_t B, int64_t H, int64_t W, int64_t C, int64_t vec, const Im2colGeom& g,
                                           int64_t q0, int64_t P) {
  // The vector count stays below 2^31, so that the grid-stride loop's v + stride never wraps.
  constexpr int64_t kMax = int64_t(UINT32_MAX), kMaxVectors = int64_t(INT32_MAX);
  const int64_t Ho = g.out_h(H), Wo = g.out_w(W), Cv = vec > 0 ? C / vec : 0;
  const int64_t taps_cv = int64_t(g.kh) * g.kw * Cv;
  if (vec <= 0 || C % vec != 0 || Cv == 0 || Ho <= 0 || Wo <= 0 || B <= 0) return std::nullopt;
  if (P * taps_cv > kMaxVectors || B * Ho * Wo > kMax || q0 + P > B * Ho * Wo) return std::nullopt;
  if ((Ho - 1) * g.stride + g.kh > kMax || (Wo - 1) * g.stride + g.kw > kMax || H * g.up > kMax || W * g.up > kMax)
    return std::nullopt;
  Im2colVecMap m;
  m.H = uint32_t(H), m.W = uint32_t(W), m.Cv = uint32_t(Cv);
  m.kw = uint32_t(g.kw), m.taps_cv = uint32_t(taps_cv);
  m.Wo = uint32_t(Wo), m.HoWo = uint32_t(Ho * Wo);
  m.stride = uint32_t(g.stride), m.up = uint32_t(g.up);
  m.pad_top = uint32_t(g.pad_top), m.pad_left = uint32_t(g.pad_left);
  m.Hup = uint32_t(H * g.up), m.Wup = uint32_t(W * g.up);
  m.q0 = uint32_t(q0);
  return m;
}

namespace {

// v2's map for this call, or nullopt when v1 runs it: float16 (v1's dispatch refuses it), a pointer
// not 16-byte aligned, C not whole 16-byte vectors or a size past 32-bit indices (im2col_vec_map).
std::optional<Im2colVecMap> v2_map(DType dt, int64_t B, int64_t H, int64_t W, int64_t C, const Im2colGeom& g,
                                   int64_t q0, int64_t P, const void* x, const void* out) {
  if (dt == DType::F16 || !aligned16(x) || !aligned16(out)) return std::nullopt;
  return im2col_vec_map(B, H, W, C, 16 / int64_t(dtype_size(dt)), g, q0, P);
}

}  // namespace

int im2col_nhwc_v2_elems(DType dt, int64_t B, int64_t H, int64_t W, int64_t C, const Im2colGeom& g, int64_t q0,
                         int64_t P, const void* x, const void* out) {
  return v2_map(dt, B, H, W, C, g, q0, P, x, out) ? 16 / int(dtype_size(dt)) : 0;
}

void im2col_nhwc(DType dt, const void* x, int64_t B, int64_t H, int64_t W, int64_t C, const Im2colGeom& g, int64_t q0,
                 int64_t P, void* out, cudaStream_t stream) {
  const int64_t Ho = g.out_h(H), Wo = g.out_w(W);
  ZIMAGE_CHECK(Ho > 0 && Wo > 0 && q0 >= 0 && P >= 0 && q0 + P <= B * Ho * Wo && g.up >= 1 && g.stride >= 1,
               "im2col_nhwc: bad geometry");
  if (P == 0) return;
  if (const std::optional<Im2colVecMap> m = v2_map(dt, B, H, W, C, g, q0, P, x, out)) {
    const int64_t nv = P * int64_t(m->taps_cv);  // below 2^31 (im2col_vec_map)
    im2col_nhwc_v2<<<grid_for(nv, 256), 256, 0, stream>>>(static_cast<const uint4*>(x), *m, uint32_t(nv),
                                                          static_cast<uint4*>(out));
    ZIMAGE_CUDA_CHECK_LAUNCH("im2col_nhwc_v2");
    return;
  }
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    im2col_nhwc_v1<T><<<grid_for(P * g.kh * g.kw * C, 256), 256, 0, stream>>>(static_cast<const T*>(x), H, W, C, g, Ho,
                                                                             Wo, q0, P, static_cast<T*>(out));
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("im2col_nhwc_v1");
}

}  // namespace zimage::gpu

// The packed GEMM of core/gemm.h. Loop nest (BLIS): for each NC-column block
// of C, for each KC block of K, pack B[kc, nc] into NR-column panels; for each
// MC-row block, pack A[mc, kc] into MR-row panels; then every MR x NR tile of C
// is one call of the micro-kernel, which keeps that tile in registers.
//
// Sizes for this build's vectors (W lanes; MR x NR accumulators = MR * 2
// vector registers, with 2 more for B and 1 for the broadcast A value):
//   AVX-512: W = 16 floats / 8 doubles, MR = 14, NR = 2 W (28 + 3 of 32 zmm)
//   AVX2:    W = 8 floats / 4 doubles,  MR = 6,  NR = 2 W (12 + 3 of 16 ymm)
// KC = 256 keeps one B panel (KC x NR) in L1 and MC = 12 MR rows of packed A
// plus the packed B block in L2. Builds without FMA vectors use Eigen.
#include "core/gemm.h"

#include <Eigen/Core>
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>
#include <omp.h>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#define ZIMAGE_GEMM_VECTOR 1
#endif

namespace zimage {

#ifdef ZIMAGE_GEMM_VECTOR
namespace {

#if defined(__AVX512F__)
constexpr int64_t kMr = 14;
template <class T>
struct Vec;
template <>
struct Vec<float> {
  using V = __m512;
  static constexpr int64_t W = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
};
template <>
struct Vec<double> {
  using V = __m512d;
  static constexpr int64_t W = 8;
  static V zero() { return _mm512_setzero_pd(); }
  static V load(const double* p) { return _mm512_loadu_pd(p); }
  static V set1(double x) { return _mm512_set1_pd(x); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  static void store(double* p, V v) { _mm512_storeu_pd(p, v); }
};
const char* const kKernelName = "avx512";
#else
constexpr int64_t kMr = 6;
template <class T>
struct Vec;
template <>
struct Vec<float> {
  using V = __m256;
  static constexpr int64_t W = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
};
template <>
struct Vec<double> {
  using V = __m256d;
  static constexpr int64_t W = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V load(const double* p) { return _mm256_loadu_pd(p); }
  static V set1(double x) { return _mm256_set1_pd(x); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
  static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
};
const char* const kKernelName = "avx2";
#endif

template <class T>
constexpr int64_t kNr = 2 * Vec<T>::W;
constexpr int64_t kMc = 12 * kMr;
// Columns per B block: 512 floats / 256 doubles (the packed block is KC x NC,
// 512 KB either way).
template <class T>
constexpr int64_t kNc = 2048 / int64_t(sizeof(T));

// C tile (rows x cols <= MR x NR) = or += Ap Bp over kc. Ap: kc steps of MR
// values; Bp: kc steps of NR values. Partial tiles go through a local buffer.
template <class T>
void micro_kernel(int64_t kc, const T* __restrict ap, const T* __restrict bp, T* c, int64_t ldc, int64_t rows,
                  int64_t cols, bool accumulate) {
  using X = Vec<T>;
  constexpr int64_t W = X::W, NR = kNr<T>;
  typename X::V acc[kMr][2];
#pragma GCC unroll 14
  for (int64_t r = 0; r < kMr; ++r) acc[r][0] = acc[r][1] = X::zero();
  if (accumulate)  // C's tile was last touched a whole K block ago: fetch it while the FMAs run
    for (int64_t r = 0; r < rows; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + NR - 1), _MM_HINT_T0);
    }
  for (int64_t p = 0; p < kc; ++p) {
    const typename X::V b0 = X::load(bp), b1 = X::load(bp + W);
#pragma GCC unroll 14
    for (int64_t r = 0; r < kMr; ++r) {
      const typename X::V a = X::set1(ap[r]);
      acc[r][0] = X::fmadd(a, b0, acc[r][0]);
      acc[r][1] = X::fmadd(a, b1, acc[r][1]);
    }
    ap += kMr;
    bp += NR;
  }
  if (rows == kMr && cols == NR) {
#pragma GCC unroll 14
    for (int64_t r = 0; r < kMr; ++r) {
      T* cr = c + r * ldc;
      if (accumulate) {
        X::store(cr, X::add(X::load(cr), acc[r][0]));
        X::store(cr + W, X::add(X::load(cr + W), acc[r][1]));
      } else {
        X::store(cr, acc[r][0]);
        X::store(cr + W, acc[r][1]);
      }
    }
    return;
  }
  alignas(64) T tile[kMr * NR];
  for (int64_t r = 0; r < kMr; ++r) {
    X::store(tile + r * NR, acc[r][0]);
    X::store(tile + r * NR + W, acc[r][1]);
  }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) c[r * ldc + j] = accumulate ? c[r * ldc + j] + tile[r * NR + j] : tile[r * NR + j];
}

#if defined(__AVX512F__)
// r[0..15] = rows of a 16 x 16 float block -> r[0..15] = its columns.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 16; i += 8)
    for (int j = 0; j < 4; ++j) {
      t[i + j] = _mm512_shuffle_f32x4(r[i + j], r[i + j + 4], 0x88);
      t[i + j + 4] = _mm512_shuffle_f32x4(r[i + j], r[i + j + 4], 0xDD);
    }
  for (int j = 0; j < 8; ++j) {
    r[j] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0x88);
    r[j + 8] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0xDD);
  }
}

// dst[p * dst_stride + r] = src[r * src_stride + p] for r < rows <= 16 and
// p < kc: `rows` source rows contiguous along p become columns of dst. Returns
// how many p were done (a multiple of 16); the caller finishes the rest.
inline int64_t transpose_rows(const float* src, int64_t src_stride, int64_t rows, int64_t kc, float* dst,
                              int64_t dst_stride) {
  const __mmask16 keep = __mmask16((1u << rows) - 1);
  int64_t p = 0;
  for (; p + 16 <= kc; p += 16) {
    __m512 r[16];
    for (int64_t i = 0; i < 16; ++i) r[i] = i < rows ? _mm512_loadu_ps(src + i * src_stride + p) : _mm512_setzero_ps();
    transpose16(r);
    for (int64_t i = 0; i < 16; ++i) _mm512_mask_storeu_ps(dst + (p + i) * dst_stride, keep, r[i]);
  }
  return p;
}
#endif

// Rows of the source contiguous along p, transposed 16 x 16 in registers:
// the packs of a Linear (A = x, B = W^T) and of q k^T.
template <class T>
int64_t transpose_fast(const T*, int64_t, int64_t, int64_t, T*, int64_t) {
  return 0;
}
#if defined(__AVX512F__)
template <>
int64_t transpose_fast<float>(const float* src, int64_t src_stride, int64_t rows, int64_t kc, float* dst,
                              int64_t dst_stride) {
  return transpose_rows(src, src_stride, rows, kc, dst, dst_stride);
}
#endif

// A[i0 + r, p0 + p] -> ap[panel][p][r], MR-row panels, rows past mc zero.
template <class T>
void pack_a(GemmOperand<T> a, int64_t i0, int64_t p0, int64_t mc, int64_t kc, T* ap) {
  for (int64_t ir = 0; ir < mc; ir += kMr, ap += kMr * kc) {
    const int64_t rows = std::min(kMr, mc - ir);
    const T* src = a.data + (i0 + ir) * a.row_stride + p0 * a.col_stride;
    const int64_t done = rows == kMr && a.col_stride == 1 ? transpose_fast(src, a.row_stride, kMr, kc, ap, kMr) : 0;
    for (int64_t p = done; p < kc; ++p)
      for (int64_t r = 0; r < kMr; ++r) ap[p * kMr + r] = r < rows ? src[r * a.row_stride + p * a.col_stride] : T(0);
  }
}

// One NR-column panel: B[p0 + p, j0 + j] -> bp[p][j], columns past `cols` zero.
template <class T>
void pack_b_panel(GemmOperand<T> b, int64_t p0, int64_t kc, int64_t j0, int64_t cols, T* bp) {
  constexpr int64_t NR = kNr<T>;
  const T* src = b.data + p0 * b.row_stride + j0 * b.col_stride;
  if (b.col_stride == 1) {  // rows of B contiguous (v in p v): copy
    for (int64_t p = 0; p < kc; ++p) {
      const T* s = src + p * b.row_stride;
      for (int64_t j = 0; j < NR; ++j) bp[p * NR + j] = j < cols ? s[j] : T(0);
    }
    return;
  }
  // columns of B contiguous (B = W^T of a Linear, k^T): transpose
  int64_t done = 0;
  if (cols == NR && b.row_stride == 1) {
    done = transpose_fast(src, b.col_stride, NR / 2, kc, bp, NR);
    if (done) transpose_fast(src + NR / 2 * b.col_stride, b.col_stride, NR / 2, kc, bp + NR / 2, NR);
  }
  for (int64_t p = done; p < kc; ++p)
    for (int64_t j = 0; j < NR; ++j) bp[p * NR + j] = j < cols ? src[j * b.col_stride + p * b.row_stride] : T(0);
}

// Per-thread packing buffers, 64-byte aligned, grown on demand.
template <class T>
T* scratch(int which, int64_t count) {
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<T, Free> buf[2];
  thread_local int64_t cap[2] = {0, 0};
  if (cap[which] < count) {
    const size_t bytes = (size_t(count) * sizeof(T) + 63) / 64 * 64;
    buf[which].reset(static_cast<T*>(std::aligned_alloc(64, bytes)));
    if (!buf[which]) throw std::bad_alloc();
    cap[which] = count;
  }
  return buf[which].get();
}

// The loop nest; pack(p0, kc, j0, nc, bp) fills the NR-column panels of
// B[p0 : p0 + kc, j0 : j0 + nc] (panel q at bp + q * NR * kc).
template <class T, class PackPanel>
void gemm_impl(int64_t n, int64_t m, int64_t k, GemmOperand<T> a, const PackPanel& pack, T* c, int64_t ldc) {
  constexpr int64_t NR = kNr<T>, NC = kNc<T>;
  if (n <= 0 || m <= 0) return;
  if (k <= 0) {
    for (int64_t i = 0; i < n; ++i) std::fill(c + i * ldc, c + i * ldc + m, T(0));
    return;
  }
  T* ap = scratch<T>(0, kMc * kGemmKc);
  T* bp = scratch<T>(1, (NC + NR) * kGemmKc);
  for (int64_t jc = 0; jc < m; jc += NC) {
    const int64_t nc = std::min(NC, m - jc);
    for (int64_t pc = 0; pc < k; pc += kGemmKc) {
      const int64_t kc = std::min(kGemmKc, k - pc);
      pack(pc, kc, jc, nc, bp);
      for (int64_t ic = 0; ic < n; ic += kMc) {
        const int64_t mc = std::min(kMc, n - ic);
        pack_a(a, ic, pc, mc, kc, ap);
        for (int64_t jr = 0; jr < nc; jr += NR)
          for (int64_t ir = 0; ir < mc; ir += kMr)
            micro_kernel(kc, ap + ir * kc, bp + jr * kc, c + (ic + ir) * ldc + jc + jr, ldc, std::min(kMr, mc - ir),
                         std::min(NR, nc - jr), pc > 0);
      }
    }
  }
}

}  // namespace

template <class T>
void gemm_serial(int64_t n, int64_t m, int64_t k, GemmOperand<T> a, GemmOperand<T> b, T* c, int64_t ldc) {
  gemm_impl(n, m, k, a, [&](int64_t p0, int64_t kc, int64_t j0, int64_t nc, T* bp) {
    for (int64_t jr = 0; jr < nc; jr += kNr<T>) pack_b_panel(b, p0, kc, j0 + jr, std::min(kNr<T>, nc - jr), bp + jr * kc);
  }, c, ldc);
}

template <class T>
void gemm_serial(int64_t n, int64_t m, int64_t k, GemmOperand<T> a, const GemmBlockPacker<T>& pack_b, T* c,
                 int64_t ldc) {
  gemm_impl(n, m, k, a, pack_b, c, ldc);
}

template <class T>
int64_t gemm_panel_width() {
  return kNr<T>;
}

const char* gemm_kernel_name() { return kKernelName; }

#else  // no FMA vectors: Eigen, single-threaded (EIGEN_DONT_PARALLELIZE)

template <class T>
void gemm_serial(int64_t n, int64_t m, int64_t k, GemmOperand<T> a, GemmOperand<T> b, T* c, int64_t ldc) {
  using M = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using S = Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>;
  Eigen::Map<const M, 0, S> A(a.data, n, k, S(a.row_stride, a.col_stride));
  Eigen::Map<const M, 0, S> B(b.data, k, m, S(b.row_stride, b.col_stride));
  Eigen::Map<M, 0, Eigen::OuterStride<>> C(c, n, m, Eigen::OuterStride<>(ldc));
  C.noalias() = A * B;
}

// A packer's B materialized one panel (width 32) at a time, then Eigen.
template <class T>
void gemm_serial(int64_t n, int64_t m, int64_t k, GemmOperand<T> a, const GemmBlockPacker<T>& pack_b, T* c,
                 int64_t ldc) {
  constexpr int64_t NR = 32;
  std::vector<T> b(size_t(k * m)), panel(size_t(k * NR));
  for (int64_t j0 = 0; j0 < m; j0 += NR) {
    const int64_t cols = std::min(NR, m - j0);
    pack_b(0, k, j0, cols, panel.data());
    for (int64_t p = 0; p < k; ++p)
      for (int64_t j = 0; j < cols; ++j) b[size_t(p * m + j0 + j)] = panel[size_t(p * NR + j)];
  }
  gemm_serial<T>(n, m, k, a, GemmOperand<T>{b.data(), m, 1}, c, ldc);
}

template <class T>
int64_t gemm_panel_width() {
  return 32;
}

const char* gemm_kernel_name() { return "eigen"; }

#endif

#ifdef ZIMAGE_GEMM_VECTOR
constexpr int64_t kRowAlign = kMr;
#else
constexpr int64_t kRowAlign = 1;
#endif

// Output tiles of up to 2048 rows x 512 columns (rows a multiple of MR), more
// row tiles when that leaves fewer than two tiles per thread; threads take
// tiles dynamically. None of this reaches the results (the contract in gemm.h;
// with the Eigen fallback the grid does not depend on the thread count).
// Tall tiles read B (a Linear's weight) once for up to 2048 tokens.
template <class T>
void gemm_parallel(int64_t n, int64_t m, int64_t k, GemmOperand<T> a, GemmOperand<T> b, T* c, int64_t ldc) {
  if (n <= 0 || m <= 0) return;
  const int64_t col_tiles = (m + 511) / 512;
  const int64_t max_row_tiles = std::max<int64_t>(1, n / (4 * kRowAlign));
#ifdef ZIMAGE_GEMM_VECTOR
  const int64_t wanted = (2 * int64_t(omp_get_max_threads()) + col_tiles - 1) / col_tiles;
#else  // Eigen's rounding depends on the tile's shape: keep the grid fixed
  const int64_t wanted = 1;
#endif
  const int64_t row_tiles = std::min(max_row_tiles, std::max((n + 2047) / 2048, wanted));
  const int64_t tr = ((n + row_tiles - 1) / row_tiles + kRowAlign - 1) / kRowAlign * kRowAlign;
  const int64_t tc = ((m + col_tiles - 1) / col_tiles + 31) / 32 * 32;
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
  for (int64_t i = 0; i < row_tiles; ++i)
    for (int64_t j = 0; j < col_tiles; ++j) {
      const int64_t r0 = i * tr, c0 = j * tc;
      if (r0 >= n || c0 >= m) continue;
      const GemmOperand<T> ai{a.data + r0 * a.row_stride, a.row_stride, a.col_stride};
      const GemmOperand<T> bj{b.data + c0 * b.col_stride, b.row_stride, b.col_stride};
      gemm_serial(std::min(tr, n - r0), std::min(tc, m - c0), k, ai, bj, c + r0 * ldc + c0, ldc);
    }
}

template void gemm_serial<float>(int64_t, int64_t, int64_t, GemmOperand<float>, GemmOperand<float>, float*, int64_t);
template void gemm_serial<double>(int64_t, int64_t, int64_t, GemmOperand<double>, GemmOperand<double>, double*, int64_t);
template void gemm_serial<float>(int64_t, int64_t, int64_t, GemmOperand<float>, const GemmBlockPacker<float>&, float*,
                                 int64_t);
template void gemm_serial<double>(int64_t, int64_t, int64_t, GemmOperand<double>, const GemmBlockPacker<double>&,
                                  double*, int64_t);
template int64_t gemm_panel_width<float>();
template int64_t gemm_panel_width<double>();
template void gemm_parallel<float>(int64_t, int64_t, int64_t, GemmOperand<float>, GemmOperand<float>, float*, int64_t);
template void gemm_parallel<double>(int64_t, int64_t, int64_t, GemmOperand<double>, GemmOperand<double>, double*,
                                    int64_t);

}  // namespace zimage

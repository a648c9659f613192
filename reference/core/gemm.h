// The reference's matrix product: C = A B on the CPU, float or double.
//
// One packed kernel (BLIS layout: A in MR-row panels, B in NR-column panels,
// an MR x NR register tile of accumulators, fused multiply-adds) for every
// product of the reference: torch.nn.Linear, q k^T and p v inside the
// attentions (DiT, Qwen3, VAE), and the VAE's convolutions. docs/gemm.md
// explains the blocking.
//
// Rounding contract of the vector kernels (AVX-512, AVX2), what makes results
// independent of threads and tiling: element C(i, j) is the sum over K in
// blocks of kGemmKc, in order; inside a block, a chain of FMAs p = 0, 1, ...,
// kc-1 from 0; the blocks are added in order, C = ((b0 + b1) + b2) + ....
// Nothing depends on n, m, the thread count or which thread computes the
// element (tests/unit/test_gemm.cpp). Builds without FMA vectors use Eigen,
// whose rounding is its own (gemm_kernel_name() says "eigen").
#pragma once
#include <cstdint>
#include <functional>

namespace zimage {

// Inner (K) blocking; the only blocking that reaches the rounding.
constexpr int64_t kGemmKc = 256;

// A operand: element (i, p) at a[i * row_stride + p * col_stride]; B likewise.
template <class T>
struct GemmOperand {
  const T* data;
  int64_t row_stride, col_stride;
};

// C[n, m] = A[n, k] B[k, m], C row-major with row stride ldc. One thread.
template <class T>
void gemm_serial(int64_t n, int64_t m, int64_t k, GemmOperand<T> a, GemmOperand<T> b, T* c, int64_t ldc);

// B given by a packer instead of memory: pack(p0, kc, j0, nc, bp) writes the
// block B[p0 : p0 + kc, j0 : j0 + nc] as panels of NR = gemm_panel_width<T>()
// columns: B[p0 + p, j0 + q * NR + j] at bp[q * NR * kc + p * NR + j], and 0
// for the columns of the last panel past nc. Same kernel, same contract (the
// VAE's convolutions pack their im2col this way, never materializing it).
template <class T>
using GemmBlockPacker = std::function<void(int64_t p0, int64_t kc, int64_t j0, int64_t nc, T* bp)>;
template <class T>
void gemm_serial(int64_t n, int64_t m, int64_t k, GemmOperand<T> a, const GemmBlockPacker<T>& pack_b, T* c,
                 int64_t ldc);
template <class T>
int64_t gemm_panel_width();  // NR: 32 floats / 16 doubles (AVX-512), 16 / 8 (AVX2), 32 (Eigen)

// The same product split over OpenMP threads in output tiles: bitwise the
// same for any thread count, and (vector kernels) bitwise gemm_serial's.
template <class T>
void gemm_parallel(int64_t n, int64_t m, int64_t k, GemmOperand<T> a, GemmOperand<T> b, T* c, int64_t ldc);

// Which kernel this build uses: "avx512", "avx2" or "eigen" (no FMA vectors).
const char* gemm_kernel_name();

}  // namespace zimage

#include <cmath>

#include "kernels/device_common.cuh"
#include "kernels/flash_attention_mma.h"

namespace zimage::gpu {
namespace {

// flash_attention_mma: FlashAttention-2-style forward on the tensor cores (mma.sync, sm_80+).
// Twin: reference/dit/attention.h scaled_dot_product_attention (see flash_attention_mma.h).
// Shapes: q, k, v [B, L, H, D] bf16 rows of a wider buffer (token n = b L + l, head h at n ld + h D),
// mask [B, L] int32 or nullptr, out [B, L, H, D] bf16 with token stride ldo.
// Tiling: grid (ceil(L / (64 M)), H, B), 128 threads = 4 warps; a block owns 64 M query rows of one
// (b, h), warp w the rows [16 M w, 16 M (w + 1)) as M m-tiles of 16 rows. M 1 is `mma`; M 2 is
// `mma_wide` (FlashAttention-2's 128 x 64 tiling: every K and V fragment read from shared memory
// serves two m-tiles, half the shared-memory reads and global K/V loads per FLOP of M 1, for twice
// the accumulator registers; D <= 128 only). Each row's arithmetic is the same for both M, in the
// same order, so their outputs are bitwise equal (Cuda/FlashAttention.AgainstSdpa/mma_wide_*). Dp (32, 64, 128, 256) is the head-dim bucket the
// registers and shared rows are sized for: D <= Dp, dims [D, Dp) zero-filled in shared memory and
// never stored (Exact: D == Dp, no tail); the mma steps always span all of Dp (skipping the padded
// steps with run-time branches broke the instruction scheduling: slower on the H200). Per block in shared memory (rows padded to Dp + 8
// elements: the 8 row addresses of an ldmatrix phase fall in distinct banks):
//   Qs [64 M][Dp + 8]            the query tile (cp.async once; moved into registers with
//                                ldmatrix when M Dp <= 128, else read from here each tile);
//                                at the end the warp's output rows are staged here for 16-byte stores
//   Ks, Vs [2][Kv][Dp + 8]        K and V tiles of Kv keys (64; 32 for Dp 256), double-buffered:
//                                tile t + 1 is in flight (cp.async.cg 16 bytes) while tile t is used
//   Ms [2][Kv]                    the mask of those keys (cp.async 4 bytes; only with a mask)
// Per key tile, per warp and m-tile: S [16 x Kv] = Q K^T (m16n8k16, A = Q from ldmatrix, B = K rows from
// ldmatrix: a K row is a column of K^T), masked keys and keys >= L set to -inf, then the online
// softmax in log2 units (scores times scale log2(e), exp2f) on the accumulator fragments:
//   m' = max(m, rowmax(S));  mu = m' == -inf ? 0 : m'  (no valid key yet: nothing may become NaN)
//   alpha = exp2(m - mu);  p = exp2(s - mu) (0 for a masked key);  l = l alpha + sum(p over the tile);
//   O = O alpha + P V  (P rounded to bf16 as the mma A operand, V from ldmatrix.trans).
// Each thread holds two rows (lane / 4 and lane / 4 + 8) of S and O; its l is a partial sum over
// its own columns, summed over the 4 threads of the row at the end (fixed order: deterministic).
// out = O / l, NaN where l == 0 (every key masked), rounded once to bf16.
// Rows >= L: the query tile holds zeros there and nothing is stored; keys >= L are zero-filled
// (cp.async src-size 0) and never read from global memory.
// Limits: D % 8 == 0, 8 <= D <= 256; ld, ldo % 8 == 0 and 16-byte aligned base pointers (every
// 16-byte copy is aligned); L < 2^31, H and B <= 65535.
constexpr int kThreads = 128;
constexpr int kWarps = 4;
constexpr float kLog2e = 1.4426950408889634f;

using bf16 = __nv_bfloat16;

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared, bypassing L1; src_bytes 0 writes 16 zero bytes and reads nothing.
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
// 4 bytes global -> shared; src_bytes 0 writes zeros.
__device__ __forceinline__ void cp_async_4(uint32_t dst, const void* src, int src_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Four 8x8 b16 matrices; lanes 8i .. 8i + 7 give the row addresses of matrix i, which lands in r[i]
// (lane t: row t / 4, elements 2 (t % 4) and 2 (t % 4) + 1; .trans: column t / 4, rows 2 (t % 4) + {0, 1}).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// c += a b: A 16x16 row-major (a[0]: row g, cols 2q..2q+1; a[1]: row g + 8; a[2], a[3]: the same at
// cols + 8), B 16x8 "col" (b0: rows 2q..2q+1 of col g; b1: rows + 8), C 16x8 (c[0], c[1]: row g,
// cols 2q, 2q + 1; c[2], c[3]: row g + 8), with g = lane / 4, q = lane % 4.
__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats -> one bf16x2 register, lo in the low half (the element with the smaller index).
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

template <int Dp, int Kv, int M>
struct MmaConfig {
  static constexpr int kRows = kWarps * 16 * M;  // query rows of a block
  static constexpr int kRs = Dp + 8;             // shared row stride, elements (16-byte multiple)
  static constexpr size_t kQElems = size_t(kRows) * kRs;
  static constexpr size_t kKvElems = size_t(Kv) * kRs;  // one K (or V) stage
  static constexpr size_t kSmemBytes = (kQElems + 4 * kKvElems) * sizeof(bf16) + 2 * Kv * sizeof(int32_t);
};

// Copies `Rows` rows of the head (row r at src + r ld) into shared rows of kRs elements with
// cp.async: chunk c (8 elements) of row r is copied when r < rows_valid and c < d_chunks, zero-filled
// otherwise (rows past L, the head's tail dims [D, Dp)): every shared element the tile's ldmatrix
// reads is written.
template <int Rows, int Dp, bool Exact>
__device__ __forceinline__ void load_rows(uint32_t dst, const bf16* src, int64_t ld, int rows_valid,
                                          int d_chunks) {
  constexpr int kChunks = Dp / 8;  // 16-byte chunks per row
  constexpr int kRs = Dp + 8;
  static_assert((Rows * kChunks) % kThreads == 0, "whole passes");
#pragma unroll
  for (int i = 0; i < Rows * kChunks / kThreads; ++i) {
    const int idx = int(threadIdx.x) + i * kThreads;
    const int r = idx / kChunks, c = idx % kChunks;
    const bool ok = r < rows_valid && (Exact || c < d_chunks);
    const bf16* s = ok ? src + int64_t(r) * ld + c * 8 : src;  // src (row 0) is valid; nothing is read
    cp_async_16(dst + uint32_t((r * kRs + c * 8) * int(sizeof(bf16))), s, ok ? 16 : 0);
  }
}

template <int Dp, int Kv, int M, bool Exact, bool QInRegs>
__global__ void __launch_bounds__(kThreads)
    flash_attention_mma_kernel(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                               int64_t ld, const int32_t* __restrict__ mask, bf16* __restrict__ out, int64_t ldo, int L,
                               int D_arg, float scale_log2) {
  using Cfg = MmaConfig<Dp, Kv, M>;
  constexpr int kRs = Cfg::kRs;
  constexpr int kRowsPerBlock = Cfg::kRows;
  constexpr int kKSteps = Dp / 16;  // k-steps of Q K^T (over dims)
  constexpr int kSTiles = Kv / 8;   // n-tiles of S (8 keys each)
  constexpr int kPSteps = Kv / 16;  // k-steps of P V (over keys)
  constexpr int kOTiles = Dp / 8;   // n-tiles of O (8 dims each)
  static_assert(Dp % 16 == 0 && Kv % 16 == 0, "tile shapes");

  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* Qs = reinterpret_cast<bf16*>(smem_raw);
  bf16* Ks = Qs + Cfg::kQElems;      // [2][Kv][kRs]
  bf16* Vs = Ks + 2 * Cfg::kKvElems;  // [2][Kv][kRs]
  int32_t* Ms = reinterpret_cast<int32_t*>(Vs + 2 * Cfg::kKvElems);  // [2][Kv]

  const int D = Exact ? Dp : D_arg;
  const int d_chunks = D / 8;
  const int b = blockIdx.z, h = blockIdx.y;
  const int q0 = blockIdx.x * kRowsPerBlock;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, tq = lane & 3;  // fragment row group and column pair
  const int64_t tok0 = int64_t(b) * L;
  const int64_t hoff = int64_t(h) * D;
  const bf16* kh = k + tok0 * ld + hoff;  // key 0 of (b, h)
  const bf16* vh = v + tok0 * ld + hoff;
  const int32_t* mrow = mask ? mask + tok0 : nullptr;

  const uint32_t qs_u32 = smem_u32(Qs), ks_u32 = smem_u32(Ks), vs_u32 = smem_u32(Vs), ms_u32 = smem_u32(Ms);
  constexpr uint32_t kKvStageBytes = uint32_t(Cfg::kKvElems * sizeof(bf16));

  auto load_kv = [&](int tile, int stage) {
    const int j0 = tile * Kv;
    const int valid = min(Kv, L - j0);
    load_rows<Kv, Dp, Exact>(ks_u32 + stage * kKvStageBytes, kh + int64_t(j0) * ld, ld, valid, d_chunks);
    load_rows<Kv, Dp, Exact>(vs_u32 + stage * kKvStageBytes, vh + int64_t(j0) * ld, ld, valid, d_chunks);
    if (mrow != nullptr && tid < Kv) {
      const bool ok = tid < valid;
      cp_async_4(ms_u32 + uint32_t((stage * Kv + tid) * 4), ok ? mrow + j0 + tid : mrow, ok ? 4 : 0);
    }
  };

  // Prologue: the query tile (group 0), key tile 0 (group 1).
  load_rows<kRowsPerBlock, Dp, Exact>(qs_u32, q + (tok0 + q0) * ld + hoff, ld, L - q0, d_chunks);
  cp_async_commit();
  load_kv(0, 0);
  cp_async_commit();

  // Per-lane ldmatrix offsets (bytes). Q (A operand, x4): matrices (rows 0-7 | 8-15) x (dims 0-7 | 8-15)
  // in the order a[0..3]; K (B operand of Q K^T, x4): keys (0-7, dims 0-7), (0-7, dims 8-15),
  // (8-15, 0-7), (8-15, 8-15) = b0, b1 of n-tile 2j, b0, b1 of n-tile 2j + 1; V (B operand of P V,
  // x4.trans): keys (0-7, dims 0-7), (8-15, 0-7), (0-7, 8-15), (8-15, 8-15) = b0, b1 of dim tile 2n,
  // b0, b1 of dim tile 2n + 1.
  const int l8 = lane & 7, l8b = (lane >> 3) & 1, l16b = lane >> 4;
  // m-tile mt of the warp: rows 16 (M warp + mt) + [0, 16).
  const uint32_t q_lane = uint32_t(((warp * 16 * M + l8 + 8 * l8b) * kRs + 8 * l16b) * int(sizeof(bf16)));
  constexpr uint32_t kMTileBytes = uint32_t(16 * kRs * int(sizeof(bf16)));
  const uint32_t k_lane = uint32_t(((l8 + 8 * l16b) * kRs + 8 * l8b) * int(sizeof(bf16)));
  const uint32_t v_lane = uint32_t(((l8 + 8 * l8b) * kRs + 8 * l16b) * int(sizeof(bf16)));

  uint32_t qf[M][QInRegs ? kKSteps : 1][4];
  if constexpr (QInRegs) {
    cp_async_wait<1>();  // the query tile has landed (this thread's copies)
    __syncthreads();     // ... and everyone's
#pragma unroll
    for (int mt = 0; mt < M; ++mt)
#pragma unroll
      for (int kk = 0; kk < kKSteps; ++kk)
        ldmatrix_x4(qf[mt][kk], qs_u32 + q_lane + mt * kMTileBytes + kk * 16 * int(sizeof(bf16)));
  }

  float o[M][kOTiles][4];
#pragma unroll
  for (int mt = 0; mt < M; ++mt)
#pragma unroll
    for (int i = 0; i < kOTiles; ++i) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.f;
  // Per m-tile: running max (log2 units) of rows g and g + 8, and this thread's part of the running sums.
  float m_run[M][2], l_run[M][2];
#pragma unroll
  for (int mt = 0; mt < M; ++mt) {
    m_run[mt][0] = m_run[mt][1] = -INFINITY;
    l_run[mt][0] = l_run[mt][1] = 0.f;
  }

  const int n_tiles = (L + Kv - 1) / Kv;
  for (int t = 0; t < n_tiles; ++t) {
    const int stage = t & 1;
    if (t + 1 < n_tiles) load_kv(t + 1, stage ^ 1);  // the stage tile t - 1 used: freed by the barrier below
    cp_async_commit();                               // (possibly empty group: keeps the count uniform)
    cp_async_wait<1>();                              // everything but tile t + 1 has landed
    __syncthreads();

    const uint32_t ks_st = ks_u32 + stage * kKvStageBytes + k_lane;
    const uint32_t vs_st = vs_u32 + stage * kKvStageBytes + v_lane;
    const int j0 = t * Kv;

    // S = Q K^T (raw dot products, fp32); each K fragment serves the warp's M m-tiles.
    float s[M][kSTiles][4];
#pragma unroll
    for (int mt = 0; mt < M; ++mt)
#pragma unroll
      for (int j = 0; j < kSTiles; ++j) s[mt][j][0] = s[mt][j][1] = s[mt][j][2] = s[mt][j][3] = 0.f;
    // mma_wide with Q from shared memory: the k-steps stay a loop (unrolled, ptxas hoisted their
    // addresses into registers and spilled); otherwise unrolled (qf is indexed by kk; mma's code
    // as measured).
#pragma unroll((QInRegs || M == 1) ? kKSteps : 1)
    for (int kk = 0; kk < kKSteps; ++kk) {
      uint32_t a[M][4];
#pragma unroll
      for (int mt = 0; mt < M; ++mt) {
        if constexpr (QInRegs) {
#pragma unroll
          for (int i = 0; i < 4; ++i) a[mt][i] = qf[mt][kk][i];
        } else {
          ldmatrix_x4(a[mt], qs_u32 + q_lane + mt * kMTileBytes + kk * 16 * int(sizeof(bf16)));
        }
      }
#pragma unroll
      for (int j = 0; j < kSTiles / 2; ++j) {
        uint32_t bk[4];
        ldmatrix_x4(bk, ks_st + uint32_t((j * 16 * kRs + kk * 16) * int(sizeof(bf16))));
#pragma unroll
        for (int mt = 0; mt < M; ++mt) {
          mma_bf16_16816(s[mt][2 * j], a[mt], bk[0], bk[1]);
          mma_bf16_16816(s[mt][2 * j + 1], a[mt], bk[2], bk[3]);
        }
      }
    }

    // Masked keys and keys past L: -inf. Thread columns: key j0 + 8 j + 2 tq + e, rows g and g + 8.
    if (mrow != nullptr || j0 + Kv > L) {
#pragma unroll
      for (int j = 0; j < kSTiles; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int kl = 8 * j + 2 * tq + e;
          const bool valid = mrow != nullptr ? Ms[stage * Kv + kl] != 0 : j0 + kl < L;  // Ms is 0 past L
          if (!valid)
#pragma unroll
            for (int mt = 0; mt < M; ++mt) s[mt][j][e] = s[mt][j][2 + e] = -INFINITY;
        }
    }

    // Online softmax, per m-tile, rows r = 0 (g) and 1 (g + 8): fragment elements 2 r and 2 r + 1.
#pragma unroll
    for (int mt = 0; mt < M; ++mt) {
      float mu[2], alpha[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < kSTiles; ++j) mx = fmaxf(mx, fmaxf(s[mt][j][2 * r], s[mt][j][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_new = fmaxf(m_run[mt][r], mx * scale_log2);  // scale > 0: max commutes with it
        mu[r] = m_new == -INFINITY ? 0.f : m_new;
        alpha[r] = exp2f(m_run[mt][r] - mu[r]);  // m_run == -inf: 0 (O and l are 0 anyway)
        m_run[mt][r] = m_new;
      }
      float tile_l[2] = {0.f, 0.f};
#pragma unroll
      for (int j = 0; j < kSTiles; ++j)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const float p = exp2f(fmaf(s[mt][j][i], scale_log2, -mu[i >> 1]));  // -inf -> 0
          s[mt][j][i] = p;
          tile_l[i >> 1] += p;
        }
#pragma unroll
      for (int r = 0; r < 2; ++r) l_run[mt][r] = fmaf(l_run[mt][r], alpha[r], tile_l[r]);
#pragma unroll
      for (int i = 0; i < kOTiles; ++i) {
        o[mt][i][0] *= alpha[0];
        o[mt][i][1] *= alpha[0];
        o[mt][i][2] *= alpha[1];
        o[mt][i][3] *= alpha[1];
      }
    }

    // O += P V: the S accumulators of n-tiles 2 ps and 2 ps + 1 are the A fragment of key step ps;
    // each V fragment serves the warp's M m-tiles.
#pragma unroll
    for (int ps = 0; ps < kPSteps; ++ps) {
      uint32_t a[M][4];
#pragma unroll
      for (int mt = 0; mt < M; ++mt) {
        a[mt][0] = pack_bf16x2(s[mt][2 * ps][0], s[mt][2 * ps][1]);
        a[mt][1] = pack_bf16x2(s[mt][2 * ps][2], s[mt][2 * ps][3]);
        a[mt][2] = pack_bf16x2(s[mt][2 * ps + 1][0], s[mt][2 * ps + 1][1]);
        a[mt][3] = pack_bf16x2(s[mt][2 * ps + 1][2], s[mt][2 * ps + 1][3]);
      }
#pragma unroll
      for (int n = 0; n < kOTiles / 2; ++n) {
        uint32_t bv[4];
        ldmatrix_x4_trans(bv, vs_st + uint32_t((ps * 16 * kRs + n * 16) * int(sizeof(bf16))));
#pragma unroll
        for (int mt = 0; mt < M; ++mt) {
          mma_bf16_16816(o[mt][2 * n], a[mt], bv[0], bv[1]);
          mma_bf16_16816(o[mt][2 * n + 1], a[mt], bv[2], bv[3]);
        }
      }
    }
    __syncthreads();  // every warp is done with this stage before the next prefetch overwrites it
  }

  // Row sums over the 4 threads of a row; out = O / l (NaN when no key took part).
  float inv[M][2];
#pragma unroll
  for (int mt = 0; mt < M; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float l = l_run[mt][r];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      inv[mt][r] = l > 0.f ? 1.0f / l : NAN;
    }
  // Stage the warp's 16 M rows in its own rows of Qs (only this warp reads or writes them now), then
  // 16-byte stores of the rows < L and dims < D.
  bf16* Qw = Qs + warp * 16 * M * kRs;
  __syncwarp();  // the warp's last ldmatrix of these rows (Q read from shared memory) is behind every lane
#pragma unroll
  for (int mt = 0; mt < M; ++mt)
#pragma unroll
    for (int i = 0; i < kOTiles; ++i) {
      if (!Exact && i * 8 >= D) continue;
      bf16* row = Qw + (16 * mt + g) * kRs + i * 8 + 2 * tq;
      *reinterpret_cast<uint32_t*>(row) = pack_bf16x2(o[mt][i][0] * inv[mt][0], o[mt][i][1] * inv[mt][0]);
      *reinterpret_cast<uint32_t*>(row + 8 * kRs) = pack_bf16x2(o[mt][i][2] * inv[mt][1], o[mt][i][3] * inv[mt][1]);
    }
  __syncwarp();
  constexpr int kChunks = Dp / 8;
#pragma unroll
  for (int i = 0; i < 16 * M * kChunks / 32; ++i) {
    const int idx = lane + i * 32;
    const int r = idx / kChunks, c = idx % kChunks;
    const int qi = q0 + warp * 16 * M + r;
    if (qi < L && (Exact || c < d_chunks))
      *reinterpret_cast<uint4*>(out + (tok0 + qi) * ldo + hoff + c * 8) =
          *reinterpret_cast<const uint4*>(Qw + r * kRs + c * 8);
  }
}

// The dynamic shared memory of the block run_mma launches for head_dim D: its head-dim bucket's
// MmaConfig (the buckets of run_mma below).
template <int M>
size_t tiling_smem_bytes(int64_t D) {
  if (D <= 32) return MmaConfig<32, 64, M>::kSmemBytes;
  if (D <= 64) return MmaConfig<64, 64, M>::kSmemBytes;
  if (D <= 128) return MmaConfig<128, 64, M>::kSmemBytes;
  return MmaConfig<256, 32, M>::kSmemBytes;
}

template <int Dp, int Kv, int M, bool Exact, bool QInRegs>
void launch_mma(const void* q, const void* k, const void* v, int64_t ld, const int32_t* mask, void* out, int64_t ldo,
                int64_t B, int64_t L, int64_t H, int64_t D, cudaStream_t stream) {
  using Cfg = MmaConfig<Dp, Kv, M>;
  constexpr size_t smem = Cfg::kSmemBytes;
  // The supports rule measured this bucket against the device's limit: the two bucket tables agree.
  ZIMAGE_CHECK(smem == tiling_smem_bytes<M>(D), "flash_attention_mma: head_dim " + std::to_string(D) +
                                                    " launched a bucket tiling_smem_bytes does not name");
  auto kernel = flash_attention_mma_kernel<Dp, Kv, M, Exact, QInRegs>;
  if (smem > 48 * 1024)
    ZIMAGE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const dim3 grid(unsigned((L + Cfg::kRows - 1) / Cfg::kRows), unsigned(H), unsigned(B));
  kernel<<<grid, kThreads, smem, stream>>>(static_cast<const bf16*>(q), static_cast<const bf16*>(k),
                                           static_cast<const bf16*>(v), ld, mask, static_cast<bf16*>(out), ldo, int(L),
                                           int(D), (1.0f / sqrtf(float(D))) * kLog2e);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// The two tilings: the version's name and the widest head_dim whose M m-tiles of accumulators fit
// in a thread's registers.
template <int M>
struct Tiling;
template <>
struct Tiling<1> {
  static constexpr const char* name = "mma";
  static constexpr const char* kernel = "flash_attention_mma";  // in launch errors
  static constexpr int64_t max_D = 256;
};
template <>
struct Tiling<2> {
  static constexpr const char* name = "mma_wide";
  static constexpr const char* kernel = "flash_attention_mma_wide";
  static constexpr int64_t max_D = 128;
};

// What a tiling runs: bf16, head_dim 8..max_D in steps of 8, row strides of whole 16-byte chunks,
// and a block's shared memory within the device's opt-in limit (smem_optin bytes; 0: not known,
// nothing refused), so that a GPU with less (sm_86 and sm_89: 99 KiB) falls through to another
// version instead of failing at the launch.
template <int M>
bool tiling_supports(DType dt, int64_t D, int64_t ld, int64_t ldo, std::string* why, int64_t smem_optin) {
  const char* name = Tiling<M>::name;
  const int64_t max_D = Tiling<M>::max_D;
  if (dt != DType::BF16) {
    if (why) *why = std::string(name) + " is built for bfloat16 only, not " + dtype_name(dt);
    return false;
  }
  if (D < 8 || D > max_D || D % 8 != 0) {
    if (why) {
      *why = std::string(name) + " runs head_dim 8.." + std::to_string(max_D) + " in steps of 8, not " + std::to_string(D);
      if (D > max_D && D <= 256 && D % 8 == 0)
        *why += " (two m-tiles of accumulators that wide exceed a thread's registers; mma runs it)";
    }
    return false;
  }
  if (ld % 8 != 0 || ldo % 8 != 0) {
    if (why)
      *why = std::string(name) + " needs row strides that are multiples of 8 elements, not ld " + std::to_string(ld) +
             ", ldo " + std::to_string(ldo);
    return false;
  }
  const size_t smem = tiling_smem_bytes<M>(D);
  if (smem_optin > 0 && smem > size_t(smem_optin)) {
    if (why)
      *why = std::string(name) + " needs " + std::to_string(smem) + " bytes of shared memory a block at head_dim " +
             std::to_string(D) + "; this GPU allows " + std::to_string(smem_optin);
    return false;
  }
  return true;
}

int64_t resolve_smem_optin(int64_t smem_per_block) {
  return smem_per_block == kSmemOfDevice ? device_smem_per_block_optin() : smem_per_block;
}

// The checks both tilings make (the tiling's name in the messages), then the launch of the
// head-dim bucket.
template <int M>
void run_mma(ConstDevRows qv, ConstDevRows kv, ConstDevRows vv, const int32_t* mask, DevRows outv, AttentionShape shape,
             cudaStream_t stream) {
  const DType dt = qv.dt;
  const std::string kernel = std::string("flash_attention ") + Tiling<M>::name;
  check_view_dtype(kernel.c_str(), "k", kv.dt, dt);
  check_view_dtype(kernel.c_str(), "v", vv.dt, dt);
  check_view_dtype(kernel.c_str(), "out", outv.dt, dt);
  ZIMAGE_CHECK(qv.ld == kv.ld && qv.ld == vv.ld, kernel + ": q, k and v must share one row stride");
  const void *q = qv.data, *k = kv.data, *v = vv.data;
  void* out = outv.data;
  const int64_t ld = qv.ld, ldo = outv.ld, B = shape.B, L = shape.L, H = shape.H, D = shape.D;
  std::string why;
  ZIMAGE_CHECK(tiling_supports<M>(dt, D, ld, ldo, &why, device_smem_per_block_optin()), "flash_attention: " + why);
  if (B == 0 || L == 0) return;
  // L at least a block's rows (at most 128) below 2^31: the kernel's int query index (q0 + the row in
  // the block) never overflows, even in the last block.
  ZIMAGE_CHECK(ld >= H * D && ldo >= H * D && L <= 0x7fffffff - 1024 && H >= 1 && H <= 65535 && B <= 65535,
               kernel + ": bad shape");
  ZIMAGE_CHECK(aligned16(q) && aligned16(k) && aligned16(v) && aligned16(out),
               kernel + ": q, k, v and out must be 16-byte aligned");
  // Q in registers while the warp's query fragments (M m-tiles of Dp) fit beside the accumulators.
  // mma_wide at D 128 takes the generic (not Exact) instantiation: the Exact one spilled 172 bytes
  // at 255 registers (ptxas -v, sm_90), the generic one none; the arithmetic is the same.
  if (D == 64)
    launch_mma<64, 64, M, true, true>(q, k, v, ld, mask, out, ldo, B, L, H, D, stream);
  else if (D == 128)
    launch_mma<128, 64, M, M == 1, M == 1>(q, k, v, ld, mask, out, ldo, B, L, H, D, stream);
  else if (D <= 32)
    launch_mma<32, 64, M, false, true>(q, k, v, ld, mask, out, ldo, B, L, H, D, stream);
  else if (D <= 64)
    launch_mma<64, 64, M, false, true>(q, k, v, ld, mask, out, ldo, B, L, H, D, stream);
  else if (D <= 128)
    launch_mma<128, 64, M, false, M == 1>(q, k, v, ld, mask, out, ldo, B, L, H, D, stream);
  else if constexpr (M == 1)
    launch_mma<256, 32, 1, false, false>(q, k, v, ld, mask, out, ldo, B, L, H, D, stream);
  else
    throw Error(kernel + ": no head-dim bucket for head_dim " + std::to_string(D));  // tiling_supports refused it
  ZIMAGE_CUDA_CHECK_LAUNCH(Tiling<M>::kernel);
}

}  // namespace

bool mma_attention_supports(DType dt, int64_t D, int64_t ld, int64_t ldo, std::string* why, int64_t smem_per_block) {
  return tiling_supports<1>(dt, D, ld, ldo, why, resolve_smem_optin(smem_per_block));
}

bool mma_wide_attention_supports(DType dt, int64_t D, int64_t ld, int64_t ldo, std::string* why,
                                 int64_t smem_per_block) {
  return tiling_supports<2>(dt, D, ld, ldo, why, resolve_smem_optin(smem_per_block));
}

size_t mma_attention_smem_bytes(int64_t D, bool wide) {
  return wide ? tiling_smem_bytes<2>(D) : tiling_smem_bytes<1>(D);
}

void flash_attention_mma(ConstDevRows q, ConstDevRows k, ConstDevRows v, const int32_t* mask, DevRows out,
                         AttentionShape shape, cudaStream_t stream) {
  run_mma<1>(q, k, v, mask, out, shape, stream);
}

void flash_attention_mma_wide(ConstDevRows q, ConstDevRows k, ConstDevRows v, const int32_t* mask, DevRows out,
                              AttentionShape shape, cudaStream_t stream) {
  run_mma<2>(q, k, v, mask, out, shape, stream);
}

}  // namespace zimage::gpu

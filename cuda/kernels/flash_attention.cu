#include <cmath>
#include <cstdlib>

#include "core/choices.h"
#include "kernels/device_common.cuh"
#include "kernels/flash_attention.h"
#include "kernels/flash_attention_mma.h"
#include "attention_cudnn.h"

namespace zimage::gpu {
namespace {

constexpr int kThreads = 128;

// Dmax: the head-dim bucket the registers are sized for (D <= Dmax, D % 4 == 0);
// Tpr: threads per query row, each owning the dims d = sub + Tpr * i (conflict-free shared reads);
// Keys: keys per K/V tile (16 for Dmax 256 so that both fp32 tiles fit in 48 KB).
// Order of operations, per query row (tests/unit/test_flash_attention_order.cpp replays it on the host):
//   s_j   = ((sum_{i} fma over the thread's dims) xor-shuffle-summed over Tpr threads) * scale
//   m'    = max(m, max_j s_j);  alpha = m == -inf ? 0 : expf(m - m')
//   p_j   = expf(s_j - m');  tile_l = p_0 + p_1 + ... (left to right); tile_o[d] = fma chain of p_j v_j[d]
//   l     = fma(l, alpha, tile_l);  o[d] = fma(o[d], alpha, tile_o[d])
// Summing a tile locally before it meets the running sums keeps every addend within 32 keys of the
// sum it joins (the key-by-key chain lost the terms below half an ulp of l at L ~ 4k: docs/attention.md).
// Variants (AttentionVariant): group = H / G query heads per K/V head (1: plain); causal: keys past
// the query are invalid like masked ones, and a block stops at the tile holding its last query
// (the tiles after it are invalid for every row, so skipping them changes no bit); zero_empty: a
// row with no valid key (l == 0, acc == 0) writes 0 instead of NaN.
template <class T, int Dmax, int Tpr, int Keys>
__global__ void __launch_bounds__(kThreads)
    flash_attention_v1(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, int64_t ld,
                       const int32_t* __restrict__ mask, T* __restrict__ out, int64_t ldo, int L, int D, float scale,
                       int group, bool causal, bool zero_empty) {
  constexpr int kRows = kThreads / Tpr;  // query rows per block
  constexpr int kDpt = Dmax / Tpr;       // dims per thread (some unused when D < Dmax)
  __shared__ float ks[Keys][Dmax];
  __shared__ float vs[Keys][Dmax];
  __shared__ float sc[kRows][Keys + 1];
  const int b = blockIdx.z, h = blockIdx.y;
  const int row = threadIdx.x / Tpr, sub = threadIdx.x % Tpr;
  const int qi = blockIdx.x * kRows + row;
  const bool active = qi < L;
  const int64_t tok0 = int64_t(b) * L;  // first token of batch item b
  const int64_t hoff = int64_t(h) * D;
  const int64_t kvoff = int64_t(h / group) * D;  // the K/V head this query head reads
  // Causal: no row of this block takes a key past its last query row.
  const int kend = causal ? min(L, int(blockIdx.x) * kRows + kRows) : L;

  float qr[kDpt], acc[kDpt];
#pragma unroll
  for (int i = 0; i < kDpt; ++i) {
    const int d = sub + Tpr * i;
    qr[i] = active && d < D ? to_f32(q[(tok0 + qi) * ld + hoff + d]) : 0.f;
    acc[i] = 0.f;
  }
  const int32_t* mrow = mask ? mask + tok0 : nullptr;
  float m = -INFINITY, l = 0.f;

  for (int j0 = 0; j0 < kend; j0 += Keys) {
    for (int idx = threadIdx.x; idx < Keys * D; idx += kThreads) {
      const int j = idx / D, d = idx % D, key = j0 + j;
      float kv = 0.f, vv = 0.f;
      if (key < L) {
        const int64_t off = (tok0 + key) * ld + kvoff + d;
        kv = to_f32(k[off]);
        vv = to_f32(v[off]);
      }
      ks[j][d] = kv;
      vs[j][d] = vv;
    }
    __syncthreads();

    // Scores of this tile; the Tpr threads of a row end with the same value (xor-shuffle sums are
    // commutative bit for bit). Every thread of the warp runs the shuffles (inactive rows too).
    float tile_max = -INFINITY;
    for (int j = 0; j < Keys; ++j) {
      float part = 0.f;
#pragma unroll
      for (int i = 0; i < kDpt; ++i)
        if (sub + Tpr * i < D) part = fmaf(qr[i], ks[j][sub + Tpr * i], part);
#pragma unroll
      for (int o = 1; o < Tpr; o <<= 1) part += __shfl_xor_sync(0xffffffffu, part, o);
      const int key = j0 + j;
      const bool valid = key < L && (mrow == nullptr || mrow[key] != 0) && (!causal || key <= qi);
      const float s = valid ? part * scale : -INFINITY;
      tile_max = fmaxf(tile_max, s);
      if (sub == 0) sc[row][j] = s;
    }
    __syncwarp();  // sc[row][*] is written by sub 0 and read by the other subs of the same warp

    const float m_new = fmaxf(m, tile_max);
    if (m_new != -INFINITY) {  // otherwise no valid key so far: nothing to add
      const float alpha = m == -INFINITY ? 0.f : expf(m - m_new);
      float tile_l = 0.f, tile_o[kDpt];
#pragma unroll
      for (int i = 0; i < kDpt; ++i) tile_o[i] = 0.f;
      for (int j = 0; j < Keys; ++j) {
        const float s = sc[row][j];
        const float p = s == -INFINITY ? 0.f : expf(s - m_new);
        tile_l += p;
#pragma unroll
        for (int i = 0; i < kDpt; ++i) tile_o[i] = fmaf(p, vs[j][sub + Tpr * i], tile_o[i]);
      }
      l = fmaf(l, alpha, tile_l);
#pragma unroll
      for (int i = 0; i < kDpt; ++i) acc[i] = fmaf(acc[i], alpha, tile_o[i]);
      m = m_new;
    }
    __syncthreads();  // every thread is done with ks, vs and sc before the next tile overwrites them
  }

  if (active) {
    const float inv = l > 0.f ? 1.0f / l : zero_empty ? 0.f : NAN;
#pragma unroll
    for (int i = 0; i < kDpt; ++i) {
      const int d = sub + Tpr * i;
      if (d < D) out[(tok0 + qi) * ldo + hoff + d] = from_f32<T>(acc[i] * inv);
    }
  }
}

template <class T, int Dmax, int Tpr, int Keys>
void launch_v1(const void* q, const void* k, const void* v, int64_t ld, const int32_t* mask, void* out, int64_t ldo,
               int64_t B, int64_t L, int64_t H, int64_t D, const AttentionVariant& var, cudaStream_t stream) {
  constexpr int kRows = kThreads / Tpr;
  const dim3 grid(unsigned((L + kRows - 1) / kRows), unsigned(H), unsigned(B));
  flash_attention_v1<T, Dmax, Tpr, Keys><<<grid, kThreads, 0, stream>>>(
      static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), ld, mask, static_cast<T*>(out), ldo,
      int(L), int(D), 1.0f / sqrtf(float(D)), var.kv_heads > 0 ? int(H / var.kv_heads) : 1, var.causal,
      var.zero_empty_rows);
}

bool v1_supports(int64_t D, std::string* why) {
  if (D >= 8 && D <= 256 && D % 8 == 0) return true;
  if (why) *why = "v1_simt runs head_dim 8..256 in steps of 8, not " + std::to_string(D);
  return false;
}

void run_v1(DType dt, const void* q, const void* k, const void* v, int64_t ld, const int32_t* mask, void* out,
            int64_t ldo, int64_t B, int64_t L, int64_t H, int64_t D, const AttentionVariant& var, cudaStream_t stream) {
  ZIMAGE_DISPATCH_STORAGE(dt, T, {
    if (D <= 32)
      launch_v1<T, 32, 4, 32>(q, k, v, ld, mask, out, ldo, B, L, H, D, var, stream);
    else if (D <= 64)
      launch_v1<T, 64, 4, 32>(q, k, v, ld, mask, out, ldo, B, L, H, D, var, stream);
    else if (D <= 128)
      launch_v1<T, 128, 4, 32>(q, k, v, ld, mask, out, ldo, B, L, H, D, var, stream);
    else
      launch_v1<T, 256, 8, 16>(q, k, v, ld, mask, out, ldo, B, L, H, D, var, stream);
  });
  ZIMAGE_CUDA_CHECK_LAUNCH("flash_attention_v1");
}

// The versions' words, in the order a refusal lists them.
constexpr ChoiceTable<AttentionVersion, 5> kAttentionVersionNames{{{AttentionVersion::automatic, "auto"},
                                                                   {AttentionVersion::v1_simt, "v1_simt"},
                                                                   {AttentionVersion::mma, "mma"},
                                                                   {AttentionVersion::mma_wide, "mma_wide"},
                                                                   {AttentionVersion::cudnn, "cudnn"}}};
}  // namespace

const char* attention_version_name(AttentionVersion v) { return choice_name(kAttentionVersionNames, v); }

AttentionVersion parse_attention_version(const std::string& s, const std::string& what) {
  return parse_choice(kAttentionVersionNames, s, what);
}

AttentionVersion attention_from_env() {
  return choice_from_env(kAttentionVersionNames, "ZIMAGE_ATTENTION", AttentionVersion::automatic);
}

bool attention_supports(AttentionVersion v, DType dt, int64_t D, int64_t ld, int64_t ldo, std::string* why,
                        const AttentionVariant& variant, int64_t H) {
  if (!variant.plain(H) && v != AttentionVersion::automatic && v != AttentionVersion::v1_simt) {
    if (why)
      *why = std::string(attention_version_name(v)) +
             " runs plain key-masked attention only (no grouped-query, causal or zero-row variant)";
    return false;
  }
  switch (v) {
    case AttentionVersion::automatic:
      return v1_supports(D, why);  // v1_simt is auto's last resort
    case AttentionVersion::v1_simt:
      if (dt == DType::F16) {
        if (why) *why = "v1_simt is built for float32 and bfloat16 only";
        return false;
      }
      return v1_supports(D, why);
    case AttentionVersion::mma:
      return mma_attention_supports(dt, D, ld, ldo, why);
    case AttentionVersion::mma_wide:
      return mma_wide_attention_supports(dt, D, ld, ldo, why);
    case AttentionVersion::cudnn:
      if (!cudnn_attention_supports(dt, D, ld, ldo, why)) return false;
      return cudnn_attention_available(why);
  }
  if (why) *why = "unknown attention version";
  return false;
}

AttentionVersion resolve_attention(AttentionVersion requested, DType dt, int64_t D, int64_t ld, int64_t ldo,
                                   bool mask_without_lengths, const AttentionVariant& variant, int64_t H) {
  // ZIMAGE_ATTENTION forces the DiT's plain attention; a variant (the text encoder's) keeps choosing
  // for itself, so that forcing mma for the DiT does not refuse the text encoder in the same process.
  if (requested == AttentionVersion::automatic && variant.plain(H)) {
    requested = attention_from_env();
  }
  auto runs = [&](AttentionVersion v, std::string* why) {
    if (v == AttentionVersion::cudnn && mask_without_lengths && variant.plain(H)) {
      if (why) *why = "a masked batch needs the item lengths (seqlens) for cuDNN";
      return false;
    }
    return attention_supports(v, dt, D, ld, ldo, why, variant, H);
  };
  if (requested != AttentionVersion::automatic) {
    std::string why;
    ZIMAGE_CHECK(runs(requested, &why), std::string("attention version ") + attention_version_name(requested) + ": " + why);
    return requested;
  }
  for (AttentionVersion v : kAttentionPreference)
    if (runs(v, nullptr)) return v;
  std::string why;
  runs(AttentionVersion::v1_simt, &why);
  throw Error("attention: no version runs head_dim " + std::to_string(D) + " in " + dtype_name(dt) + " (" + why + ")");
}

void flash_attention(ConstDevRows qv, ConstDevRows kv, ConstDevRows vv, const int32_t* mask, DevRows outv,
                     AttentionShape shape, cudaStream_t stream, AttentionVersion version,
                     const std::vector<int64_t>* seqlens, const AttentionVariant& variant) {
  const DType dt = qv.dt;
  check_view_dtype("flash_attention", "k", kv.dt, dt);
  check_view_dtype("flash_attention", "v", vv.dt, dt);
  check_view_dtype("flash_attention", "out", outv.dt, dt);
  ZIMAGE_CHECK(qv.ld == kv.ld && qv.ld == vv.ld, "flash_attention: q, k and v must share one row stride (" +
                                                     std::to_string(qv.ld) + ", " + std::to_string(kv.ld) + ", " +
                                                     std::to_string(vv.ld) + ")");
  const void *q = qv.data, *k = kv.data, *v = vv.data;
  void* out = outv.data;
  const int64_t ld = qv.ld, ldo = outv.ld, B = shape.B, L = shape.L, H = shape.H, D = shape.D;
  if (B == 0 || L == 0) return;
  ZIMAGE_CHECK(ld >= H * D && ldo >= H * D && L < 0x7fffffff && H <= 65535 && B <= 65535,
               "flash_attention: bad shape");
  ZIMAGE_CHECK(variant.kv_heads >= 0 && (variant.kv_heads == 0 || H % variant.kv_heads == 0),
               "flash_attention: " + std::to_string(H) + " query heads do not split into " +
                   std::to_string(variant.kv_heads) + " key/value heads");
  const AttentionVersion use =
      resolve_attention(version, dt, D, ld, ldo, mask != nullptr && seqlens == nullptr, variant, H);
  switch (use) {
    case AttentionVersion::mma:
      flash_attention_mma(qv, kv, vv, mask, outv, shape, stream);
      break;
    case AttentionVersion::mma_wide:
      flash_attention_mma_wide(qv, kv, vv, mask, outv, shape, stream);
      break;
    case AttentionVersion::cudnn:
      cudnn_attention(dt, q, k, v, ld, mask ? seqlens : nullptr, out, ldo, B, L, H, D, stream);
      break;
    default:
      run_v1(dt, q, k, v, ld, mask, out, ldo, B, L, H, D, variant, stream);
  }
  if (use == AttentionVersion::cudnn) debug_sync("flash_attention cudnn");
}

}  // namespace zimage::gpu

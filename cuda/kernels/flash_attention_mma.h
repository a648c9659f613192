// The `mma` and `mma_wide` AttentionVersions of kernels/flash_attention.h: a FlashAttention-2-style
// bf16 tensor-core kernel (mma.sync m16n8k16, ldmatrix, cp.async double buffering; sm_80 and sm_90)
// in two tilings: mma, 64 query rows a block (16 a warp); mma_wide, 128 query rows a block (32 a
// warp, FlashAttention-2's tiling: every K and V fragment serves two m-tiles), head_dim <= 128.
// The two give bitwise the same output (the same per-row arithmetic in the same order).
// Twin: reference/dit/attention.h scaled_dot_product_attention (torch SDPA math backend,
//       boolean key mask broadcast as mask[:, None, None, :]).
// Shapes and semantics as v1_simt: q, k, v [B, L, H, D] as rows of a wider buffer: token
// n = b * L + l, head h starts at n * ld + h * D (the fused to_qkv output: ld = 3C); mask [B, L]
// int32 (1 = the key takes part) or nullptr; out [B, L, H, D] with token stride ldo.
// out = softmax(q k^T / sqrt(D)) v: bf16 operands, fp32 scores, softmax and accumulation, the
// probabilities rounded to bf16 for the P V product (as FlashAttention-2), the output rounded once
// to bf16. A query row whose keys are all masked gives NaN, as torch does.
// Supported: dt BF16; D % 8 == 0 and 8 <= D <= 256 (head-dim buckets 32, 64, 128, 256 with the
// tail of the head zero-padded in shared memory; D 64 and 128 have dedicated instantiations);
// ld and ldo multiples of 8 elements; q, k, v and out 16-byte aligned (checked at the call).
// Shared memory per block (mma_attention_smem_bytes): mma 85.5 KiB at 64 < D <= 128, 99.25 KiB
// above; mma_wide 102.5 KiB at 64 < D <= 128. sm_80 and sm_90 allow that; on sm_86/sm_89 cards
// (99 KiB a block) the supports checks refuse those head_dims, naming the bytes, so that the
// dispatcher runs another version there.
#pragma once
#include <cstdint>
#include <string>

#include "common.h"

namespace zimage::gpu {

// smem_per_block for the supports checks: the current device's opt-in limit
// (device_smem_per_block_optin; no device, no limit).
inline constexpr int64_t kSmemOfDevice = -1;

// Whether the mma kernel runs this dtype, head_dim and row strides, and its block's shared memory
// fits smem_per_block bytes (0: no limit); otherwise false and one line naming mma and the reason
// in `why`. Touches no device memory.
bool mma_attention_supports(DType dt, int64_t D, int64_t ld, int64_t ldo, std::string* why = nullptr,
                            int64_t smem_per_block = kSmemOfDevice);
// The dynamic shared memory of one block at head_dim D, in bytes: mma's, or mma_wide's when `wide`.
size_t mma_attention_smem_bytes(int64_t D, bool wide);

// out = softmax(q k^T / sqrt(D)) v with the key mask (nullptr: every key takes part), enqueued on
// `stream`. q, k, v share one row stride and q's dtype, as for flash_attention. Throws one line
// naming mma for an unsupported shape or dtype, unequal strides or a misaligned pointer.
void flash_attention_mma(ConstDevRows q, ConstDevRows k, ConstDevRows v, const int32_t* mask, DevRows out,
                         AttentionShape shape, cudaStream_t stream);

// The same for mma_wide: head_dim 8..128 (136..256 is refused with a line that points to mma, which runs it).
bool mma_wide_attention_supports(DType dt, int64_t D, int64_t ld, int64_t ldo, std::string* why = nullptr,
                                 int64_t smem_per_block = kSmemOfDevice);
void flash_attention_mma_wide(ConstDevRows q, ConstDevRows k, ConstDevRows v, const int32_t* mask, DevRows out,
                              AttentionShape shape, cudaStream_t stream);

}  // namespace zimage::gpu

// Fused scaled-dot-product attention with a key-padding mask: online softmax over key tiles, no
// L x L matrix in memory.
// Twin: reference/dit/attention.h scaled_dot_product_attention (torch SDPA math backend,
//       boolean key mask broadcast as mask[:, None, None, :]).
// Shapes: q, k, v [B, L, H, D] as rows of a wider buffer with one row stride ld = q.ld: token
// n = b * L + l, head h starts at n * ld + h * D (the fused to_qkv output: ld = 3C; weight_layout.h);
// mask [B, L] int32 (1 = the key takes part) or nullptr; out [B, L, H, D] with row stride out.ld.
// softmax(q k^T / sqrt(D)) v in fp32 (scores scaled after the dot product, as the twin); a query
// row whose keys are all masked gives NaN, as torch does.
// Versions (AttentionVersion), one dispatcher (flash_attention), the same tests
// (tests/cuda/test_cuda_attention.cpp iterates kAttentionVersions) and benchmark rows:
//   v1_simt: CUDA-core fp32 math, the readable one: a 128-thread block holds 128 / Tpr query rows
//            of one (b, h), Tpr threads per row (4; 8 for D > 128) each owning interleaved dims
//            (d = sub + Tpr i); K/V tiles of 32 keys (16 for D > 128) staged in shared memory as
//            fp32; per-tile sums (docs/attention.md). fp32 and bf16, D = 8..256 in steps of 8.
//   mma:     the project's tensor-core kernel (kernels/flash_attention_mma.h): bf16 only.
//   cudnn:   cuDNN's fused SDPA forward (attention_cudnn.h): bf16 only, when cuDNN >= 9.13.1 is
//            loadable; masked batches need the item lengths (`seqlens`) and run item by item.
//   automatic: the first of kAttentionPreference that supports the shape and dtype (cudnn, mma,
//            v1_simt: fastest first, as measured by bench/cuda); ZIMAGE_ATTENTION=<name> forces one.
// Variants (AttentionVariant, Qwen3's self-attention; v1_simt only, the other versions refuse them
// with a reason, so `automatic` picks v1_simt):
//   kv_heads G < H: grouped-query attention: query head h reads K/V head h / (H / G) (repeat_kv);
//            k and v then hold G heads per token (the fused Qwen3 qkv: ld = (H + 2G) D).
//   causal:  key j takes part in query i only when j <= i (and the key mask allows it).
//   zero_empty_rows: a query row with no allowed key gives 0 (torch >= 2.5 math backend,
//            _safe_softmax: Qwen3's left-padding rows) instead of NaN.
// Twin of the variants: reference/text_encoder/qwen3_modules.h qwen3_sdpa.
// An unsupported request throws one line naming the version and why.
#pragma once
#include <string>
#include <vector>

#include "common.h"

namespace zimage::gpu {

enum class AttentionVersion { automatic, v1_simt, mma, cudnn, mma_wide };
const char* attention_version_name(AttentionVersion v);  // "auto", "v1_simt", "mma", "cudnn", "mma_wide"
// "auto" | "v1_simt" | "mma" | "mma_wide" | "cudnn"; anything else throws one line naming `what`
// (the option or the variable the word came from) and the accepted names.
AttentionVersion parse_attention_version(const std::string& s, const std::string& what = "--attention");
// ZIMAGE_ATTENTION parsed: automatic when unset or empty; a bad word throws one line naming the variable.
AttentionVersion attention_from_env();
// Beyond plain key-masked attention (see the header comment). The default is plain attention.
struct AttentionVariant {
  int64_t kv_heads = 0;          // G; 0 or H: every query head has its own K/V head
  bool causal = false;
  bool zero_empty_rows = false;
  bool plain(int64_t H) const { return (kv_heads == 0 || kv_heads == H) && !causal && !zero_empty_rows; }
};

// The concrete versions, for tests and benchmarks.
inline constexpr AttentionVersion kAttentionVersions[] = {AttentionVersion::v1_simt, AttentionVersion::mma,
                                                          AttentionVersion::cudnn, AttentionVersion::mma_wide};
// What `automatic` tries, in order: the measured speed order (docs/attention.md). mma_wide has not
// been timed on a GPU yet, so it comes after mma (which runs every shape it does): auto does not
// pick it until a GPU check has shown it faster.
inline constexpr AttentionVersion kAttentionPreference[] = {AttentionVersion::cudnn, AttentionVersion::mma,
                                                            AttentionVersion::mma_wide, AttentionVersion::v1_simt};

// Whether `v` runs this dtype, head_dim and row strides here (cudnn: also whether cuDNN loads);
// otherwise false and the reason in `why`. Touches no device memory. A non-plain `variant` (with
// H query heads) runs on v1_simt only.
bool attention_supports(AttentionVersion v, DType dt, int64_t D, int64_t ld, int64_t ldo, std::string* why = nullptr,
                        const AttentionVariant& variant = {}, int64_t H = 0);
// The version flash_attention will run: `requested` itself if it supports the shape (else throws one
// line), or for `automatic` the environment's ZIMAGE_ATTENTION if set, else the first of
// kAttentionPreference that does. Throws when none does (e.g. head_dim 12). mask_without_lengths:
// a key mask whose item lengths are unknown (cudnn cannot run it).
AttentionVersion resolve_attention(AttentionVersion requested, DType dt, int64_t D, int64_t ld, int64_t ldo,
                                   bool mask_without_lengths = false, const AttentionVariant& variant = {},
                                   int64_t H = 0);

// q, k, v: one row stride (q.ld == k.ld == v.ld: the fused qkv buffer, k = qkv.from_col(C), ...); the
// kernel's dtype is q.dt, and k, v and out must hold it too.
// seqlens: the item lengths behind `mask` (key_mask(seqlens)); needed by cudnn when mask != nullptr.
// variant.kv_heads G < H: k and v point at K/V head 0 of G heads (H % G == 0).
void flash_attention(ConstDevRows q, ConstDevRows k, ConstDevRows v, const int32_t* mask, DevRows out,
                     AttentionShape shape, cudaStream_t stream, AttentionVersion version = AttentionVersion::automatic,
                     const std::vector<int64_t>* seqlens = nullptr, const AttentionVariant& variant = {});

}  // namespace zimage::gpu

// cuDNN's fused scaled-dot-product attention forward (the `cudnn` AttentionVersion of
// kernels/flash_attention.h), through the cuDNN backend API: one SDPA_FWD operation per graph,
// no cudnn-frontend, libcudnn loaded at run time with dlopen ("libcudnn_graph.so.9", else
// "libcudnn.so.9"), so the build needs only the headers and a machine without cuDNN still runs
// the other versions.
// Twin: reference/dit/attention.h scaled_dot_product_attention (torch SDPA math backend,
//       boolean key mask broadcast as mask[:, None, None, :]).
// Computes softmax(q k^T / sqrt(D)) v per (item, head), fp32 softmax and accumulation (cuDNN's
// compute type), bf16 storage.
// Shapes: q, k, v [B, L, H, D] read in place from rows of a wider buffer: token n = b * L + l,
// head h starts at element n * ld + h * D (the fused to_qkv output: ld = 3 H D; weight_layout.h);
// out [B, L, H, D] with token stride ldo. Described to cuDNN as [B, H, S, D] with strides
// [S ld, D, ld, 1] (out: [S ldo, D, ldo, 1]).
// Key padding: seqlens (B item lengths, 1..L) masks keys [seqlens[b], L) of item b; padded query
// rows still attend to the valid keys, as torch does. Run item by item with S_q = L and
// S_kv = seqlens[b]; one call for the whole batch when every length is L (or seqlens is null).
// Limits: bf16 only (cuDNN's SDPA has no fp32; fp16 is not a storage type of this path's
// callers); D % 8 == 0 and 8 <= D <= 256 (cuDNN 9.x support matrix, Ampere/Hopper prefill:
// d <= 256); q, k, v, out 16-byte aligned and ld, ldo multiples of 8 elements; cuDNN >= 9.13.1
// (the single-op SDPA forward descriptor). The chosen engine is compiled at run time with NVRTC
// (libnvrtc.so.13 must be loadable): an execution plan is built once per shape (~0.5 s) and
// cached for the process (plan key below); one cuDNN handle per device, one workspace per
// (device, stream), grown as needed.
// Calls are serialized by a process-wide mutex (host side only; the GPU work is asynchronous).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common.h"
#include "cudnn_session.h"  // cudnn_workspace_generation, shared with conv_cudnn.h

namespace zimage::gpu {

// True when cuDNN can run attention here: compiled in (ZIMAGE_WITH_CUDNN), the library loaded,
// version >= 9.13.1 and a handle created on the current device. Otherwise false and `why` gets
// one line naming cuDNN, e.g. "cuDNN 9.10.0 is too old for the fused SDPA operation (needs >=
// 9.13.1)". The result for the current device is remembered (the first try's reason too).
bool cudnn_attention_available(std::string* why = nullptr);

// Whether the shape is supported, without touching the GPU or loading cuDNN (so true even in a
// build without cuDNN: ask cudnn_attention_available too): dt BF16,
// D % 8 == 0 and 8 <= D <= 256, ld and ldo multiples of 8 elements. Otherwise false and `why`
// gets one line naming cuDNN and the reason.
bool cudnn_attention_supports(DType dt, int64_t D, int64_t ld, int64_t ldo, std::string* why = nullptr);

// out = softmax(q k^T / sqrt(D)) v with the key padding of `seqlens` (nullptr: every key valid;
// otherwise seqlens->size() == B and 1 <= seqlens[b] <= L). Enqueued on `stream`. Throws
// zimage::Error with one line naming cuDNN and the failing step, e.g. "cuDNN SDPA:
// cudnnBackendFinalize(EXECUTION_PLAN) failed: CUDNN_STATUS_NOT_SUPPORTED (B 1, Sq 4128, Skv 4128,
// H 30, D 128)"; an unsupported shape, a misaligned pointer or cuDNN being unavailable throws too.
void cudnn_attention(DType dt, const void* q, const void* k, const void* v, int64_t ld, const std::vector<int64_t>* seqlens,
                     void* out, int64_t ldo, int64_t B, int64_t L, int64_t H, int64_t D, cudaStream_t stream);

// Execution plans in the process-wide cache (all devices), for tests.
size_t cudnn_attention_cached_plans();
// The plan-cache key of one cuDNN call (B here is the batch of that call: 1 for the per-item calls
// of a ragged batch), e.g. "bfloat16 B1 Sq256 Skv100 H2 D64 ld384 ldo128". Host only.
std::string cudnn_attention_plan_key(DType dt, int64_t B, int64_t Sq, int64_t Skv, int64_t H, int64_t D, int64_t ld,
                                     int64_t ldo);

}  // namespace zimage::gpu

// SwiGLU gate and SiLU.
// swiglu  Twin: the `silu(h1) * h3` loop of reference/dit/feed_forward.h feed_forward
//         (FeedForward.forward: w2(silu(w1(x)) * w3(x))), and the silu_(g, u) of
//         reference/text_encoder/qwen3_modules.h qwen3_mlp (gate | up fused: qwen3_cuda.h).
//         h13 [N, 2F] is the fused w13 output (columns [0, F) = w1(x), [F, 2F) = w3(x);
//         weight_layout.h) -> out [N, F]; fp32: out = h1 / (1 + exp(-h1)) * h3.
// silu    Twin: reference/nn/common.h silu (t_embedder.mlp.1, the SiLU of
//         FinalLayer.adaLN_modulation.0): y [n] = x / (1 + exp(-x)); in place allowed.
// Versions: swiglu v2 (16-byte loads and stores, rows on the grid's y axis; used when both
//           pointers are 16-byte aligned and a row of F is a whole number of 16-byte vectors),
//           else v1; v2 computes every element exactly as v1 (the same bits; test_cuda_norms checks
//           F 10240 and the ragged fallback). silu v1: a grid-stride elementwise loop.
#pragma once
#include "common.h"

namespace zimage::gpu {

void swiglu(DType dt, const void* h13, int64_t N, int64_t F, void* out, cudaStream_t stream);
void silu(DType dt, const void* x, void* y, int64_t n, cudaStream_t stream);

}  // namespace zimage::gpu

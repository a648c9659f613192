// Residual addition.
// Twin: the `h[i] += x[i]` and `out[i] += h[i]` loops of reference/text_encoder/qwen3_modules.h
//       qwen3_decoder_layer (Qwen3DecoderLayer.forward: residual + hidden_states), and the
//       residual sums of reference/vae/layers.h resnet_block_2d and vae_attention (vae_cuda.cpp).
// Shapes: x and y [n] in the storage dtype; x = x + y in fp32, rounded once.
// Versions: v1 (only): a grid-stride elementwise loop.
#pragma once
#include "common.h"

namespace zimage::gpu {

void residual_add(DType dt, void* x, const void* y, int64_t n, cudaStream_t stream);

}  // namespace zimage::gpu

// The one place where the CUDA path fuses or reorders weights (docs/cuda.md, "Weight layout").
// Everything else is uploaded as diffusers stores it (torch.nn.Linear weight [out, in], row-major).
//
//   attention.to_qkv.weight [3C, C] = cat(to_q.weight, to_k.weight, to_v.weight, dim 0)
//       One GEMM gives qkv [B*L, 3C]: q = columns [0, C), k = [C, 2C), v = [2C, 3C); head h of
//       each is the D columns starting at h * D. qk_norm_rope and flash_attention read them in
//       place with row stride 3C.
//   feed_forward.w13.weight [2F, C] = cat(w1.weight, w3.weight, dim 0)
//       One GEMM gives h13 [B*L, 2F]: w1(x) = columns [0, F), w3(x) = [F, 2F); swiglu reads both.
//
// Row concatenation of Linear weights is exact (a copy), and each output column of the fused GEMM
// is the same dot product as in the unfused one.
#pragma once
#include "core/tensor.h"
#include "nn/common.h"

namespace zimage::gpu {

// cat(weights[0], weights[1], ..., dim 0) of [out_i, in] Linear weights -> [sum out_i, in].
Tensor<float> concat_linear_weights(const std::vector<const Tensor<float>*>& weights);

// Part `which` (0 = q, 1 = k, 2 = v) of a fused qkv [..., 3C] as its own tensor
// [..., C] (the inverse of the to_qkv layout above, for host-side checks).
Tensor<float> qkv_part(const Tensor<float>& qkv, int which);

}  // namespace zimage::gpu

// Storage conversions (uploads and downloads go through fp32 on the host).
// Twin: Tensor<float>::cast / torch .to(dtype): fp32 -> bf16/fp16 round to nearest even, back exact.
// Shapes: any, n elements. Versions: v1 (only): grid-stride elementwise.
#pragma once
#include "common.h"

namespace zimage::gpu {

void convert_from_f32(DType dt, const float* src, void* dst, int64_t n, cudaStream_t stream);
void convert_to_f32(DType dt, const void* src, float* dst, int64_t n, cudaStream_t stream);

}  // namespace zimage::gpu

// GEMMs through cuBLASLt, fp32 accumulation.
// Twin: reference/nn/linear.h linear (torch.nn.Linear.forward: y = x W^T + b).
// Shapes (row-major, PyTorch order): x [N, K] (row stride ldx), W [M, K] (contiguous), bias [M]
// or nullptr -> y [N, M] (row stride ldy). All four in the storage dtype; the bias is added in
// the epilogue in fp32 before the single rounding of y.
// Mapping to cuBLASLt's column-major: y^T [M, N] = W [M, K] . x^T [K, N], i.e. A = W read
// transposed (ld K), B = x (ld ldx), D = y (ld ldy); the bias epilogue adds bias[m] to row m of
// y^T = column m of y.
// Precision (GemmOptions): compute CUBLAS_COMPUTE_32F with fp32 scale; fp32 storage runs in true
// fp32 (TF32 off) and no split-K reduction is allowed (reduction scheme NONE), unless
// allow_tf32 (CUBLAS_COMPUTE_32F_FAST_TF32) or allow_reduced_precision_reduction (every
// reduction scheme) is set. One algorithm per (shape, dtype, options, alignment), chosen by the
// heuristic once and cached, so repeated calls are bitwise identical.
// Versions: v1 (only): cublasLtMatmul with the heuristic's first algorithm.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "common.h"
#include "device_tensor.h"
#include "step_profile.h"

namespace zimage::gpu {

struct GemmOptions {
  bool allow_tf32 = false;
  bool allow_reduced_precision_reduction = false;
};

// One stream, one cuBLASLt handle and workspace, the algorithm cache and a staging buffer.
class Runtime {
 public:
  Runtime();  // uses the current device; throws when there is none
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  cudaStream_t stream() const { return stream_; }
  void sync() const;
  DeviceBuffer& staging() { return staging_; }
  // Page-locked host staging for a step's asynchronous uploads and its one download.
  PinnedArena& pinned() { return pinned_; }
  // The per-step breakdown (step_profile.h): off unless enabled.
  StepProfile& profile() { return profile_; }

  // y = x W^T (+ bias); see the header comment.
  void linear(DType dt, const void* x, int64_t ldx, const void* w, const void* bias, void* y, int64_t ldy, int64_t N,
              int64_t M, int64_t K, const GemmOptions& opts = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  cudaStream_t stream_ = nullptr;
  DeviceBuffer staging_;
  PinnedArena pinned_;
  StepProfile profile_;
};

}  // namespace zimage::gpu

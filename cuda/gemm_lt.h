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
// reduction scheme) is set. One algorithm per (shape, dtype, options, alignment), chosen once and
// cached per Runtime, so repeated calls through one Runtime are bitwise identical.
// Choosing the algorithm (GemmAlgo, docs/cuda.md "GEMM algorithms"):
//   heuristic: the heuristic's first algorithm (the default);
//   timed: the heuristic's first kTimedCandidates algorithms are each run on the call's own operands
//     (one warm-up, then kTimedReps event-timed runs) the first time a key comes, and the fastest
//     by pick_timed_algo is cached. Every candidate honours the options above (no split-K without
//     allow_reduced_precision_reduction), so each is numerically a valid fp32-accumulated GEMM, but two
//     Runtimes (two processes, or the transformer, text encoder and VAE of one process, each with its
//     own Runtime) may pick different ones: bitwise equality holds within a Runtime, not across them.
//     The first call of a key synchronizes the stream; a call made while the stream is being
//     captured into a CUDA graph cannot time, and takes (and caches) the heuristic's first.
// Versions: v1 (only): cublasLtMatmul.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "common.h"
#include "device_tensor.h"
#include "step_profile.h"

namespace zimage::gpu {

// y [N, M] = x [N, K] . W [M, K]^T: the sizes of one Runtime::linear.
struct GemmShape {
  int64_t N = 0, M = 0, K = 0;
};

enum class GemmAlgo { automatic, heuristic, timed };
const char* gemm_algo_name(GemmAlgo a);  // "auto", "heuristic", "timed"
// Throws one line naming `what` and the accepted names for an unknown name.
GemmAlgo parse_gemm_algo(const std::string& s, const std::string& what = "the GEMM algorithm choice");
// automatic -> ZIMAGE_GEMM_ALGO (heuristic or timed) when set, else heuristic; others unchanged.
// The variable is read at each call (linear calls this for every GEMM). An unknown
// ZIMAGE_GEMM_ALGO throws one line naming it.
GemmAlgo requested_gemm_algo(GemmAlgo a);

constexpr double kTimedMargin = 0.01;
// The timed choice: the heuristic's first kTimedCandidates algorithms, kTimedReps timed runs each.
constexpr int kTimedCandidates = 8;
constexpr int kTimedReps = 3;
// Which candidate `timed` keeps, from each candidate's median time in ms (in the heuristic's
// order; +inf or NaN for a candidate that failed to run): the fastest, unless it is less than
// `margin` (a fraction) faster than the heuristic's first, which is then kept (a near tie is not
// worth leaving the heuristic's choice for, and timing noise would make the pick flip). Ties go to
// the earlier candidate. Throws one line when no candidate has a finite time.
size_t pick_timed_algo(const std::vector<double>& median_ms, double margin = kTimedMargin);

struct GemmOptions {
  bool allow_tf32 = false;
  bool allow_reduced_precision_reduction = false;
  GemmAlgo algo = GemmAlgo::automatic;  // requested_gemm_algo resolves it at each call
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

  // y = x W^T (+ bias); see the header comment. x: N rows of K values (row stride x.ld), y: N rows
  // of M values (row stride y.ld), both in the GEMM's dtype (x.dt); w: [M, K] contiguous and bias
  // [M] or nullptr, in that dtype too.
  void linear(ConstDevRows x, const void* w, const void* bias, DevRows y, GemmShape shape,
              const GemmOptions& opts = {});

  // The algorithm cache (tests, benchmarks): keys held; for `timed`, the keys chosen that way (timed
  // when the heuristic offered more than one candidate), the candidates run, and the keys that kept
  // a candidate other than the heuristic's first.
  struct GemmAlgoCounts {
    size_t cached = 0;
    uint64_t timed_keys = 0, candidates_run = 0, not_first = 0;
  };
  GemmAlgoCounts gemm_algo_counts() const;

 private:
  void init();  // the constructor's part after the stream: the pool threshold, cuBLASLt, the workspace
  struct Impl;
  std::unique_ptr<Impl> impl_;
  cudaStream_t stream_ = nullptr;
  DeviceBuffer staging_;
  PinnedArena pinned_;
  StepProfile profile_;
};

}  // namespace zimage::gpu

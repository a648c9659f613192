// The per-step breakdown (docs/cuda.md, "CUDA benchmarks"): CUDA events around every GEMM and every attention call
// of a forward, summed per part after the step's final synchronization. Off by default (no events,
// no cost); the benchmark's breakdown row turns it on for its own steps only, so the timed rows
// are never perturbed by the events.
//   gemm:         Runtime::linear (cuBLASLt), every call
//   attention:    flash_attention as run_blocks calls it (any version)
//   norms:        run_blocks' row kernels: rms_norm_modulate, gated_residual_rms_norm, gated_residual
//   qk_norm_rope: run_blocks' per-head q/k RMSNorm + RoPE
//   swiglu:       run_blocks' silu(h1) * h3
//   the rest (embedders, unify, the final layer, uploads, copies, launch gaps) is the step's time
//   minus all of them.
#pragma once
#include <array>
#include <vector>

#include "common.h"

namespace zimage::gpu {

class StepProfile {
 public:
  enum Part { kGemm = 0, kAttention = 1, kNorms = 2, kQkNormRope = 3, kSwiglu = 4, kParts = 5 };
  // "gemm", "attention", "norms", "qk_norm_rope", "swiglu" (the benchmark's counters: NAME_ms).
  static const char* part_name(Part p);
  StepProfile() = default;
  ~StepProfile();
  StepProfile(const StepProfile&) = delete;
  StepProfile& operator=(const StepProfile&) = delete;

  void enable(bool on) { on_ = on; }
  bool enabled() const { return on_; }

  // Records a start event for `part` on `s` (when enabled); end() records its stop event.
  void begin(Part part, cudaStream_t s);
  void end(cudaStream_t s);
  // Milliseconds per part since the last collect(); synchronizes on the last stop event. Resets.
  std::array<double, kParts> collect();
  size_t intervals() const { return used_; }

 private:
  struct Interval {
    cudaEvent_t start = nullptr, stop = nullptr;
    Part part = kGemm;
  };
  bool on_ = false;
  std::vector<Interval> pool_;  // events created once, reused step after step
  size_t used_ = 0;
  bool open_ = false;
  bool stop_failed_ = false;  // an end() whose event record failed: collect() says so
};

// RAII begin/end, doing nothing when the profile is null or off.
class ProfileScope {
 public:
  ProfileScope(StepProfile* p, StepProfile::Part part, cudaStream_t s) : p_(p && p->enabled() ? p : nullptr), s_(s) {
    if (p_) p_->begin(part, s_);
  }
  ~ProfileScope() {
    if (p_) p_->end(s_);
  }
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  StepProfile* p_;
  cudaStream_t s_;
};

}  // namespace zimage::gpu

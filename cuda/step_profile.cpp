#include "step_profile.h"

#include <utility>

#include "core/error.h"

namespace zimage::gpu {

const char* StepProfile::part_name(Part p) {
  switch (p) {
    case kGemm: return "gemm";
    case kAttention: return "attention";
    case kNorms: return "norms";
    case kQkNormRope: return "qk_norm_rope";
    case kSwiglu: return "swiglu";
    default: return "?";
  }
}

StepProfile::~StepProfile() {
  for (auto& i : pool_) {
    if (i.start) cudaEventDestroy(i.start);
    if (i.stop) cudaEventDestroy(i.stop);
  }
}

void StepProfile::begin(Part part, cudaStream_t s) {
  ZIMAGE_CHECK(!open_, "StepProfile: begin() inside an open interval");
  if (used_ == pool_.size()) {
    Interval i;
    ZIMAGE_CUDA_CHECK(cudaEventCreate(&i.start));
    if (const cudaError_t e = cudaEventCreate(&i.stop); e != cudaSuccess) {
      cudaEventDestroy(i.start);
      check_cuda(e, "cudaEventCreate(stop)", __FILE__, __LINE__);
    }
    pool_.push_back(i);
  }
  pool_[used_].part = part;
  ZIMAGE_CUDA_CHECK(cudaEventRecord(pool_[used_].start, s));
  open_ = true;
}

void StepProfile::end(cudaStream_t s) {
  if (!open_) return;
  // No throw: called from a destructor. A failed record is cleared (it must not be reported by the
  // next kernel's launch check) and remembered for collect().
  if (cudaEventRecord(pool_[used_].stop, s) != cudaSuccess) {
    (void)cudaGetLastError();
    stop_failed_ = true;
  }
  ++used_;
  open_ = false;
}

// Every interval is recorded on the one stream of the Runtime (linear, and run_blocks' kernels),
// so the last stop event completing means all of them have.
std::array<double, StepProfile::kParts> StepProfile::collect() {
  std::array<double, kParts> ms{};
  const size_t n = used_;
  used_ = 0;  // reset even if a query below throws
  open_ = false;
  const bool stop_failed = std::exchange(stop_failed_, false);
  ZIMAGE_CHECK(!stop_failed, "step profile: an interval's stop event could not be recorded; its times are unknown");
  if (n > 0) ZIMAGE_CUDA_CHECK(cudaEventSynchronize(pool_[n - 1].stop));
  for (size_t k = 0; k < n; ++k) {
    float t = 0;
    ZIMAGE_CUDA_CHECK(cudaEventElapsedTime(&t, pool_[k].start, pool_[k].stop));
    ms[pool_[k].part] += double(t);
  }
  return ms;
}

}  // namespace zimage::gpu

// Shared by the `cuda` tests: the skip when there is no GPU, one Runtime per process, device
// round trips, guard bands around outputs, and the T3 / T4 expectations with printed headroom.
#pragma once
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "device_tensor.h"
#include "gemm_lt.h"
#include "support/test_support.h"

// First statement of every `cuda` test: skips with "no CUDA device: <reason>" when
// cudaGetDeviceCount fails or returns 0.
#define ZIMAGE_REQUIRE_CUDA()                                           \
  do {                                                                  \
    std::string why_;                                                   \
    if (!::zimage::gpu::device_available(&why_)) GTEST_SKIP() << "no CUDA device: " << why_; \
  } while (0)

namespace zimage::testing {

using gpu::DType;

// One Runtime for the process, created on first use and deliberately never destroyed (no CUDA
// calls during static destruction).
inline gpu::Runtime& rt() {
  static gpu::Runtime* r = new gpu::Runtime();
  return *r;
}

inline gpu::DeviceTensor to_device(const Tensor<float>& t, DType dt) {
  return gpu::upload(t, dt, rt().staging(), rt().stream());
}
// Host -> device bytes on the runtime's stream, waited for (test set-up: masks, ids, flags).
inline void copy_to_device(void* dst, const void* src, size_t bytes) {
  ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, rt().stream()));
  rt().sync();
}
inline void copy_to_host(void* dst, const void* src, size_t bytes) {
  ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, rt().stream()));
  rt().sync();
}
inline void memset_device(void* dst, int value, size_t bytes) {
  ZIMAGE_CUDA_CHECK(cudaMemsetAsync(dst, value, bytes, rt().stream()));
  rt().sync();
}
inline Tensor<float> to_host(const void* p, DType dt, Shape shape) {
  return gpu::download(p, dt, std::move(shape), rt().staging(), rt().stream());
}
// fp32 values rounded to dt (round to nearest even) and back: what the device stores.
inline Tensor<float> round_to(DType dt, const Tensor<float>& t) {
  if (dt == DType::F32) return t;
  const gpu::DeviceTensor d = to_device(t, dt);
  return to_host(d.data(), dt, t.shape);
}

// A device output with guard bands: kGuardBytes before and after, filled with 0xA5 (the output
// region too, so an element the kernel forgets is visible as -2.9e-16 / 0xA5A5).
class Guarded {
 public:
  static constexpr size_t kGuardBytes = 4096;
  Guarded(DType dt, Shape shape) : dt_(dt), shape_(std::move(shape)) {
    bytes_ = size_t(shape_numel(shape_)) * gpu::dtype_size(dt);
    buf_ = gpu::DeviceBuffer(bytes_ + 2 * kGuardBytes);
    // On the runtime's stream (non-blocking: the legacy default stream would not order it before
    // the kernel under test), then waited for.
    ZIMAGE_CUDA_CHECK(cudaMemsetAsync(buf_.get(), 0xA5, buf_.bytes(), rt().stream()));
    rt().sync();
  }
  void* data() const { return static_cast<char*>(buf_.get()) + kGuardBytes; }
  Tensor<float> host() const { return to_host(data(), dt_, shape_); }
  // EXPECTs both guard bands untouched.
  void expect_guards_intact(const std::string& what) const {
    rt().sync();
    std::vector<unsigned char> all(buf_.bytes());
    ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(all.data(), buf_.get(), all.size(), cudaMemcpyDeviceToHost, rt().stream()));
    rt().sync();
    int64_t bad = 0, first = -1;
    for (size_t i = 0; i < all.size(); ++i) {
      if (i >= kGuardBytes && i < kGuardBytes + bytes_) continue;
      if (all[i] != 0xA5 && bad++ == 0) first = int64_t(i) - int64_t(kGuardBytes);
    }
    std::printf("  %s: guard bands %s (%lld bytes changed)\n", what.c_str(), bad ? "WRITTEN" : "intact", (long long)bad);
    EXPECT_EQ(bad, 0) << what << ": " << bad << " guard bytes overwritten, the first at byte offset " << first
                      << " from the output start (output is " << bytes_ << " bytes)";
  }

 private:
  DType dt_;
  Shape shape_;
  size_t bytes_ = 0;
  gpu::DeviceBuffer buf_;
};

inline std::string dtype_tag(DType dt) { return dt == DType::F32 ? "f32" : dt == DType::BF16 ? "bf16" : "f16"; }

// T3 (fp32) or T4 (bf16: the absolute chain bound) for `ops`, printed with headroom.
inline void expect_tier(const std::string& what, DType dt, const Tensor<float>& got, const Tensor<double>& ref,
                        const std::vector<numerics::Op>& ops) {
  const numerics::Tier tier = dt == DType::F32 ? numerics::Tier::T3 : numerics::Tier::T4;
  expect_within(what + " " + numerics::tier_name(tier), numerics::compare(got, ref), numerics::budget_for(tier, ops));
}

// T4 peer rule: cand and peer both against the fp64 reference, floor = the chain's T3 budget.
inline void expect_peer(const std::string& what, const Tensor<float>& cand, const Tensor<float>& peer,
                        const Tensor<double>& ref, const std::vector<numerics::Op>& ops) {
  const numerics::Comparison c = numerics::compare(cand, ref), p = numerics::compare(peer, ref);
  const double floor = numerics::budget_for(numerics::Tier::T3, ops).rel_rms;
  const std::string line = what + " T4 peer: " + numerics::describe_peer(c, p, floor);
  std::printf("  %s\n", line.c_str());
  EXPECT_TRUE(numerics::passes_peer(c, p, floor)) << line << "\n  seed " << test_seed();
}

// Both checks of a bf16 result (or the T3 check of an fp32 one).
inline void expect_t3_or_t4(const std::string& what, DType dt, const Tensor<float>& got, const Tensor<float>* peer,
                            const Tensor<double>& ref, const std::vector<numerics::Op>& ops) {
  expect_tier(what, dt, got, ref, ops);
  if (dt != DType::F32 && peer) expect_peer(what, got, *peer, ref, ops);
}

inline numerics::Op op_linear(double K) { return {"linear(K=" + std::to_string(int64_t(K)) + ")", 1, K, false}; }
inline numerics::Op op_rms(double C) { return {"rms_norm(K=" + std::to_string(int64_t(C)) + ")", 3, C, true}; }
inline numerics::Op op_elem(const std::string& n, bool transcendental = false) { return {n, 1, 1, transcendental}; }

}  // namespace zimage::testing

namespace zimage::testing {
// Uploads t into the output region of a Guarded buffer (for in-place kernels).
inline void upload_into_guarded(const Tensor<float>& t, DType dt, Guarded& g) {
  gpu::upload_into(t, dt, g.data(), rt().staging(), rt().stream());
}
}  // namespace zimage::testing

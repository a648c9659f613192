// Device memory: an owning buffer and a dtype-tagged tensor, shapes in PyTorch order.
// Uploads convert fp32 host values to the storage dtype on the device (round to nearest even),
// downloads convert back (exact).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common.h"
#include "core/tensor.h"

namespace zimage::gpu {

// ---- Device memory accounting (docs/cuda.md, "Resident models and memory") ------------------
// Two figures, each with its high-water mark since the last reset:
//   allocated    bytes this process holds through DeviceBuffer and the cuDNN workspace (exact; no
//                CUDA call: counted on allocation and free).
//   device_used  total - free of cudaMemGetInfo: everything the GPU holds, this process's CUDA
//                context, library handles and the stream-ordered pool's cached blocks included
//                (and any other process's). Sampled only while watching: after each allocation of
//                ours and at sample_device_memory(); its peak is what the 24 GB goal is judged on.
struct MemoryPeaks {
  size_t allocated = 0, peak_allocated = 0;
  size_t peak_device_used = 0;  // 0 until a sample was taken
  int64_t samples = 0;
  void on_alloc(size_t bytes) { allocated += bytes, peak_allocated = std::max(peak_allocated, allocated); }
  void on_free(size_t bytes) { allocated -= std::min(bytes, allocated); }
  void on_sample(size_t device_used) { peak_device_used = std::max(peak_device_used, device_used), ++samples; }
  void reset_peaks() { peak_allocated = allocated, peak_device_used = 0, samples = 0; }
};
// The process's figures (a copy, taken under the accounting lock).
MemoryPeaks device_memory();
// Starts (or stops) sampling device_used; starting resets both peaks.
void watch_device_memory(bool on);
// One device_used sample now, when watching (a stage boundary: the libraries allocate inside
// their calls too).
void sample_device_memory();
// For allocations made outside DeviceBuffer (the cuDNN workspace).
void note_device_alloc(size_t bytes);
// cudaMalloc (cudaMallocAsync on `stream` when `ordered`) under ZIMAGE_CUDA_MEMORY_LIMIT, with the
// out-of-memory line below (the error cleared) instead of a CUDA error; the caller notes it
// (note_device_alloc) and frees it. What DeviceBuffer and the cuDNN workspace allocate with.
void* device_alloc(size_t bytes, cudaStream_t stream = nullptr, bool ordered = false);
void note_device_free(size_t bytes);

// ---- Out of device memory (docs/cuda.md, "Resident models and memory") ----------------------
// A DeviceBuffer that cannot be allocated throws one line naming the component that asked (the
// innermost MemoryScope alive on this thread, else "the CUDA path") and the size, e.g.
//   out of GPU memory: the transformer (upload) asked for 150.0 MiB; 80.3 MiB of 81559.0 MiB free
// ZIMAGE_CUDA_MEMORY_LIMIT=N[K|M|G] (binary units) caps the bytes this process's buffers hold
// (`allocated` above, not the CUDA context or the libraries' own memory): past it an allocation
// fails the same way, naming the limit. It emulates a smaller card (e.g. 24G on an 80 GB GPU) and
// lets the tests reach the out-of-memory path.
class MemoryScope {
 public:
  explicit MemoryScope(std::string component);
  ~MemoryScope();
  MemoryScope(const MemoryScope&) = delete;
  MemoryScope& operator=(const MemoryScope&) = delete;
  // The innermost scope's component on this thread, or "the CUDA path".
  static std::string current();
};
// The line above. `limit` > 0: the limit's form ("... asked for X past ZIMAGE_CUDA_MEMORY_LIMIT
// (L MiB; H MiB held)", with `free_bytes` the bytes held).
std::string out_of_memory_message(const std::string& component, size_t bytes, size_t free_bytes, size_t total_bytes,
                                  size_t limit = 0);
// Parses a ZIMAGE_CUDA_MEMORY_LIMIT value: digits with an optional K, M or G (x 1024^k); throws
// one line naming the variable otherwise, or for 0.
size_t parse_memory_limit(const std::string& value);
// The process's limit (read once), 0 for none.
size_t memory_limit();

// Device bytes, freed on destruction; move-only. Without a stream: cudaMalloc / cudaFree (which
// waits for the device). With a stream: cudaMallocAsync / cudaFreeAsync on it (stream-ordered: the
// free happens after the work queued before it, and the host does not wait): the forward's
// per-call buffers use this, so that a step has no hidden device-wide synchronization.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  DeviceBuffer(size_t bytes, cudaStream_t stream);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : p_(std::exchange(o.p_, nullptr)),
        bytes_(std::exchange(o.bytes_, 0)),
        stream_(std::exchange(o.stream_, nullptr)),
        ordered_(std::exchange(o.ordered_, false)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* get() const { return p_; }
  size_t bytes() const { return bytes_; }
  template <class U>
  U* as() const { return static_cast<U*>(p_); }
  // Grows (never shrinks) to at least `bytes`; contents are lost when it grows. A stream-ordered
  // buffer stays stream-ordered on its stream.
  void reserve(size_t bytes);

 private:
  void release() noexcept;
  void* p_ = nullptr;
  size_t bytes_ = 0;
  cudaStream_t stream_ = nullptr;
  bool ordered_ = false;
};

struct DeviceTensor {
  DType dtype = DType::F32;
  Shape shape;
  DeviceBuffer buf;

  DeviceTensor() = default;
  DeviceTensor(DType d, Shape s) : dtype(d), shape(std::move(s)), buf(size_t(shape_numel(shape)) * dtype_size(d)) {}
  // Stream-ordered allocation and free (DeviceBuffer).
  DeviceTensor(DType d, Shape s, cudaStream_t stream)
      : dtype(d), shape(std::move(s)), buf(size_t(shape_numel(shape)) * dtype_size(d), stream) {}
  int64_t numel() const { return shape_numel(shape); }
  bool empty() const { return buf.get() == nullptr; }
  void* data() const { return buf.get(); }
};

// The bookkeeping of PinnedArena (host-only, tested without a GPU): regions handed out front to
// back, each starting on kAlign bytes, within a capacity fixed by reset().
struct ArenaCursor {
  static constexpr size_t kAlign = 256;
  size_t capacity = 0, used = 0;
  static size_t rounded(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }
  // The room regions of these sizes take together.
  static size_t footprint(const std::vector<size_t>& sizes);
  // The offset of the next region of `bytes`; throws one line (naming `what`) past the capacity.
  size_t take(size_t bytes, const char* what);
};

// Page-locked host memory (cudaMallocHost) that a step stages its inputs and outputs in, so that
// its copies run asynchronously instead of waiting for the device after each one. reset() reuses
// the memory: the caller makes sure no copy from or to it is still queued (the step's final sync).
class PinnedArena {
 public:
  PinnedArena() = default;
  ~PinnedArena();
  PinnedArena(const PinnedArena&) = delete;
  PinnedArena& operator=(const PinnedArena&) = delete;
  // Empties the arena, with room for at least `bytes` (reallocated when larger).
  void reset(size_t bytes);
  // The next n floats (ArenaCursor::kAlign-aligned) of the room reset() made.
  float* take(size_t n, const char* what);

 private:
  void* base_ = nullptr;
  ArenaCursor cursor_;
};

// Host fp32 -> device storage dtype. `staging` is an fp32 scratch buffer (grown as needed).
DeviceTensor upload(const Tensor<float>& t, DType dt, DeviceBuffer& staging, cudaStream_t stream);
void upload_into(const Tensor<float>& t, DType dt, void* dst, DeviceBuffer& staging, cudaStream_t stream);
// The same without waiting: t is copied into `pinned` first, then copied and converted on the
// stream. `staging` is reused in stream order (reserve it beforehand so that it does not grow in
// the middle of a step: growing frees it with cudaFree, which waits for the device).
void upload_into_async(const Tensor<float>& t, DType dt, void* dst, PinnedArena& pinned, DeviceBuffer& staging,
                       cudaStream_t stream);
// Device storage -> host fp32 (synchronizes the stream).
Tensor<float> download(const void* src, DType dt, Shape shape, DeviceBuffer& staging, cudaStream_t stream);
inline Tensor<float> download(const DeviceTensor& t, DeviceBuffer& staging, cudaStream_t stream) {
  return download(t.data(), t.dtype, t.shape, staging, stream);
}

}  // namespace zimage::gpu

// Device memory: an owning buffer and a dtype-tagged tensor, shapes in PyTorch order.
// Uploads convert fp32 host values to the storage dtype on the device (round to nearest even),
// downloads convert back (exact).
#pragma once
#include <utility>

#include "common.h"
#include "core/tensor.h"

namespace zimage::gpu {

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

// Host fp32 -> device storage dtype. `staging` is an fp32 scratch buffer (grown as needed).
DeviceTensor upload(const Tensor<float>& t, DType dt, DeviceBuffer& staging, cudaStream_t stream);
void upload_into(const Tensor<float>& t, DType dt, void* dst, DeviceBuffer& staging, cudaStream_t stream);
// Device storage -> host fp32 (synchronizes the stream).
Tensor<float> download(const void* src, DType dt, Shape shape, DeviceBuffer& staging, cudaStream_t stream);
inline Tensor<float> download(const DeviceTensor& t, DeviceBuffer& staging, cudaStream_t stream) {
  return download(t.data(), t.dtype, t.shape, staging, stream);
}

}  // namespace zimage::gpu

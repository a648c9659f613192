// Device memory: an owning buffer and a dtype-tagged tensor, shapes in PyTorch order.
// Uploads convert fp32 host values to the storage dtype on the device (round to nearest even),
// downloads convert back (exact).
#pragma once
#include <utility>

#include "common.h"
#include "core/tensor.h"

namespace zimage::gpu {

// cudaMalloc'd bytes, freed on destruction; move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* get() const { return p_; }
  size_t bytes() const { return bytes_; }
  template <class U>
  U* as() const { return static_cast<U*>(p_); }
  // Grows (never shrinks) to at least `bytes`; contents are lost when it grows.
  void reserve(size_t bytes);

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

struct DeviceTensor {
  DType dtype = DType::F32;
  Shape shape;
  DeviceBuffer buf;

  DeviceTensor() = default;
  DeviceTensor(DType d, Shape s) : dtype(d), shape(std::move(s)), buf(size_t(shape_numel(shape)) * dtype_size(d)) {}
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

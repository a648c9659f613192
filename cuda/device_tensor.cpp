#include "device_tensor.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/convert.h"

namespace zimage::gpu {

namespace {

struct Accounting {
  std::mutex mu;
  MemoryPeaks peaks;
  std::atomic<bool> watching{false};
};
Accounting& accounting() {
  static Accounting* a = new Accounting();  // never destroyed: buffers may be freed during static destruction
  return *a;
}

}  // namespace

MemoryPeaks device_memory() {
  Accounting& a = accounting();
  std::lock_guard<std::mutex> lock(a.mu);
  return a.peaks;
}

void watch_device_memory(bool on) {
  Accounting& a = accounting();
  {
    std::lock_guard<std::mutex> lock(a.mu);
    if (on) a.peaks.reset_peaks();
  }
  a.watching = on;
  if (on) sample_device_memory();
}

void sample_device_memory() {
  Accounting& a = accounting();
  if (!a.watching) return;
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {  // a sample is not worth an error
    (void)cudaGetLastError();
    return;
  }
  std::lock_guard<std::mutex> lock(a.mu);
  a.peaks.on_sample(total_b - free_b);
}

void note_device_alloc(size_t bytes) {
  Accounting& a = accounting();
  {
    std::lock_guard<std::mutex> lock(a.mu);
    a.peaks.on_alloc(bytes);
  }
  sample_device_memory();
}

void note_device_free(size_t bytes) {
  Accounting& a = accounting();
  std::lock_guard<std::mutex> lock(a.mu);
  a.peaks.on_free(bytes);
}

namespace {

thread_local std::vector<std::string> memory_scopes;

std::string mib(size_t bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f MiB", double(bytes) / 1048576.0);
  return b;
}

}  // namespace

void* device_alloc(size_t bytes, cudaStream_t stream, bool ordered) {
  if (const size_t limit = memory_limit(); limit > 0) {
    const size_t held = device_memory().allocated;
    if (held + bytes > limit) throw Error(out_of_memory_message(MemoryScope::current(), bytes, held, 0, limit));
  }
  void* p = nullptr;
  const cudaError_t e = ordered ? cudaMallocAsync(&p, bytes, stream) : cudaMalloc(&p, bytes);
  if (e == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  // not sticky: clear it so the next call does not report it again
    size_t free_b = 0, total_b = 0;
    (void)cudaMemGetInfo(&free_b, &total_b);
    throw Error(out_of_memory_message(MemoryScope::current(), bytes, free_b, total_b));
  }
  check_cuda(e, ordered ? "cudaMallocAsync" : "cudaMalloc", __FILE__, __LINE__);
  return p;
}

MemoryScope::MemoryScope(std::string component) { memory_scopes.push_back(std::move(component)); }
MemoryScope::~MemoryScope() { memory_scopes.pop_back(); }
std::string MemoryScope::current() { return memory_scopes.empty() ? "the CUDA path" : memory_scopes.back(); }

std::string out_of_memory_message(const std::string& component, size_t bytes, size_t free_bytes, size_t total_bytes,
                                  size_t limit) {
  if (limit > 0)
    return "out of GPU memory: " + component + " asked for " + mib(bytes) + " past ZIMAGE_CUDA_MEMORY_LIMIT (" +
           mib(limit) + "; " + mib(free_bytes) + " held)";
  return "out of GPU memory: " + component + " asked for " + mib(bytes) + "; " + mib(free_bytes) + " of " +
         mib(total_bytes) + " free";
}

size_t parse_memory_limit(const std::string& value) {
  const std::string what = "ZIMAGE_CUDA_MEMORY_LIMIT '" + value + "'";
  size_t digits = 0;
  while (digits < value.size() && value[digits] >= '0' && value[digits] <= '9') ++digits;
  const std::string unit = value.substr(digits);
  ZIMAGE_CHECK(digits > 0 && digits <= 15 && (unit.empty() || unit == "K" || unit == "M" || unit == "G"),
               what + " must be a whole number of bytes with an optional K, M or G, e.g. 24G");
  size_t n = size_t(std::stoull(value.substr(0, digits)));
  const int shift = unit == "K" ? 10 : unit == "M" ? 20 : unit == "G" ? 30 : 0;
  ZIMAGE_CHECK(n > 0, what + " must be positive");
  ZIMAGE_CHECK(n <= (SIZE_MAX >> shift), what + " is too large");
  return n << shift;
}

size_t memory_limit() {
  static const size_t limit = [] {
    const char* e = std::getenv("ZIMAGE_CUDA_MEMORY_LIMIT");
    return e && *e ? parse_memory_limit(e) : size_t(0);
  }();
  return limit;
}

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (!bytes) return;
  p_ = device_alloc(bytes, nullptr, false);
  note_device_alloc(bytes);
}

DeviceBuffer::DeviceBuffer(size_t bytes, cudaStream_t stream) : bytes_(bytes), stream_(stream), ordered_(true) {
  if (!bytes) return;
  p_ = device_alloc(bytes, stream, true);
  note_device_alloc(bytes);
}

// No throw from a destructor; a failing free leaves the context broken anyway.
void DeviceBuffer::release() noexcept {
  if (!p_) return;
  if (ordered_)
    cudaFreeAsync(p_, stream_);
  else
    cudaFree(p_);
  note_device_free(bytes_);
  p_ = nullptr;
}

DeviceBuffer::~DeviceBuffer() { release(); }

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    release();
    p_ = std::exchange(o.p_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
    stream_ = std::exchange(o.stream_, nullptr);
    ordered_ = std::exchange(o.ordered_, false);
  }
  return *this;
}

void DeviceBuffer::reserve(size_t bytes) {
  if (bytes <= bytes_) return;
  *this = ordered_ ? DeviceBuffer(bytes, stream_) : DeviceBuffer(bytes);
}

void upload_into(const Tensor<float>& t, DType dt, void* dst, DeviceBuffer& staging, cudaStream_t stream) {
  const size_t n = size_t(t.numel());
  if (n == 0) return;
  if (dt == DType::F32) {
    ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(dst, t.ptr(), n * sizeof(float), cudaMemcpyHostToDevice, stream));
    ZIMAGE_CUDA_CHECK(cudaStreamSynchronize(stream));  // the host tensor may go away after return
    return;
  }
  staging.reserve(n * sizeof(float));
  ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(staging.get(), t.ptr(), n * sizeof(float), cudaMemcpyHostToDevice, stream));
  convert_from_f32(dt, staging.as<float>(), dst, int64_t(n), stream);
  ZIMAGE_CUDA_CHECK(cudaStreamSynchronize(stream));  // staging is reused by the next upload
}

size_t ArenaCursor::footprint(const std::vector<size_t>& sizes) {
  size_t total = 0;
  for (const size_t b : sizes) total += rounded(b);
  return total;
}

size_t ArenaCursor::take(size_t bytes, const char* what) {
  const size_t at = used, end = used + rounded(bytes);
  ZIMAGE_CHECK(end <= capacity, std::string("pinned staging: ") + what + " needs " + std::to_string(bytes) +
                                    " bytes, the step reserved " + std::to_string(capacity - used) + " more");
  used = end;
  return at;
}

PinnedArena::~PinnedArena() {
  if (base_) cudaFreeHost(base_);
}

void PinnedArena::reset(size_t bytes) {
  if (bytes > cursor_.capacity) {
    if (base_) ZIMAGE_CUDA_CHECK(cudaFreeHost(base_));
    base_ = nullptr;
    cursor_.capacity = 0;
    ZIMAGE_CUDA_CHECK(cudaMallocHost(&base_, bytes));
    cursor_.capacity = bytes;
  }
  cursor_.used = 0;
}

float* PinnedArena::take(size_t n, const char* what) {
  return reinterpret_cast<float*>(static_cast<char*>(base_) + cursor_.take(n * sizeof(float), what));
}

void upload_into_async(const Tensor<float>& t, DType dt, void* dst, PinnedArena& pinned, DeviceBuffer& staging,
                       cudaStream_t stream) {
  const size_t n = size_t(t.numel());
  if (n == 0) return;
  float* host = pinned.take(n, "an upload");
  std::copy(t.data.begin(), t.data.end(), host);
  if (dt == DType::F32) {
    ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(dst, host, n * sizeof(float), cudaMemcpyHostToDevice, stream));
    return;
  }
  staging.reserve(n * sizeof(float));
  ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(staging.get(), host, n * sizeof(float), cudaMemcpyHostToDevice, stream));
  convert_from_f32(dt, staging.as<float>(), dst, int64_t(n), stream);
}

DeviceTensor upload(const Tensor<float>& t, DType dt, DeviceBuffer& staging, cudaStream_t stream) {
  DeviceTensor d(dt, t.shape);
  upload_into(t, dt, d.data(), staging, stream);
  return d;
}

Tensor<float> download(const void* src, DType dt, Shape shape, DeviceBuffer& staging, cudaStream_t stream) {
  Tensor<float> out(std::move(shape));
  const size_t n = size_t(out.numel());
  if (n == 0) return out;
  const float* from = static_cast<const float*>(src);
  if (dt != DType::F32) {
    staging.reserve(n * sizeof(float));
    convert_to_f32(dt, src, staging.as<float>(), int64_t(n), stream);
    from = staging.as<float>();
  }
  ZIMAGE_CUDA_CHECK(cudaMemcpyAsync(out.ptr(), from, n * sizeof(float), cudaMemcpyDeviceToHost, stream));
  ZIMAGE_CUDA_CHECK(cudaStreamSynchronize(stream));
  return out;
}

}  // namespace zimage::gpu

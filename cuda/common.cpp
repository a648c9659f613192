#include "common.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>
#include <utility>

namespace zimage::gpu {

const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "float32";
    case DType::BF16: return "bfloat16";
    case DType::F16: return "float16";
  }
  return "?";
}

void check_view_dtype(const char* kernel, const char* operand, DType view, DType kernel_dt) {
  ZIMAGE_CHECK(view == kernel_dt, std::string(kernel) + ": " + operand + " is " + dtype_name(view) +
                                      ", the kernel runs " + dtype_name(kernel_dt));
}

bool rows_overlap(ConstDevRows a, ConstDevRows b, RowShape shape) {
  if (!a.data || !b.data || shape.rows <= 0 || shape.cols <= 0) return false;
  const auto span = [&](const ConstDevRows& v) {
    const auto begin = reinterpret_cast<uintptr_t>(v.data);
    return std::make_pair(begin, begin + uintptr_t(((shape.rows - 1) * v.ld + shape.cols) * int64_t(dtype_size(v.dt))));
  };
  const auto [a0, a1] = span(a);
  const auto [b0, b1] = span(b);
  return a0 < b1 && b0 < a1;
}

void check_row_operands(const char* kernel, RowShape shape,
                        std::initializer_list<std::pair<const char*, ConstDevRows>> operands) {
  const int64_t rows = shape.rows, rpb = shape.rows_per_batch, C = shape.cols;
  ZIMAGE_CHECK(rpb > 0 && rows >= 0 && rows % rpb == 0 && C > 0 && C <= 0x7fffffff &&
                   rows <= int64_t(0x7fffffff) - kMaxRowsPerBlock,
               std::string(kernel) + ": bad shape: " + std::to_string(rows) + " rows in items of " +
                   std::to_string(rpb) + ", " + std::to_string(C) + " columns");
  for (const auto& [name, v] : operands)
    ZIMAGE_CHECK(!v.data || v.ld >= C, std::string(kernel) + ": " + name + "'s leading dimension " +
                                           std::to_string(v.ld) + " is less than its " + std::to_string(C) +
                                           " columns");
}

size_t dtype_size(DType d) { return d == DType::F32 ? 4 : 2; }

DType parse_dtype(const std::string& s) {
  if (s == "float32") return DType::F32;
  if (s == "bfloat16") return DType::BF16;
  if (s == "float16") return DType::F16;
  throw Error("--dtype must be float32, bfloat16 or float16 on CUDA, not '" + s + "'");
}

void check_cuda(cudaError_t e, const char* what, const char* file, int line) {
  if (e == cudaSuccess) return;
  std::ostringstream m;
  m << "CUDA error in " << what << " (" << file << ":" << line << "): " << cudaGetErrorString(e);
  throw Error(m.str());
}

bool debug_sync_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("ZIMAGE_CUDA_SYNC");
    return e != nullptr && *e != '\0' && std::strcmp(e, "0") != 0;
  }();
  return on;
}

void debug_sync(const char* what) {
  if (!debug_sync_enabled()) return;
  check_cuda(cudaDeviceSynchronize(), what, "debug_sync (ZIMAGE_CUDA_SYNC=1)", 0);
  check_cuda(cudaGetLastError(), what, "debug_sync (ZIMAGE_CUDA_SYNC=1)", 0);
}

void check_launch(const char* name, const char* file, int line) {
  check_cuda(cudaGetLastError(), name, file, line);
  if (debug_sync_enabled()) check_cuda(cudaDeviceSynchronize(), name, file, line);
}

bool device_available(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why) *why = cudaGetErrorString(e);
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return false;
  }
  if (n == 0) {
    if (why) *why = "cudaGetDeviceCount returned 0 devices";
    return false;
  }
  return true;
}

std::string describe_device() {
  int dev = 0, drv = 0, rt = 0;
  ZIMAGE_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp p{};
  ZIMAGE_CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
  ZIMAGE_CUDA_CHECK(cudaDriverGetVersion(&drv));
  ZIMAGE_CUDA_CHECK(cudaRuntimeGetVersion(&rt));
  std::ostringstream o;
  o << p.name << ", compute capability " << p.major << "." << p.minor << ", driver API " << drv / 1000 << "."
    << (drv % 1000) / 10 << ", runtime " << rt / 1000 << "." << (rt % 1000) / 10;
  return o.str();
}

namespace {
// Attribute `attr` of device `dev`, asked once per (attribute, device) and thread, then remembered.
int cached_device_attribute(cudaDeviceAttr attr, int dev) {
  thread_local std::map<std::pair<int, int>, int> known;
  const auto key = std::make_pair(int(attr), dev);
  if (const auto it = known.find(key); it != known.end()) return it->second;
  int value = 0;
  ZIMAGE_CUDA_CHECK(cudaDeviceGetAttribute(&value, attr, dev));
  known.emplace(key, value);
  return value;
}
}  // namespace

int device_sm_count() {
  int dev = 0;
  ZIMAGE_CUDA_CHECK(cudaGetDevice(&dev));
  return cached_device_attribute(cudaDevAttrMultiProcessorCount, dev);
}

int64_t device_smem_per_block_optin() {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();  // no device: clear the error so later calls start clean
    return 0;
  }
  return cached_device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
}

int row_kernel_rows_per_block(int64_t rows, int blocks_per_sm, int sms) {
  ZIMAGE_CHECK(blocks_per_sm > 0 && sms > 0 && rows >= 0,
               "row_kernel_rows_per_block: bad arguments (rows " + std::to_string(rows) + ", blocks_per_sm " +
                   std::to_string(blocks_per_sm) + ", sms " + std::to_string(sms) + ")");
  const int64_t wave = int64_t(sms) * blocks_per_sm;
  return int(std::clamp<int64_t>(rows / wave, 1, kMaxRowsPerBlock));
}

int compute_capability() {
  int dev = 0, major = 0, minor = 0;
  ZIMAGE_CUDA_CHECK(cudaGetDevice(&dev));
  ZIMAGE_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  ZIMAGE_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  return 10 * major + minor;
}

}  // namespace zimage::gpu

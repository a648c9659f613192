// Host-side basics of the CUDA path: the storage dtypes, error checking and
// the device probe. Plain C++ (no CUDA language needed to include it).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"

namespace zimage::gpu {

// Storage dtype of activations and weights on the device. Math and
// accumulation are fp32 in every kernel and GEMM, whatever the storage.
enum class DType { F32, BF16, F16 };

const char* dtype_name(DType d);  // "float32", "bfloat16", "float16"
size_t dtype_size(DType d);
// "float32" | "bfloat16" | "float16"; anything else throws naming --dtype.
DType parse_dtype(const std::string& s);

// Throws zimage::Error "CUDA error in <what> (<file>:<line>): <cudaGetErrorString>".
void check_cuda(cudaError_t e, const char* what, const char* file, int line);
#define ZIMAGE_CUDA_CHECK(expr) ::zimage::gpu::check_cuda((expr), #expr, __FILE__, __LINE__)
// After a kernel launch: the launch error, if any, named after the kernel; with the debug switch
// on (debug_sync_enabled), also waits for the kernel so that a device fault names it.
void check_launch(const char* name, const char* file, int line);
#define ZIMAGE_CUDA_CHECK_LAUNCH(name) ::zimage::gpu::check_launch(name, __FILE__, __LINE__)

// The debug switch: ZIMAGE_CUDA_SYNC=1 in the environment (read once per process) makes every
// kernel launch and library call of the CUDA path synchronize the device and check for errors,
// so that an illegal address is reported as "CUDA error in <kernel> ...", not at a later copy.
bool debug_sync_enabled();
// With the switch on: cudaDeviceSynchronize, then throw "CUDA error in <what> ..." on any error.
void debug_sync(const char* what);

// True when at least one CUDA device is usable; otherwise false and, if `why`
// is given, the reason (cudaGetErrorString of cudaGetDeviceCount, or
// "cudaGetDeviceCount returned 0 devices").
bool device_available(std::string* why = nullptr);

// The refusal of a "supports" or "available" check: `msg` into *why when given, then false.
inline bool refuse(std::string* why, const std::string& msg) {
  if (why) *why = msg;
  return false;
}

// "NVIDIA H100 80GB HBM3, compute capability 9.0, driver 12.4, runtime 12.4"
std::string describe_device();

// Compute capability of the current device as 10 * major + minor (80, 90, ...).
int compute_capability();
// Multiprocessors of the current device (asked once per device and thread, then remembered).
int device_sm_count();
// The most dynamic shared memory a block of the current device may opt in to, in bytes
// (cudaDevAttrMaxSharedMemoryPerBlockOptin; NVIDIA documents 232448 on sm_90, 166912 on sm_80,
// 101376 on sm_86 and sm_89); 0 when there is no usable device, so that a host-only check refuses nothing. Asked once
// per device and thread.
int64_t device_smem_per_block_optin();

// Rows per block of the v2 row kernels (rms_norm_modulate, gated_residual, gated_residual_rms_norm):
// each block takes R consecutive rows and makes its per-item operands (the weight, tanh(gate),
// 1 + scale) once per item it meets, not once per row (docs/cuda.md, "Verification status"). R is
// the rows over one full wave of resident blocks (sms x blocks_per_sm, the kernel's occupancy: row_vector.cuh
// resident_blocks), at least 1 and at most kMaxRowsPerBlock, so a short sequence keeps one row
// per block and every multiprocessor busy. Host only.
constexpr int kMaxRowsPerBlock = 8;
int row_kernel_rows_per_block(int64_t rows, int blocks_per_sm, int sms);

// Byte offset of `elems` elements of dtype `d` from p.
inline void* offset(void* p, int64_t elems, DType d) { return static_cast<char*>(p) + elems * int64_t(dtype_size(d)); }
inline const void* offset(const void* p, int64_t elems, DType d) {
  return static_cast<const char*>(p) + elems * int64_t(dtype_size(d));
}

// Views the row kernels take instead of (pointer, leading dimension) pairs spread over long
// positional lists: a device matrix whose row r starts r * ld elements after `data`, stored in
// `dt`. A null `data` is an absent operand (rms_norm_modulate without a scale, gated_residual
// with gate 1). Built as {pointer, ld, dtype}.
struct DevRows {
  void* data = nullptr;
  int64_t ld = 0;
  DType dt = DType::F32;
  // The same rows from column `col` on (the k and v parts of a fused qkv buffer, a modulation chunk);
  // an absent operand stays absent.
  DevRows from_col(int64_t col) const { return {data ? offset(data, col, dt) : nullptr, ld, dt}; }
};
struct ConstDevRows {
  const void* data = nullptr;
  int64_t ld = 0;
  DType dt = DType::F32;
  ConstDevRows() = default;
  ConstDevRows(const void* d, int64_t l, DType t) : data(d), ld(l), dt(t) {}
  ConstDevRows(const DevRows& r) : data(r.data), ld(r.ld), dt(r.dt) {}
  ConstDevRows from_col(int64_t col) const { return {data ? offset(data, col, dt) : nullptr, ld, dt}; }
};
// `rows` rows of `cols` values in items of `rows_per_batch` rows (rows = B * rows_per_batch): the
// row kernels' per-item operands (a modulation row, a gate) are indexed by row / rows_per_batch.
struct RowShape {
  int64_t rows = 0, rows_per_batch = 0, cols = 0;
};
// B items of L tokens, H query heads of head_dim D (every attention version).
struct AttentionShape {
  int64_t B = 0, L = 0, H = 0, D = 0;
};
// The per-head RMSNorm of q and k before RoPE (qk_norm_rope, qwen3_qk_norm_rope): the weights [D]
// in the kernel's dtype and eps. Both weights null: no norm, RoPE alone (the DiT without qk_norm).
struct QkNorm {
  const void* q = nullptr;
  const void* k = nullptr;
  double eps = 0;
};
// Throws "<kernel>: <operand> is <dtype>, the kernel runs <dtype>" when an operand's storage dtype
// differs from the kernel's (a view's dtype is checked, never silently reinterpreted).
void check_view_dtype(const char* kernel, const char* operand, DType view, DType kernel_dt);
// True when the bytes that `shape.rows` rows of `shape.cols` values of a and b span (from a row's
// first value to the last row's last value, the gaps between rows included) intersect: a kernel
// that writes one while other blocks read the other would race. Conservative for interleaved
// views (two column ranges of one buffer count as overlapping). Absent operands overlap nothing.
bool rows_overlap(ConstDevRows a, ConstDevRows b, RowShape shape);
// The row kernels' shape check (rms_norm_modulate, gated_residual, gated_residual_rms_norm): rows in
// whole items, 0 < cols, rows and cols small enough for the kernels' 32-bit row and column indices
// (rows + kMaxRowsPerBlock within int), and every present row operand at least cols wide (ld >= cols,
// so that no two rows share values). Throws "<kernel>: ..." naming the operand or the shape.
void check_row_operands(const char* kernel, RowShape shape,
                        std::initializer_list<std::pair<const char*, ConstDevRows>> operands);

}  // namespace zimage::gpu

#include "gemm_lt.h"

#include <cublasLt.h>

#include <cstring>
#include <string>

namespace zimage::gpu {

namespace {

void check_lt(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  throw Error(std::string("cuBLASLt error in ") + what + ": status " + std::to_string(int(s)));
}
#define LT_CHECK(expr) check_lt((expr), #expr)

constexpr size_t kWorkspaceBytes = size_t(32) << 20;

cudaDataType_t cuda_type(DType d) {
  switch (d) {
    case DType::F32: return CUDA_R_32F;
    case DType::BF16: return CUDA_R_16BF;
    case DType::F16: return CUDA_R_16F;
  }
  return CUDA_R_32F;
}

// Largest power of two (<= 256) dividing the address: the alignment cuBLASLt may assume.
uint32_t alignment_of(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && (a % al) != 0) al >>= 1;
  return al;
}

struct Descs {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  ~Descs() {
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

}  // namespace

struct Runtime::Impl {
  cublasLtHandle_t lt = nullptr;
  DeviceBuffer workspace;
  // (dtype, N, M, K, ldx, ldy, bias, tf32, rpr, alignments) -> algorithm
  using Key = std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool, bool, uint32_t, uint32_t, uint32_t>;
  std::map<Key, cublasLtMatmulAlgo_t> algos;
};

Runtime::Runtime() : impl_(std::make_unique<Impl>()) {
  std::string why;
  ZIMAGE_CHECK(device_available(&why), "no CUDA device: " + why);
  ZIMAGE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  // Stream-ordered allocations (DeviceBuffer(bytes, stream): the forward's per-call buffers) come
  // from the device's default pool. Its default release threshold of 0 hands freed memory back at
  // every synchronization, so each step would map its buffers afresh; keep up to 4 GiB pooled.
  {
    int dev = 0, pools = 0;
    ZIMAGE_CUDA_CHECK(cudaGetDevice(&dev));
    ZIMAGE_CUDA_CHECK(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, dev));
    if (pools) {
      cudaMemPool_t pool = nullptr;
      ZIMAGE_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, dev));
      uint64_t keep = uint64_t(4) << 30;
      ZIMAGE_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
    }
  }
  LT_CHECK(cublasLtCreate(&impl_->lt));
  impl_->workspace = DeviceBuffer(kWorkspaceBytes);
}

Runtime::~Runtime() {
  if (stream_) cudaStreamSynchronize(stream_);
  if (impl_ && impl_->lt) cublasLtDestroy(impl_->lt);
  impl_.reset();  // frees the workspace before the stream goes
  staging_ = DeviceBuffer();
  if (stream_) cudaStreamDestroy(stream_);
}

void Runtime::sync() const { ZIMAGE_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void Runtime::linear(DType dt, const void* x, int64_t ldx, const void* w, const void* bias, void* y, int64_t ldy,
                     int64_t N, int64_t M, int64_t K, const GemmOptions& opts) {
  if (N == 0 || M == 0) return;
  ZIMAGE_CHECK(K > 0 && ldx >= K && ldy >= M, "linear (cuBLASLt): bad shape N " + std::to_string(N) + " M " +
                                                  std::to_string(M) + " K " + std::to_string(K));
  const cudaDataType_t t = cuda_type(dt);
  const bool tf32 = dt == DType::F32 && opts.allow_tf32;
  const cublasComputeType_t compute = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;

  Descs d;
  LT_CHECK(cublasLtMatmulDescCreate(&d.op, compute, CUDA_R_32F));
  const cublasOperation_t transa = CUBLAS_OP_T, transb = CUBLAS_OP_N;
  LT_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &transa, sizeof transa));
  LT_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &transb, sizeof transb));
  if (bias) {
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    LT_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    LT_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
    const cudaDataType_t bt = t;  // the bias is stored like the weights
    LT_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
  }
  // Column-major views: A = W^T stored as [K, M] ld K (op T gives [M, K]); B = x^T as [K, N] ld ldx;
  // D = y^T as [M, N] ld ldy. C is D (beta = 0).
  LT_CHECK(cublasLtMatrixLayoutCreate(&d.a, t, uint64_t(K), uint64_t(M), K));
  LT_CHECK(cublasLtMatrixLayoutCreate(&d.b, t, uint64_t(K), uint64_t(N), ldx));
  LT_CHECK(cublasLtMatrixLayoutCreate(&d.d, t, uint64_t(M), uint64_t(N), ldy));

  const uint32_t al_w = alignment_of(w), al_x = alignment_of(x), al_y = alignment_of(y);
  const Impl::Key key{int(dt), N, M, K, ldx, ldy, bias != nullptr, tf32, opts.allow_reduced_precision_reduction,
                      al_w, al_x, al_y};
  auto it = impl_->algos.find(key);
  if (it == impl_->algos.end()) {
    cublasLtMatmulPreference_t pref = nullptr;
    LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    struct PrefGuard {
      cublasLtMatmulPreference_t p;
      ~PrefGuard() { cublasLtMatmulPreferenceDestroy(p); }
    } guard{pref};
    const size_t ws = impl_->workspace.bytes();
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    if (!opts.allow_reduced_precision_reduction) {
      // No split-K: every output element is one fp32 reduction in compute precision, and the
      // result cannot depend on how partial sums are combined.
      const uint32_t mask = CUBLASLT_REDUCTION_SCHEME_NONE;
      LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &mask, sizeof mask));
    }
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_w, sizeof al_w));
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_x, sizeof al_x));
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_y, sizeof al_y));
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_y, sizeof al_y));
    cublasLtMatmulHeuristicResult_t res{};
    int found = 0;
    LT_CHECK(cublasLtMatmulAlgoGetHeuristic(impl_->lt, d.op, d.a, d.b, d.d, d.d, pref, 1, &res, &found));
    ZIMAGE_CHECK(found > 0, "linear (cuBLASLt): no algorithm for N " + std::to_string(N) + " M " + std::to_string(M) +
                                " K " + std::to_string(K) + " " + dtype_name(dt));
    it = impl_->algos.emplace(key, res.algo).first;
  }
  const float alpha = 1.0f, beta = 0.0f;
  const ProfileScope scope(&profile_, StepProfile::kGemm, stream_);
  LT_CHECK(cublasLtMatmul(impl_->lt, d.op, &alpha, w, d.a, x, d.b, &beta, y, d.d, y, d.d, &it->second,
                          impl_->workspace.get(), impl_->workspace.bytes(), stream_));
  debug_sync("linear (cuBLASLt)");
}

}  // namespace zimage::gpu

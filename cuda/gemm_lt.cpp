#include "gemm_lt.h"

#include "core/choices.h"
#include "cudnn_session.h"

#include <cublasLt.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
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

// Times `run` on `s`: one warm-up, then kTimedReps runs between events; the median in ms, or +inf
// when a run reports an error (the candidate is then passed over, and the launch error it may
// have left pending is cleared so that it is not blamed on the next kernel).
template <class Run>
double median_ms(cudaStream_t s, Run&& run) {
  auto failed = [] {
    cudaGetLastError();
    return INFINITY;
  };
  if (!run()) return failed();
  struct Events {
    cudaEvent_t a = nullptr, b = nullptr;
    ~Events() {
      if (a) cudaEventDestroy(a);
      if (b) cudaEventDestroy(b);
    }
  } ev;
  ZIMAGE_CUDA_CHECK(cudaEventCreate(&ev.a));
  ZIMAGE_CUDA_CHECK(cudaEventCreate(&ev.b));
  std::vector<double> ms;
  for (int r = 0; r < kTimedReps; ++r) {
    ZIMAGE_CUDA_CHECK(cudaEventRecord(ev.a, s));
    if (!run()) return failed();
    ZIMAGE_CUDA_CHECK(cudaEventRecord(ev.b, s));
    ZIMAGE_CUDA_CHECK(cudaEventSynchronize(ev.b));
    float t = 0;
    ZIMAGE_CUDA_CHECK(cudaEventElapsedTime(&t, ev.a, ev.b));
    ms.push_back(double(t));
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

namespace {
constexpr ChoiceTable<GemmAlgo, 3> kGemmAlgos{
    {{GemmAlgo::automatic, "auto"}, {GemmAlgo::heuristic, "heuristic"}, {GemmAlgo::timed, "timed"}}};
}  // namespace

const char* gemm_algo_name(GemmAlgo a) { return choice_name(kGemmAlgos, a); }

GemmAlgo parse_gemm_algo(const std::string& s, const std::string& what) { return parse_choice(kGemmAlgos, s, what); }

GemmAlgo requested_gemm_algo(GemmAlgo a) {
  if (a != GemmAlgo::automatic) return a;
  a = choice_from_env(kGemmAlgos, "ZIMAGE_GEMM_ALGO", GemmAlgo::heuristic);
  return a == GemmAlgo::automatic ? GemmAlgo::heuristic : a;
}

size_t pick_timed_algo(const std::vector<double>& median_ms, double margin) {
  size_t best = median_ms.size();
  for (size_t i = 0; i < median_ms.size(); ++i)
    if (std::isfinite(median_ms[i]) && (best == median_ms.size() || median_ms[i] < median_ms[best])) best = i;
  ZIMAGE_CHECK(best < median_ms.size(), "linear (cuBLASLt): none of the " + std::to_string(median_ms.size()) +
                                            " timed algorithms ran");
  if (best != 0 && std::isfinite(median_ms[0]) && median_ms[best] > median_ms[0] * (1.0 - margin)) return 0;
  return best;
}

struct Runtime::Impl {
  cublasLtHandle_t lt = nullptr;
  DeviceBuffer workspace;
  // (dtype, N, M, K, ldx, ldy, bias, tf32, rpr, alignments, timed) -> algorithm
  using Key =
      std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool, bool, uint32_t, uint32_t, uint32_t, bool>;
  std::map<Key, cublasLtMatmulAlgo_t> algos;
  GemmAlgoCounts counts;
};

Runtime::Runtime() : impl_(std::make_unique<Impl>()) {
  std::string why;
  ZIMAGE_CHECK(device_available(&why), "no CUDA device: " + why);
  ZIMAGE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  try {
    init();
  } catch (...) {  // the destructor does not run for a constructor that throws: release what was made
    if (impl_->lt) cublasLtDestroy(impl_->lt);
    impl_.reset();
    cudaStreamDestroy(stream_);
    throw;
  }
}

void Runtime::init() {
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
  if (stream_) {
    cudnn_release_stream(stream_);  // the cuDNN workspace kept for this stream
    cudaStreamDestroy(stream_);
  }
}

Runtime::GemmAlgoCounts Runtime::gemm_algo_counts() const {
  GemmAlgoCounts c = impl_->counts;
  c.cached = impl_->algos.size();
  return c;
}

void Runtime::sync() const { ZIMAGE_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void Runtime::linear(ConstDevRows xv, const void* w, const void* bias, DevRows yv, GemmShape shape,
                     const GemmOptions& opts) {
  const DType dt = xv.dt;
  check_view_dtype("linear", "y", yv.dt, dt);
  const void* x = xv.data;
  void* y = yv.data;
  const int64_t ldx = xv.ld, ldy = yv.ld, N = shape.N, M = shape.M, K = shape.K;
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
  const bool timed = requested_gemm_algo(opts.algo) == GemmAlgo::timed;
  const Impl::Key key{int(dt), N, M, K, ldx, ldy, bias != nullptr, tf32, opts.allow_reduced_precision_reduction,
                      al_w, al_x, al_y, timed};
  const float alpha = 1.0f, beta = 0.0f;
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
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    ZIMAGE_CUDA_CHECK(cudaStreamIsCapturing(stream_, &capturing));
    const bool time_them = timed && capturing == cudaStreamCaptureStatusNone;
    cublasLtMatmulHeuristicResult_t res[kTimedCandidates]{};
    int found = 0;
    LT_CHECK(cublasLtMatmulAlgoGetHeuristic(impl_->lt, d.op, d.a, d.b, d.d, d.d, pref, time_them ? kTimedCandidates : 1,
                                            res, &found));
    ZIMAGE_CHECK(found > 0, "linear (cuBLASLt): no algorithm for N " + std::to_string(N) + " M " + std::to_string(M) +
                                " K " + std::to_string(K) + " " + dtype_name(dt));
    size_t pick = 0;
    if (time_them) ++impl_->counts.timed_keys;  // one candidate: nothing to time, it is kept
    if (time_them && found > 1) {
      // Each candidate on the call's own operands: y is written, and overwritten by the call below.
      std::vector<double> ms;
      for (int i = 0; i < found; ++i) {
        ms.push_back(median_ms(stream_, [&] {
          return res[i].state == CUBLAS_STATUS_SUCCESS && res[i].workspaceSize <= ws &&
                 cublasLtMatmul(impl_->lt, d.op, &alpha, w, d.a, x, d.b, &beta, y, d.d, y, d.d, &res[i].algo,
                                impl_->workspace.get(), ws, stream_) == CUBLAS_STATUS_SUCCESS;
        }));
        ++impl_->counts.candidates_run;
      }
      pick = pick_timed_algo(ms);
      impl_->counts.not_first += pick != 0;
    }
    it = impl_->algos.emplace(key, res[pick].algo).first;
  }
  const ProfileScope scope(&profile_, StepProfile::kGemm, stream_);
  LT_CHECK(cublasLtMatmul(impl_->lt, d.op, &alpha, w, d.a, x, d.b, &beta, y, d.d, y, d.d, &it->second,
                          impl_->workspace.get(), impl_->workspace.bytes(), stream_));
  debug_sync("linear (cuBLASLt)");
}

}  // namespace zimage::gpu

#include "attention_cudnn.h"

#include <cstdint>
#include <string>
#include <vector>

#ifdef ZIMAGE_WITH_CUDNN
#include <cmath>
#include <memory>
#include <mutex>
#include <utility>

#include "cudnn_plan.h"
#endif

namespace zimage::gpu {

namespace {

// Throws on an unsupported or inconsistent request; returns whether the batch is ragged (some
// item shorter than L).
bool validate(DType dt, const void* q, const void* k, const void* v, int64_t ld, const std::vector<int64_t>* seqlens,
              const void* out, int64_t ldo, int64_t B, int64_t L, int64_t H, int64_t D) {
  std::string why;
  if (!cudnn_attention_supports(dt, D, ld, ldo, &why)) throw Error(why);
  const std::string dims = "B " + std::to_string(B) + ", L " + std::to_string(L) + ", H " + std::to_string(H) +
                           ", D " + std::to_string(D) + ", ld " + std::to_string(ld) + ", ldo " + std::to_string(ldo);
  ZIMAGE_CHECK(B > 0 && L > 0 && H > 0 && ld >= H * D && ldo >= H * D, "cuDNN SDPA: bad shape (" + dims + ")");
  for (const void* p : {q, k, v, out})
    ZIMAGE_CHECK(reinterpret_cast<uintptr_t>(p) % 16 == 0,
                 "cuDNN SDPA: q, k, v and out must be 16-byte aligned (" + dims + ")");
  bool ragged = false;
  if (seqlens) {
    ZIMAGE_CHECK(int64_t(seqlens->size()) == B, "cuDNN SDPA: " + std::to_string(seqlens->size()) +
                                                    " sequence lengths for a batch of " + std::to_string(B));
    for (int64_t b = 0; b < B; ++b) {
      const int64_t n = (*seqlens)[size_t(b)];
      ZIMAGE_CHECK(n >= 1 && n <= L, "cuDNN SDPA: item " + std::to_string(b) + " has " + std::to_string(n) +
                                         " valid keys; needs 1.." + std::to_string(L) +
                                         " (an item without keys has no attention)");
      ragged = ragged || n != L;
    }
  }
  return ragged;
}

}  // namespace

bool cudnn_attention_supports(DType dt, int64_t D, int64_t ld, int64_t ldo, std::string* why) {
  if (dt != DType::BF16)
    return refuse(why, std::string("cuDNN SDPA runs bfloat16 only, not ") + dtype_name(dt) + " (no fp32 SDPA in cuDNN)");
  if (D < 8 || D > 256 || D % 8 != 0)
    return refuse(why, "cuDNN SDPA needs a head_dim that is a multiple of 8 in [8, 256], not " + std::to_string(D));
  if (ld % 8 != 0 || ldo % 8 != 0)
    return refuse(why, "cuDNN SDPA needs row strides that are multiples of 8 elements (16 bytes), not ld " +
                           std::to_string(ld) + ", ldo " + std::to_string(ldo));
  return true;
}

std::string cudnn_attention_plan_key(DType dt, int64_t B, int64_t Sq, int64_t Skv, int64_t H, int64_t D, int64_t ld,
                                     int64_t ldo) {
  return std::string(dtype_name(dt)) + " B" + std::to_string(B) + " Sq" + std::to_string(Sq) + " Skv" +
         std::to_string(Skv) + " H" + std::to_string(H) + " D" + std::to_string(D) + " ld" + std::to_string(ld) +
         " ldo" + std::to_string(ldo);
}

#ifndef ZIMAGE_WITH_CUDNN

namespace {
constexpr const char* kNotBuilt = "built without cuDNN (ZIMAGE_CUDNN=OFF or cudnn_backend.h not found)";
}

bool cudnn_attention_available(std::string* why) { return refuse(why, kNotBuilt); }

void cudnn_attention(DType dt, const void* q, const void* k, const void* v, int64_t ld, const std::vector<int64_t>* seqlens,
                     void* out, int64_t ldo, int64_t B, int64_t L, int64_t H, int64_t D, cudaStream_t) {
  if (B == 0 || L == 0) return;
  validate(dt, q, k, v, ld, seqlens, out, ldo, B, L, H, D);
  throw Error(std::string("cuDNN SDPA: ") + kNotBuilt);
}

size_t cudnn_attention_cached_plans() { return 0; }

#else  // ZIMAGE_WITH_CUDNN

namespace {

using cudnn::DescPtr;
using cudnn::Where;
#define SET ZIMAGE_CUDNN_SET
#define SET_DESC ZIMAGE_CUDNN_SET_DESC

constexpr size_t kMinVersion = 91301;  // the single-op SDPA forward descriptor
// Tensor unique ids in the graph and the variant pack.
enum Uid : int64_t { kQ = 1, kK = 2, kV = 3, kO = 4, kScale = 5 };

struct Shape {
  int64_t B, Sq, Skv, H, D, ld, ldo;
  std::string text() const {
    return "B " + std::to_string(B) + ", Sq " + std::to_string(Sq) + ", Skv " + std::to_string(Skv) + ", H " +
           std::to_string(H) + ", D " + std::to_string(D);
  }
};

// Graph: one SDPA_FWD operation, Q K V [B, H, S, D] in place in the fused qkv rows (strides
// [S ld, D, ld, 1]), O [B, H, Sq, D] into rows of ldo, the scale a by-value fp32 scalar. No Stats
// output (inference), no mask (the key padding is Skv). Then the first engine config of heuristics
// mode A (else FALLBACK) that finalizes into a plan.
std::unique_ptr<cudnn::Plan> build_plan(cudnnHandle_t handle, const Shape& s) {
  const Where where{"cuDNN SDPA", s.text()};
  const cudnnDataType_t bf16 = CUDNN_DATA_BFLOAT16;
  auto q = cudnn::make_tensor({kQ, bf16, {s.B, s.H, s.Sq, s.D}, {s.Sq * s.ld, s.D, s.ld, 1}}, where);
  auto k = cudnn::make_tensor({kK, bf16, {s.B, s.H, s.Skv, s.D}, {s.Skv * s.ld, s.D, s.ld, 1}}, where);
  auto v = cudnn::make_tensor({kV, bf16, {s.B, s.H, s.Skv, s.D}, {s.Skv * s.ld, s.D, s.ld, 1}}, where);
  auto o = cudnn::make_tensor({kO, bf16, {s.B, s.H, s.Sq, s.D}, {s.Sq * s.ldo, s.D, s.ldo, 1}}, where);
  auto scale = cudnn::make_tensor({kScale, CUDNN_DATA_FLOAT, {1, 1, 1, 1}, {1, 1, 1, 1}, true}, where);

  auto op = std::make_unique<cudnn::Desc>(CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR, "OPERATION_SDPA_FWD", where);
  SET_DESC(*op, CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC, *q);
  SET_DESC(*op, CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC, *k);
  SET_DESC(*op, CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC, *v);
  SET_DESC(*op, CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC, *o);
  SET_DESC(*op, CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC, *scale);
  op->finalize();

  DescPtr graph = cudnn::make_graph(handle, {op.get()}, where);
  std::vector<DescPtr> keep;
  for (auto* d : {&q, &k, &v, &o, &scale, &op}) keep.push_back(std::move(*d));
  return cudnn::build_plan(handle, std::move(graph), std::move(keep), where);
}

#undef SET
#undef SET_DESC

// The SDPA plans of every device; used with the session's mutex held.
cudnn::PlanCache& plans() {
  static auto* c = new cudnn::PlanCache;
  return *c;
}

// Availability on the current device, SDPA's minimum version included; the session's mutex held.
bool sdpa_available_locked(cudnn::Session& st, int* dev, std::string* why) {
  if (!cudnn::available_locked(st, dev, why)) return false;
  const cudnn::Api& a = cudnn::api();
  if (a.version >= kMinVersion) return true;
  return refuse(why, "cuDNN " + cudnn::version_string(a.version) + " (" + a.path +
                         ") is too old for the fused SDPA operation (needs >= " + cudnn::version_string(kMinVersion) +
                         ")");
}

// One cuDNN call: plan for `s` (built and cached on first use), variant pack, execute.
void run_one(cudnn::Session& st, int dev, DType dt, const Shape& s, const void* q, const void* k, const void* v,
             void* out, cudaStream_t stream) {
  const cudnnHandle_t handle = st.handles.at(dev);
  const cudnn::Plan& plan = plans().get(dev, cudnn_attention_plan_key(dt, s.B, s.Sq, s.Skv, s.H, s.D, s.ld, s.ldo),
                                        [&] { return build_plan(handle, s); });
  float scale = 1.0f / std::sqrt(float(s.D));  // by value: read from the host at execute time
  cudnn::execute(st, dev, plan, {kQ, kK, kV, kO, kScale},
                 {const_cast<void*>(q), const_cast<void*>(k), const_cast<void*>(v), out, &scale}, stream,
                 {"cuDNN SDPA", s.text()});
}

}  // namespace

bool cudnn_attention_available(std::string* why) {
  cudnn::Session& st = cudnn::session();
  std::lock_guard<std::mutex> lock(st.mu);
  return sdpa_available_locked(st, nullptr, why);
}

void cudnn_attention(DType dt, const void* q, const void* k, const void* v, int64_t ld, const std::vector<int64_t>* seqlens,
                     void* out, int64_t ldo, int64_t B, int64_t L, int64_t H, int64_t D, cudaStream_t stream) {
  if (B == 0 || L == 0) return;
  const bool ragged = validate(dt, q, k, v, ld, seqlens, out, ldo, B, L, H, D);
  std::string why;
  cudnn::Session& st = cudnn::session();
  std::lock_guard<std::mutex> lock(st.mu);
  int dev = 0;
  if (!sdpa_available_locked(st, &dev, &why)) throw Error(why);
  if (!ragged) {
    run_one(st, dev, dt, {B, L, L, H, D, ld, ldo}, q, k, v, out, stream);
    return;
  }
  // Key padding: item b alone, its queries (all L) against its first seqlens[b] keys.
  for (int64_t b = 0; b < B; ++b) {
    const int64_t in = b * L * ld, o = b * L * ldo;
    run_one(st, dev, dt, {1, L, (*seqlens)[size_t(b)], H, D, ld, ldo}, offset(q, in, dt), offset(k, in, dt),
            offset(v, in, dt), offset(out, o, dt), stream);
  }
}

size_t cudnn_attention_cached_plans() {
  cudnn::Session& st = cudnn::session();
  std::lock_guard<std::mutex> lock(st.mu);
  return plans().size();
}

#endif  // ZIMAGE_WITH_CUDNN

}  // namespace zimage::gpu

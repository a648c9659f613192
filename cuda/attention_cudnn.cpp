#include "attention_cudnn.h"

#include <cstdint>
#include <string>
#include <vector>

#ifdef ZIMAGE_WITH_CUDNN
#include <cudnn_backend.h>  // enums and types only: libcudnn is dlopen'ed, never linked
#include <dlfcn.h>
#include <link.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>

#include "device_tensor.h"  // note_device_alloc / note_device_free
#endif

namespace zimage::gpu {

namespace {

bool refuse(std::string* why, const std::string& msg) {
  if (why) *why = msg;
  return false;
}

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

uint64_t cudnn_workspace_generation() { return 0; }  // no cuDNN: no workspace is ever made

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

constexpr size_t kMinVersion = 91301;  // the single-op SDPA forward descriptor
// Tensor unique ids in the graph and the variant pack.
enum Uid : int64_t { kQ = 1, kK = 2, kV = 3, kO = 4, kScale = 5 };

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

std::string version_string(size_t v) {
  return std::to_string(v / 10000) + "." + std::to_string(v % 10000 / 100) + "." + std::to_string(v % 100);
}

// ---- the library, loaded once --------------------------------------------------------------------

struct Api {
  std::string path;  // where the loader found it
  size_t version = 0;
  decltype(&cudnnGetVersion) GetVersion = nullptr;
  decltype(&cudnnCreate) Create = nullptr;
  decltype(&cudnnDestroy) Destroy = nullptr;
  decltype(&cudnnSetStream) SetStream = nullptr;
  decltype(&cudnnGetErrorString) GetErrorString = nullptr;
  decltype(&cudnnBackendCreateDescriptor) CreateDescriptor = nullptr;
  decltype(&cudnnBackendDestroyDescriptor) DestroyDescriptor = nullptr;
  decltype(&cudnnBackendSetAttribute) SetAttribute = nullptr;
  decltype(&cudnnBackendGetAttribute) GetAttribute = nullptr;
  decltype(&cudnnBackendFinalize) Finalize = nullptr;
  decltype(&cudnnBackendExecute) Execute = nullptr;
};

// The loaded library, or nullptr and the reason in `error` (one line). Never unloaded.
const Api* load_api(std::string* error) {
  struct Loaded {
    Api api;
    std::string error;
  };
  static const Loaded* loaded = [] {
    auto* l = new Loaded;
    void* lib = nullptr;
    std::string tried;
    for (const char* name : {"libcudnn_graph.so.9", "libcudnn.so.9"}) {
      lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (lib) break;
      const char* e = dlerror();
      tried += std::string(tried.empty() ? "" : "; ") + name + ": " + (e ? e : "not found");
    }
    if (!lib) {
      l->error = one_line("cuDNN not found (" + tried + ")");
      return l;
    }
    Api& a = l->api;
    link_map* lm = nullptr;
    a.path = dlinfo(lib, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_name ? lm->l_name : "libcudnn";
    auto sym = [&](auto& fn, const char* name) {
      if (!l->error.empty()) return;
      void* p = dlsym(lib, name);
      if (!p) {
        const char* e = dlerror();
        l->error = one_line("cuDNN (" + a.path + ") lacks " + name + ": " + (e ? e : "symbol not found"));
        return;
      }
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(p);
    };
    sym(a.GetVersion, "cudnnGetVersion");
    sym(a.Create, "cudnnCreate");
    sym(a.Destroy, "cudnnDestroy");
    sym(a.SetStream, "cudnnSetStream");
    sym(a.GetErrorString, "cudnnGetErrorString");
    sym(a.CreateDescriptor, "cudnnBackendCreateDescriptor");
    sym(a.DestroyDescriptor, "cudnnBackendDestroyDescriptor");
    sym(a.SetAttribute, "cudnnBackendSetAttribute");
    sym(a.GetAttribute, "cudnnBackendGetAttribute");
    sym(a.Finalize, "cudnnBackendFinalize");
    sym(a.Execute, "cudnnBackendExecute");
    if (!l->error.empty()) return l;
    a.version = a.GetVersion();
    if (a.version < kMinVersion)
      l->error = "cuDNN " + version_string(a.version) + " (" + a.path +
                 ") is too old for the fused SDPA operation (needs >= " + version_string(kMinVersion) + ")";
    return l;
  }();
  if (!loaded->error.empty()) {
    if (error) *error = loaded->error;
    return nullptr;
  }
  return &loaded->api;
}

// Only called once load_api succeeded.
const Api& api() { return *load_api(nullptr); }

std::string status_string(cudnnStatus_t s) {
  const char* m = api().GetErrorString(s);
  return m ? one_line(m) : "cudnnStatus " + std::to_string(int(s));
}

// ---- descriptors -----------------------------------------------------------------------------------

// Throws "cuDNN SDPA: <step> failed: <status> (<shape>)".
void check(cudnnStatus_t s, const std::string& step, const std::string& shape) {
  if (s == CUDNN_STATUS_SUCCESS) return;
  throw Error("cuDNN SDPA: " + step + " failed: " + status_string(s) + " (" + shape + ")");
}

// An owned backend descriptor; `name` (e.g. "TENSOR") is used in error messages.
class Desc {
 public:
  Desc(cudnnBackendDescriptorType_t type, const char* name, const std::string& shape) : name_(name), shape_(shape) {
    check(api().CreateDescriptor(type, &d_), std::string("cudnnBackendCreateDescriptor(") + name + ")", shape);
  }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  ~Desc() {
    if (d_) api().DestroyDescriptor(d_);
  }
  cudnnBackendDescriptor_t get() const { return d_; }
  const char* name() const { return name_; }

  // SetAttribute of `count` values of `type` at `values`.
  void set(cudnnBackendAttributeName_t attr, const char* attr_name, cudnnBackendAttributeType_t type, int64_t count,
           const void* values) {
    check(api().SetAttribute(d_, attr, type, count, values),
          std::string("cudnnBackendSetAttribute(") + name_ + ", " + attr_name + ")", shape_);
  }
  void set_desc(cudnnBackendAttributeName_t attr, const char* attr_name, const Desc& value) {
    cudnnBackendDescriptor_t v = value.get();
    set(attr, attr_name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &v);
  }
  cudnnStatus_t try_finalize() { return api().Finalize(d_); }
  void finalize() { check(try_finalize(), std::string("cudnnBackendFinalize(") + name_ + ")", shape_); }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
  const char* name_;
  std::string shape_;
};
using DescPtr = std::unique_ptr<Desc>;
// Attribute names spelled once: SET(d, CUDNN_ATTR_..., type, count, ptr).
#define SET(d, attr, type, count, ptr) (d).set(attr, #attr, type, count, ptr)
#define SET_DESC(d, attr, value) (d).set_desc(attr, #attr, value)

// The handle attributes are deprecated in 9.x headers (a handle-free DEVICEPROP path exists) but
// still honoured, and older 9.x libraries need them.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
constexpr cudnnBackendAttributeName_t kGraphHandle = CUDNN_ATTR_OPERATIONGRAPH_HANDLE;
constexpr cudnnBackendAttributeName_t kPlanHandle = CUDNN_ATTR_EXECUTION_PLAN_HANDLE;
#pragma GCC diagnostic pop

// A finalized 4-d tensor descriptor: `uid`, data type, dims, strides, 16-byte alignment.
DescPtr make_tensor(int64_t uid, cudnnDataType_t type, const std::array<int64_t, 4>& dims,
                    const std::array<int64_t, 4>& strides, bool by_value, const std::string& shape) {
  auto t = std::make_unique<Desc>(CUDNN_BACKEND_TENSOR_DESCRIPTOR, "TENSOR", shape);
  const int64_t alignment = 16;
  SET(*t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
  SET(*t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type);
  SET(*t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims.data());
  SET(*t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides.data());
  SET(*t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment);
  if (by_value) SET(*t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value);
  t->finalize();
  return t;
}

// ---- plans -----------------------------------------------------------------------------------------

// An execution plan with every descriptor it was built from (kept alive with it).
struct Plan {
  std::vector<DescPtr> keep;
  DescPtr plan;
  int64_t workspace = 0;
};

struct Shape {
  int64_t B, Sq, Skv, H, D, ld, ldo;
  std::string text() const {
    return "B " + std::to_string(B) + ", Sq " + std::to_string(Sq) + ", Skv " + std::to_string(Skv) + ", H " +
           std::to_string(H) + ", D " + std::to_string(D);
  }
};

// The engine configs heuristics `mode` proposes for `graph`, best first (none when the heuristics
// descriptor does not finalize; its status goes to `status`). The heuristics descriptor joins `keep`.
std::vector<DescPtr> engine_configs(const Desc& graph, cudnnBackendHeurMode_t mode, const std::string& shape,
                                    std::vector<DescPtr>& keep, cudnnStatus_t& status) {
  auto heur = std::make_unique<Desc>(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "ENGINEHEUR", shape);
  SET_DESC(*heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph);
  SET(*heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
  status = heur->try_finalize();
  if (status != CUDNN_STATUS_SUCCESS) return {};
  int64_t n = 0;
  check(api().GetAttribute(heur->get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &n, nullptr),
        "cudnnBackendGetAttribute(ENGINEHEUR, CUDNN_ATTR_ENGINEHEUR_RESULTS count)", shape);
  std::vector<DescPtr> cfgs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < n; ++i) {
    cfgs.push_back(std::make_unique<Desc>(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "ENGINECFG", shape));
    raw.push_back(cfgs.back()->get());
  }
  int64_t got = 0;
  if (n > 0)
    check(api().GetAttribute(heur->get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n, &got,
                             raw.data()),
          "cudnnBackendGetAttribute(ENGINEHEUR, CUDNN_ATTR_ENGINEHEUR_RESULTS)", shape);
  cfgs.resize(size_t(std::min(got, n)));
  keep.push_back(std::move(heur));
  return cfgs;
}

// Graph: one SDPA_FWD operation, Q K V [B, H, S, D] in place in the fused qkv rows (strides
// [S ld, D, ld, 1]), O [B, H, Sq, D] into rows of ldo, the scale a by-value fp32 scalar. No Stats
// output (inference), no mask (the key padding is Skv). Then the first engine config of heuristics
// mode A (else FALLBACK) that finalizes into a plan.
std::unique_ptr<Plan> build_plan(cudnnHandle_t handle, const Shape& s) {
  const std::string shape = s.text();
  auto p = std::make_unique<Plan>();
  const cudnnDataType_t bf16 = CUDNN_DATA_BFLOAT16;
  auto q = make_tensor(kQ, bf16, {s.B, s.H, s.Sq, s.D}, {s.Sq * s.ld, s.D, s.ld, 1}, false, shape);
  auto k = make_tensor(kK, bf16, {s.B, s.H, s.Skv, s.D}, {s.Skv * s.ld, s.D, s.ld, 1}, false, shape);
  auto v = make_tensor(kV, bf16, {s.B, s.H, s.Skv, s.D}, {s.Skv * s.ld, s.D, s.ld, 1}, false, shape);
  auto o = make_tensor(kO, bf16, {s.B, s.H, s.Sq, s.D}, {s.Sq * s.ldo, s.D, s.ldo, 1}, false, shape);
  auto scale = make_tensor(kScale, CUDNN_DATA_FLOAT, {1, 1, 1, 1}, {1, 1, 1, 1}, true, shape);

  auto op = std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR, "OPERATION_SDPA_FWD", shape);
  SET_DESC(*op, CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC, *q);
  SET_DESC(*op, CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC, *k);
  SET_DESC(*op, CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC, *v);
  SET_DESC(*op, CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC, *o);
  SET_DESC(*op, CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC, *scale);
  op->finalize();

  auto graph = std::make_unique<Desc>(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "OPERATIONGRAPH", shape);
  graph->set(kGraphHandle, "CUDNN_ATTR_OPERATIONGRAPH_HANDLE", CUDNN_TYPE_HANDLE, 1, &handle);
  SET_DESC(*graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, *op);
  graph->finalize();

  for (auto* d : {&q, &k, &v, &o, &scale, &op}) p->keep.push_back(std::move(*d));

  int tried = 0;
  cudnnStatus_t last = CUDNN_STATUS_SUCCESS;
  std::string last_step;
  for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    cudnnStatus_t heur_status = CUDNN_STATUS_SUCCESS;
    std::vector<DescPtr> cfgs = engine_configs(*graph, mode, shape, p->keep, heur_status);
    if (heur_status != CUDNN_STATUS_SUCCESS) {
      last = heur_status;
      last_step = "cudnnBackendFinalize(ENGINEHEUR)";
    }
    for (DescPtr& cfg : cfgs) {
      ++tried;
      auto plan = std::make_unique<Desc>(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, "EXECUTION_PLAN", shape);
      plan->set(kPlanHandle, "CUDNN_ATTR_EXECUTION_PLAN_HANDLE", CUDNN_TYPE_HANDLE, 1, &handle);
      SET_DESC(*plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, *cfg);
      const cudnnStatus_t st = plan->try_finalize();
      if (st != CUDNN_STATUS_SUCCESS) {
        last = st;
        last_step = "cudnnBackendFinalize(EXECUTION_PLAN)";
        continue;
      }
      int64_t got = 0;
      check(api().GetAttribute(plan->get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &got,
                               &p->workspace),
            "cudnnBackendGetAttribute(EXECUTION_PLAN, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE)", shape);
      p->keep.push_back(std::move(graph));
      p->keep.push_back(std::move(cfg));
      p->plan = std::move(plan);
      return p;
    }
  }
  if (tried == 0 && last == CUDNN_STATUS_SUCCESS)
    throw Error("cuDNN SDPA: engine heuristics (modes A and FALLBACK) proposed no engine config (" + shape + ")");
  throw Error("cuDNN SDPA: " + last_step + " failed: " + status_string(last) + " (" + shape + "; " +
              std::to_string(tried) +
              " engine configs tried; the runtime-compiled engines need libnvrtc.so.13 on the loader path)");
}

// ---- process-wide state ----------------------------------------------------------------------------

// Deliberately leaked: no cuDNN or CUDA calls at static destruction.
struct State {
  std::mutex mu;
  std::map<int, std::string> availability;  // device -> "" (available) or the reason
  std::map<int, cudnnHandle_t> handles;
  std::map<std::pair<int, std::string>, std::unique_ptr<Plan>> plans;  // (device, plan key)
  struct Workspace {
    void* ptr = nullptr;
    int64_t bytes = 0;
  };
  std::map<std::pair<int, cudaStream_t>, Workspace> workspaces;
  uint64_t workspace_generation = 0;
};
State& state() {
  static State* s = new State;
  return *s;
}

// Availability on the current device; `mu` held.
bool available_locked(State& st, std::string* why) {
  std::string err;
  if (!load_api(&err)) return refuse(why, err);
  const Api& a = api();
  const std::string lib = "cuDNN " + version_string(a.version) + " (" + a.path + ")";
  int dev = 0;
  if (const cudaError_t e = cudaGetDevice(&dev); e != cudaSuccess) {
    cudaGetLastError();
    return refuse(why, lib + " loaded, but no CUDA device: " + cudaGetErrorString(e));
  }
  auto it = st.availability.find(dev);
  if (it == st.availability.end()) {
    cudnnHandle_t h = nullptr;
    const cudnnStatus_t s = a.Create(&h);
    std::string reason;
    if (s != CUDNN_STATUS_SUCCESS) {
      reason = lib + ": cudnnCreate failed on device " + std::to_string(dev) + ": " + status_string(s);
      cudaGetLastError();
    } else {
      st.handles[dev] = h;
    }
    it = st.availability.emplace(dev, one_line(reason)).first;
  }
  return it->second.empty() || refuse(why, it->second);
}

// The workspace for (device, stream), grown to at least `bytes`; `mu` held.
void* workspace(State& st, int dev, cudaStream_t stream, int64_t bytes) {
  State::Workspace& w = st.workspaces[{dev, stream}];
  if (w.bytes < bytes) {
    if (w.ptr) {
      ZIMAGE_CUDA_CHECK(cudaStreamSynchronize(stream));  // earlier calls on this stream may still use it
      ZIMAGE_CUDA_CHECK(cudaFree(w.ptr));
      note_device_free(size_t(w.bytes));
      w = {};
    }
    ZIMAGE_CUDA_CHECK(cudaMalloc(&w.ptr, size_t(bytes)));
    w.bytes = bytes;
    note_device_alloc(size_t(bytes));
    ++st.workspace_generation;
  }
  return w.ptr;
}

// One cuDNN call: plan for `s` (built and cached on first use), variant pack, execute.
void run_one(State& st, int dev, DType dt, const Shape& s, const void* q, const void* k, const void* v, void* out,
             cudaStream_t stream) {
  const std::string shape = s.text();
  const cudnnHandle_t handle = st.handles.at(dev);
  const auto key = std::make_pair(dev, cudnn_attention_plan_key(dt, s.B, s.Sq, s.Skv, s.H, s.D, s.ld, s.ldo));
  auto it = st.plans.find(key);
  if (it == st.plans.end()) it = st.plans.emplace(key, build_plan(handle, s)).first;
  const Plan& plan = *it->second;

  float scale = 1.0f / std::sqrt(float(s.D));  // by value: read from the host at execute time
  void* ws = plan.workspace > 0 ? workspace(st, dev, stream, plan.workspace) : nullptr;
  const std::array<int64_t, 5> uids{kQ, kK, kV, kO, kScale};
  const std::array<void*, 5> ptrs{const_cast<void*>(q), const_cast<void*>(k), const_cast<void*>(v), out, &scale};
  Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, "VARIANT_PACK", shape);
  SET(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, int64_t(uids.size()), uids.data());
  SET(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, int64_t(ptrs.size()), ptrs.data());
  SET(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
  pack.finalize();
  check(api().SetStream(handle, stream), "cudnnSetStream", shape);
  check(api().Execute(handle, plan.plan->get(), pack.get()), "cudnnBackendExecute", shape);
}

#undef SET
#undef SET_DESC

}  // namespace

uint64_t cudnn_workspace_generation() {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  return st.workspace_generation;
}

bool cudnn_attention_available(std::string* why) {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  return available_locked(st, why);
}

void cudnn_attention(DType dt, const void* q, const void* k, const void* v, int64_t ld, const std::vector<int64_t>* seqlens,
                     void* out, int64_t ldo, int64_t B, int64_t L, int64_t H, int64_t D, cudaStream_t stream) {
  if (B == 0 || L == 0) return;
  const bool ragged = validate(dt, q, k, v, ld, seqlens, out, ldo, B, L, H, D);
  std::string why;
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  if (!available_locked(st, &why)) throw Error(why);
  int dev = 0;
  ZIMAGE_CUDA_CHECK(cudaGetDevice(&dev));
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
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  return st.plans.size();
}

#endif  // ZIMAGE_WITH_CUDNN

}  // namespace zimage::gpu

// cudnn_session.h, and cudnn_plan.h when cuDNN's headers were found.
#include "cudnn_session.h"

#include "common.h"

#ifndef ZIMAGE_WITH_CUDNN

namespace zimage::gpu {

bool cudnn_available(std::string* why) {
  return refuse(why, "built without cuDNN (ZIMAGE_CUDNN=OFF or cudnn_backend.h not found)");
}
uint64_t cudnn_workspace_generation() { return 0; }  // no cuDNN: no workspace is ever made
void cudnn_release_stream(cudaStream_t) {}

}  // namespace zimage::gpu

#else  // ZIMAGE_WITH_CUDNN

#include <dlfcn.h>
#include <link.h>

#include <algorithm>
#include <type_traits>

#include "cudnn_plan.h"
#include "device_tensor.h"  // note_device_alloc / note_device_free

namespace zimage::gpu {

namespace cudnn {

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

std::string version_string(size_t v) {
  return std::to_string(v / 10000) + "." + std::to_string(v % 10000 / 100) + "." + std::to_string(v % 100);
}

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
    return l;
  }();
  if (!loaded->error.empty()) {
    if (error) *error = loaded->error;
    return nullptr;
  }
  return &loaded->api;
}

const Api& api() { return *load_api(nullptr); }

std::string status_string(cudnnStatus_t s) {
  const char* m = api().GetErrorString(s);
  return m ? one_line(m) : "cudnnStatus " + std::to_string(int(s));
}

void check(cudnnStatus_t s, const std::string& step, const Where& where) {
  if (s == CUDNN_STATUS_SUCCESS) return;
  throw Error(where.what + ": " + step + " failed: " + status_string(s) + " (" + where.shape + ")");
}

// ---- descriptors -----------------------------------------------------------------------------------

Desc::Desc(cudnnBackendDescriptorType_t type, const char* name, const Where& where) : name_(name), where_(where) {
  check(api().CreateDescriptor(type, &d_), std::string("cudnnBackendCreateDescriptor(") + name + ")", where);
}

Desc::~Desc() {
  if (d_) api().DestroyDescriptor(d_);
}

void Desc::set(cudnnBackendAttributeName_t attr, const char* attr_name, cudnnBackendAttributeType_t type, int64_t count,
               const void* values) {
  check(api().SetAttribute(d_, attr, type, count, values),
        std::string("cudnnBackendSetAttribute(") + name_ + ", " + attr_name + ")", where_);
}

void Desc::set_desc(cudnnBackendAttributeName_t attr, const char* attr_name, const Desc& value) {
  set_descs(attr, attr_name, {&value});
}

void Desc::set_descs(cudnnBackendAttributeName_t attr, const char* attr_name, const std::vector<const Desc*>& values) {
  std::vector<cudnnBackendDescriptor_t> raw;
  for (const Desc* v : values) raw.push_back(v->get());
  set(attr, attr_name, CUDNN_TYPE_BACKEND_DESCRIPTOR, int64_t(raw.size()), raw.data());
}

cudnnStatus_t Desc::try_finalize() { return api().Finalize(d_); }

void Desc::finalize() { check(try_finalize(), std::string("cudnnBackendFinalize(") + name_ + ")", where_); }

#define SET ZIMAGE_CUDNN_SET
#define SET_DESC ZIMAGE_CUDNN_SET_DESC

// The handle attributes are deprecated in 9.x headers (a handle-free DEVICEPROP path exists) but
// still honoured, and older 9.x libraries need them.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
constexpr cudnnBackendAttributeName_t kGraphHandle = CUDNN_ATTR_OPERATIONGRAPH_HANDLE;
constexpr cudnnBackendAttributeName_t kPlanHandle = CUDNN_ATTR_EXECUTION_PLAN_HANDLE;
#pragma GCC diagnostic pop

DescPtr make_tensor(const TensorSpec& s, const Where& where) {
  ZIMAGE_CHECK(!s.dims.empty() && s.dims.size() == s.strides.size(),
               where.what + ": tensor " + std::to_string(s.uid) + " has " + std::to_string(s.dims.size()) +
                   " dims and " + std::to_string(s.strides.size()) + " strides (" + where.shape + ")");
  auto t = std::make_unique<Desc>(CUDNN_BACKEND_TENSOR_DESCRIPTOR, "TENSOR", where);
  const int64_t alignment = 16, n = int64_t(s.dims.size());
  SET(*t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &s.uid);
  SET(*t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &s.type);
  SET(*t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, n, s.dims.data());
  SET(*t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, n, s.strides.data());
  SET(*t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment);
  if (s.by_value) SET(*t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &s.by_value);
  if (s.is_virtual) SET(*t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &s.is_virtual);
  t->finalize();
  return t;
}

DescPtr make_graph(cudnnHandle_t handle, const std::vector<const Desc*>& ops, const Where& where) {
  auto graph = std::make_unique<Desc>(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "OPERATIONGRAPH", where);
  graph->set(kGraphHandle, "CUDNN_ATTR_OPERATIONGRAPH_HANDLE", CUDNN_TYPE_HANDLE, 1, &handle);
  graph->set_descs(CUDNN_ATTR_OPERATIONGRAPH_OPS, "CUDNN_ATTR_OPERATIONGRAPH_OPS", ops);
  graph->finalize();
  return graph;
}

// ---- plans -----------------------------------------------------------------------------------------

namespace {

// The engine configs heuristics `mode` proposes for `graph`, best first (none when the heuristics
// descriptor does not finalize; its status goes to `status`). The heuristics descriptor joins `keep`.
std::vector<DescPtr> engine_configs(const Desc& graph, cudnnBackendHeurMode_t mode, const Where& where,
                                    std::vector<DescPtr>& keep, cudnnStatus_t& status) {
  auto heur = std::make_unique<Desc>(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "ENGINEHEUR", where);
  SET_DESC(*heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph);
  SET(*heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
  status = heur->try_finalize();
  if (status != CUDNN_STATUS_SUCCESS) return {};
  int64_t n = 0;
  check(api().GetAttribute(heur->get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &n, nullptr),
        "cudnnBackendGetAttribute(ENGINEHEUR, CUDNN_ATTR_ENGINEHEUR_RESULTS count)", where);
  std::vector<DescPtr> cfgs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < n; ++i) {
    cfgs.push_back(std::make_unique<Desc>(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "ENGINECFG", where));
    raw.push_back(cfgs.back()->get());
  }
  int64_t got = 0;
  if (n > 0)
    check(api().GetAttribute(heur->get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n, &got,
                             raw.data()),
          "cudnnBackendGetAttribute(ENGINEHEUR, CUDNN_ATTR_ENGINEHEUR_RESULTS)", where);
  cfgs.resize(size_t(std::min(got, n)));
  keep.push_back(std::move(heur));
  return cfgs;
}

// Whether the engine of config `cfg` carries a numerical note in `avoid`.
bool has_note(const Desc& cfg, const std::vector<cudnnBackendNumericalNote_t>& avoid, const Where& where) {
  if (avoid.empty()) return false;
  Desc engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR, "ENGINE", where);
  cudnnBackendDescriptor_t raw = engine.get();
  int64_t got = 0;
  check(api().GetAttribute(cfg.get(), CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &got, &raw),
        "cudnnBackendGetAttribute(ENGINECFG, CUDNN_ATTR_ENGINECFG_ENGINE)", where);
  cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
  int64_t n = 0;
  check(api().GetAttribute(raw, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                           CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &n, notes),
        "cudnnBackendGetAttribute(ENGINE, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE)", where);
  for (int64_t i = 0; i < std::min<int64_t>(n, CUDNN_NUMERICAL_NOTE_TYPE_COUNT); ++i)
    if (std::find(avoid.begin(), avoid.end(), notes[i]) != avoid.end()) return true;
  return false;
}

}  // namespace

std::unique_ptr<Plan> build_plan(cudnnHandle_t handle, DescPtr graph, std::vector<DescPtr> keep, const Where& where,
                                 const std::vector<cudnnBackendNumericalNote_t>& avoid) {
  auto p = std::make_unique<Plan>();
  p->keep = std::move(keep);
  int tried = 0, passed_over = 0;
  cudnnStatus_t last = CUDNN_STATUS_SUCCESS;
  std::string last_step;
  for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    cudnnStatus_t heur_status = CUDNN_STATUS_SUCCESS;
    std::vector<DescPtr> cfgs = engine_configs(*graph, mode, where, p->keep, heur_status);
    if (heur_status != CUDNN_STATUS_SUCCESS) {
      last = heur_status;
      last_step = "cudnnBackendFinalize(ENGINEHEUR)";
    }
    for (DescPtr& cfg : cfgs) {
      if (has_note(*cfg, avoid, where)) {
        ++passed_over;
        continue;
      }
      ++tried;
      auto plan = std::make_unique<Desc>(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, "EXECUTION_PLAN", where);
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
            "cudnnBackendGetAttribute(EXECUTION_PLAN, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE)", where);
      p->keep.push_back(std::move(graph));
      p->keep.push_back(std::move(cfg));
      p->plan = std::move(plan);
      return p;
    }
  }
  const std::string over =
      passed_over ? "; " + std::to_string(passed_over) + " passed over for their numerical notes" : std::string();
  if (tried == 0 && last == CUDNN_STATUS_SUCCESS)
    throw Error(where.what + ": engine heuristics (modes A and FALLBACK) proposed no engine config we take (" +
                where.shape + over + ")");
  throw Error(where.what + ": " + last_step + " failed: " + status_string(last) + " (" + where.shape + "; " +
              std::to_string(tried) + " engine configs tried" + over +
              "; the runtime-compiled engines need libnvrtc.so.13 on the loader path)");
}

// ---- process-wide state ----------------------------------------------------------------------------

Session& session() {
  static Session* s = new Session;
  return *s;
}

bool available_locked(Session& st, int* dev_out, std::string* why) {
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
  if (!it->second.empty()) return refuse(why, it->second);
  if (dev_out) *dev_out = dev;
  return true;
}

namespace {

// The workspace for (device, stream), grown to at least `bytes`; `mu` held.
void* workspace(Session& st, int dev, cudaStream_t stream, int64_t bytes) {
  Session::Workspace& w = st.workspaces[{dev, stream}];
  if (w.bytes < bytes) {
    if (w.ptr) {
      ZIMAGE_CUDA_CHECK(cudaStreamSynchronize(stream));  // earlier calls on this stream may still use it
      ZIMAGE_CUDA_CHECK(cudaFree(w.ptr));
      note_device_free(size_t(w.bytes));
      w = {};
    }
    w.ptr = device_alloc(size_t(bytes));  // the memory limit and the out-of-memory line, as every buffer
    w.bytes = bytes;
    note_device_alloc(size_t(bytes));
    ++st.workspace_generation;
  }
  return w.ptr;
}

}  // namespace

void execute(Session& st, int dev, const Plan& plan, const std::vector<int64_t>& uids, const std::vector<void*>& ptrs,
             cudaStream_t stream, const Where& where) {
  ZIMAGE_CHECK(uids.size() == ptrs.size(), where.what + ": " + std::to_string(uids.size()) + " tensor ids for " +
                                               std::to_string(ptrs.size()) + " pointers (" + where.shape + ")");
  const cudnnHandle_t handle = st.handles.at(dev);
  void* ws = plan.workspace > 0 ? workspace(st, dev, stream, plan.workspace) : nullptr;
  Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, "VARIANT_PACK", where);
  SET(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, int64_t(uids.size()), uids.data());
  SET(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, int64_t(ptrs.size()), ptrs.data());
  SET(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
  pack.finalize();
  check(api().SetStream(handle, stream), "cudnnSetStream", where);
  check(api().Execute(handle, plan.plan->get(), pack.get()), "cudnnBackendExecute", where);
}

#undef SET
#undef SET_DESC

}  // namespace cudnn

bool cudnn_available(std::string* why) {
  cudnn::Session& st = cudnn::session();
  std::lock_guard<std::mutex> lock(st.mu);
  return cudnn::available_locked(st, nullptr, why);
}

uint64_t cudnn_workspace_generation() {
  cudnn::Session& st = cudnn::session();
  std::lock_guard<std::mutex> lock(st.mu);
  return st.workspace_generation;
}

void cudnn_release_stream(cudaStream_t stream) {
  cudnn::Session& st = cudnn::session();
  std::lock_guard<std::mutex> lock(st.mu);
  for (auto it = st.workspaces.begin(); it != st.workspaces.end();) {
    if (it->first.second != stream) {
      ++it;
      continue;
    }
    if (it->second.ptr) {
      cudaFree(it->second.ptr);  // no throw: called from a destructor; the stream was synchronized
      note_device_free(size_t(it->second.bytes));
    }
    it = st.workspaces.erase(it);
  }
}

}  // namespace zimage::gpu

#endif  // ZIMAGE_WITH_CUDNN

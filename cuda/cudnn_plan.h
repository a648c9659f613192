// The cuDNN backend API as attention_cudnn.cpp and conv_cudnn.cpp use it: the dlopen'ed entry
// points, owned descriptors, tensor descriptors, "heuristics mode A, else FALLBACK, first engine
// config that finalizes" plans, and the process-wide session (handles, workspaces, plan caches).
// Internal: compiled only when ZIMAGE_WITH_CUDNN is defined (cuDNN's headers found); the public
// side is cudnn_session.h.
// Every error is one line "<what>: <step> failed: <status> (<shape>)", where `what` names the
// path ("cuDNN SDPA", "cuDNN conv") and `shape` the request.
#pragma once
#ifndef ZIMAGE_WITH_CUDNN
#error "cudnn_plan.h needs cuDNN's headers (ZIMAGE_WITH_CUDNN)"
#endif
#include <cudnn_backend.h>  // enums and types only: libcudnn is dlopen'ed, never linked

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common.h"
#include "cudnn_session.h"

namespace zimage::gpu::cudnn {

// ---- the library, loaded once ----------------------------------------------------------------------

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
const Api* load_api(std::string* error);
// Only called once load_api succeeded.
const Api& api();

std::string one_line(std::string s);
std::string version_string(size_t v);  // 91900 -> "9.19.0"
std::string status_string(cudnnStatus_t s);

// The request an error message names: `what` the path ("cuDNN SDPA"), `shape` its sizes.
struct Where {
  std::string what, shape;
};

// Throws "<what>: <step> failed: <status> (<shape>)".
void check(cudnnStatus_t s, const std::string& step, const Where& where);

// ---- descriptors -----------------------------------------------------------------------------------

// An owned backend descriptor; `name` (e.g. "TENSOR") is used in error messages.
class Desc {
 public:
  Desc(cudnnBackendDescriptorType_t type, const char* name, const Where& where);
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  ~Desc();
  cudnnBackendDescriptor_t get() const { return d_; }
  const char* name() const { return name_; }

  // SetAttribute of `count` values of `type` at `values`.
  void set(cudnnBackendAttributeName_t attr, const char* attr_name, cudnnBackendAttributeType_t type, int64_t count,
           const void* values);
  void set_desc(cudnnBackendAttributeName_t attr, const char* attr_name, const Desc& value);
  // Several descriptors as one attribute (an operation graph's operations).
  void set_descs(cudnnBackendAttributeName_t attr, const char* attr_name, const std::vector<const Desc*>& values);
  cudnnStatus_t try_finalize();
  void finalize();

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
  const char* name_;
  Where where_;
};
using DescPtr = std::unique_ptr<Desc>;
// Attribute names spelled once: ZIMAGE_CUDNN_SET(d, CUDNN_ATTR_..., type, count, ptr).
#define ZIMAGE_CUDNN_SET(d, attr, type, count, ptr) (d).set(attr, #attr, type, count, ptr)
#define ZIMAGE_CUDNN_SET_DESC(d, attr, value) (d).set_desc(attr, #attr, value)

// A finalized tensor descriptor: `uid`, data type, dims, strides (as many as dims), 16-byte
// alignment; `by_value` for a host scalar read at execute time, `is_virtual` for an intermediate
// of a fused graph that never reaches memory.
struct TensorSpec {
  int64_t uid;
  cudnnDataType_t type;
  std::vector<int64_t> dims, strides;
  bool by_value = false, is_virtual = false;
};
DescPtr make_tensor(const TensorSpec& t, const Where& where);

// An operation graph of `ops` on `handle`, finalized.
DescPtr make_graph(cudnnHandle_t handle, const std::vector<const Desc*>& ops, const Where& where);

// ---- plans -----------------------------------------------------------------------------------------

// An execution plan with every descriptor it was built from (kept alive with it).
struct Plan {
  std::vector<DescPtr> keep;
  DescPtr plan;
  int64_t workspace = 0;
};

// The first engine config of heuristics mode A (else FALLBACK) that finalizes into a plan for
// `graph`, passing over configs whose engine carries one of the numerical notes in `avoid` (e.g.
// NONDETERMINISTIC, WINOGRAD); `keep` (the graph's tensors and operations) moves into the plan.
// Throws one line when none does, with the last failing step, its status and how many configs
// were tried and passed over.
std::unique_ptr<Plan> build_plan(cudnnHandle_t handle, DescPtr graph, std::vector<DescPtr> keep, const Where& where,
                                 const std::vector<cudnnBackendNumericalNote_t>& avoid = {});

// ---- process-wide state ----------------------------------------------------------------------------

// Deliberately leaked: no cuDNN or CUDA calls at static destruction. Every member is used with
// `mu` held (host side only; the GPU work is asynchronous).
struct Session {
  std::mutex mu;
  std::map<int, std::string> availability;  // device -> "" (available) or the reason
  std::map<int, cudnnHandle_t> handles;
  struct Workspace {
    void* ptr = nullptr;
    int64_t bytes = 0;
  };
  std::map<std::pair<int, cudaStream_t>, Workspace> workspaces;
  uint64_t workspace_generation = 0;
};
Session& session();

// Availability on the current device (`mu` held): the library loaded and a handle created there;
// otherwise false with the reason in `why`. On success `dev` is the current device.
bool available_locked(Session& s, int* dev, std::string* why);

// One path's plans, keyed by (device, the path's plan key). Used with the session's `mu` held.
// Generic in the plan type so that its bookkeeping is tested on the host (a plan of int).
template <class P>
class BasicPlanCache {
 public:
  // The plan of key, built by build() the first time (a build that throws leaves nothing cached).
  template <class Build>
  const P& get(int dev, const std::string& key, Build build) {
    auto it = plans_.find({dev, key});
    if (it == plans_.end()) it = plans_.emplace(std::make_pair(dev, key), build()).first;
    return *it->second;
  }
  // As get, but a build that throws zimage::Error refuses the key: nullptr, its message in `why`,
  // and every later call for the key answers the same without building again. `first` (when given)
  // is true when this call built or tried to build.
  template <class Build>
  const P* try_get(int dev, const std::string& key, Build build, std::string* why, bool* first = nullptr) {
    const std::pair<int, std::string> k{dev, key};
    if (first) *first = false;
    if (auto it = plans_.find(k); it != plans_.end()) return it->second.get();
    if (auto it = refused_.find(k); it != refused_.end()) {
      if (why) *why = it->second;
      return nullptr;
    }
    if (first) *first = true;
    try {
      return plans_.emplace(k, build()).first->second.get();
    } catch (const Error& e) {
      refused_.emplace(k, e.what());
      if (why) *why = e.what();
      return nullptr;
    }
  }
  size_t size() const { return plans_.size(); }
  size_t refused() const { return refused_.size(); }

 private:
  std::map<std::pair<int, std::string>, std::unique_ptr<P>> plans_;
  std::map<std::pair<int, std::string>, std::string> refused_;
};
using PlanCache = BasicPlanCache<Plan>;

// Executes `plan` on `stream` with the tensors `uids` at `ptrs` (by-value tensors point to host
// memory), the workspace of (dev, stream) grown to the plan's size. `mu` held.
void execute(Session& s, int dev, const Plan& plan, const std::vector<int64_t>& uids, const std::vector<void*>& ptrs,
             cudaStream_t stream, const Where& where);

}  // namespace zimage::gpu::cudnn

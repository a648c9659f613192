// CUDA graphs of the DiT step's blocks (docs/cuda.md, "Verification status": the blocks captured in
// a CUDA graph and replayed). CudaModel::forward queues the refiners, unify and the main layers
// (about 400 kernels and GEMMs at the Turbo config) without any host synchronization; StepGraphs captures that
// sequence once per key and replays it, so each later step costs one cudaGraphLaunch instead of
// hundreds of launches. The work is the same kernels with the same arguments: a replay is bitwise
// the eager run (tests/cuda/test_cuda_graph.cpp).
//
// The policy (GraphCache, host-only, tested without a GPU): a key seen the first time runs
// eagerly, so that every buffer it needs has grown and every cuBLASLt algorithm and cuDNN plan
// exists (nothing captured allocates, builds a plan or synchronizes); seen a second time it is
// captured and launched; after that it is replayed. A key holds every shape, length, option and
// device pointer the queued work reads, plus cudnn_workspace_generation() (attention_cudnn.h),
// which moves whenever cuDNN's workspace is reallocated (the one buffer outside the model's step
// state that a graph may point into; cuBLASLt's workspace is fixed when the Runtime is made): a
// graph never replays on freed memory. A capture
// that fails (an operation the stream cannot capture: the capture is invalidated, or ending or
// instantiating it fails) marks its key eager-only, says so once on stderr, and the step runs
// eagerly. An error thrown while the capture stays valid is dropped with the capture and the step
// reruns eagerly: if the eager run throws too, the error is the step's own and is thrown on, the
// key unmarked; if it succeeds, the error came from capturing (a library call that fails only
// inside a capture), and the key is marked eager-only as above. At most `capacity` graphs are
// kept, the least recently used evicted.
// Off: CudaOptions::graph = false, ZIMAGE_CUDA_GRAPH=0 in the environment, the step profile on
// (its events would be captured), or the debug switch ZIMAGE_CUDA_SYNC=1 (it synchronizes).
#pragma once
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common.h"

namespace zimage::gpu {

// Everything the queued work depends on, as integers (pointers by address).
struct GraphKey {
  std::vector<int64_t> values;
  GraphKey& add(int64_t v) {
    values.push_back(v);
    return *this;
  }
  GraphKey& add(const void* p) { return add(int64_t(reinterpret_cast<uintptr_t>(p))); }
  GraphKey& add(const std::vector<int64_t>& v) {
    add(int64_t(v.size()));
    values.insert(values.end(), v.begin(), v.end());
    return *this;
  }
  bool operator<(const GraphKey& o) const { return values < o.values; }
  bool operator==(const GraphKey& o) const { return values == o.values; }
};

// Device data that depends on the step's shapes only (the RoPE tables, the gathered freqs, the key
// masks: built once per shape, docs/cuda.md "Verification status"): rebuilt when the key that made
// it changes.
class ShapeMemo {
 public:
  bool holds(const GraphKey& key) const { return valid_ && key == key_; }
  // Runs rebuild() unless the memo holds key, then remembers key; forgotten first, so a rebuild
  // that throws half-way leaves nothing claimed as built.
  template <class Rebuild>
  void refresh(GraphKey key, Rebuild&& rebuild) {
    if (holds(key)) return;
    forget();
    rebuild();
    remember(std::move(key));
  }
  void remember(GraphKey key) {
    key_ = std::move(key);
    valid_ = true;
  }
  void forget() { valid_ = false; }

 private:
  GraphKey key_;
  bool valid_ = false;
};

enum class GraphAction { eager, capture, replay };

// The policy above, over any graph handle type (cudaGraphExec_t owners on the GPU, ints in the
// host tests).
template <class Exec>
class GraphCache {
 public:
  explicit GraphCache(size_t capacity = 4) : capacity_(capacity < 1 ? 1 : capacity) {}

  // What to do for `key` now; records it as seen.
  GraphAction next(const GraphKey& key) {
    if (find(key)) return GraphAction::replay;
    if (failed_.count(key)) return GraphAction::eager;
    if (seen_.insert(key).second) return GraphAction::eager;
    return GraphAction::capture;
  }
  // The graph stored for key (most recently used from now on), or nullptr.
  Exec* find(const GraphKey& key) {
    for (auto it = lru_.begin(); it != lru_.end(); ++it)
      if (it->first == key) {
        lru_.splice(lru_.begin(), lru_, it);
        return &lru_.front().second;
      }
    return nullptr;
  }
  // Keeps `exec` for key; evicts the least recently used graph beyond the capacity.
  Exec& store(const GraphKey& key, Exec exec) {
    lru_.emplace_front(key, std::move(exec));
    while (lru_.size() > capacity_) {
      seen_.erase(lru_.back().first);  // an evicted key starts over (eager, then capture)
      lru_.pop_back();
    }
    return lru_.front().second;
  }
  // The capture of key failed: it runs eagerly from now on.
  void fail(const GraphKey& key) { failed_.insert(key); }
  size_t size() const { return lru_.size(); }

 private:
  size_t capacity_;
  std::list<std::pair<GraphKey, Exec>> lru_;
  std::set<GraphKey> seen_, failed_;
};

// What StepGraphs did, counted from its creation.
struct GraphCounts {
  int64_t eager = 0, captured = 0, replayed = 0, failed = 0;
};

// True unless ZIMAGE_CUDA_GRAPH=0 (read once per process).
bool graphs_enabled_by_env();

// The CUDA side: owns the instantiated graphs.
class StepGraphs {
 public:
  explicit StepGraphs(size_t capacity = 4);
  ~StepGraphs();
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;

  // Runs `queue` (which queues work on `s` and never synchronizes) for `key`: eagerly, by capture
  // and launch, or by replaying the graph captured earlier, as the policy says. With use_graph
  // false it always runs eagerly (and counts nothing).
  void run(const GraphKey& key, cudaStream_t s, bool use_graph, const std::function<void()>& queue);
  const GraphCounts& counts() const { return counts_; }

 private:
  struct Exec;  // a cudaGraphExec_t owner
  // Marks `key` eager-only (counts it failed; says why on stderr, once per StepGraphs).
  void mark_eager_only(const GraphKey& key, const std::string& why);
  GraphCache<std::shared_ptr<Exec>> cache_;
  GraphCounts counts_;
  bool warned_ = false;
};

}  // namespace zimage::gpu

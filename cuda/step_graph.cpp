#include "step_graph.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace zimage::gpu {

bool graphs_enabled_by_env() {
  static const bool on = [] {
    const char* e = std::getenv("ZIMAGE_CUDA_GRAPH");
    return !(e != nullptr && std::strcmp(e, "0") == 0);
  }();
  return on;
}

struct StepGraphs::Exec {
  cudaGraphExec_t exec = nullptr;
  ~Exec() {
    if (exec) cudaGraphExecDestroy(exec);
  }
};

StepGraphs::StepGraphs(size_t capacity) : cache_(capacity) {}
StepGraphs::~StepGraphs() = default;

namespace {

// Ends a capture that is still open on s (after an exception), dropping what it captured.
void abandon_capture(cudaStream_t s) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(s, &status) == cudaSuccess && status != cudaStreamCaptureStatusNone) {
    cudaGraph_t g = nullptr;
    cudaStreamEndCapture(s, &g);
    if (g) cudaGraphDestroy(g);
  }
  cudaGetLastError();  // a capture error is not sticky; start the eager run clean
}

}  // namespace

void StepGraphs::mark_eager_only(const GraphKey& key, const std::string& why) {
  cudaGetLastError();
  cache_.fail(key);
  ++counts_.failed;
  if (!warned_) {
    std::fprintf(stderr, "zimage: CUDA graph capture of the step failed (%s); this shape runs without a graph\n",
                 why.c_str());
    warned_ = true;
  }
}

void StepGraphs::run(const GraphKey& key, cudaStream_t s, bool use_graph, const std::function<void()>& queue) {
  if (!use_graph) {
    queue();
    return;
  }
  const GraphAction action = cache_.next(key);
  if (action == GraphAction::replay) {
    ZIMAGE_CUDA_CHECK(cudaGraphLaunch(cache_.find(key)->get()->exec, s));
    ++counts_.replayed;
    return;
  }
  if (action == GraphAction::eager) {
    queue();
    ++counts_.eager;
    return;
  }
  // Capture, instantiate, launch. Relaxed mode: the queued code may call cudaMalloc-free host APIs
  // (cuBLASLt descriptors, cuDNN variant packs) while the stream is capturing.
  std::string why;
  cudaGraph_t graph = nullptr;
  ZIMAGE_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
  try {
    queue();
  } catch (const std::exception& e) {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    const bool queried = cudaStreamIsCapturing(s, &status) == cudaSuccess;
    if (queried && status == cudaStreamCaptureStatusActive) {
      // The capture is still valid: the error is either the step's own (a refused shape, out of
      // memory, a plan that does not build) or a library call's that fails only while capturing.
      // Nothing captured ran, so the step reruns eagerly: the step's own error throws again there,
      // the key unmarked (it may be captured at a later step); an eager run that succeeds makes
      // the key eager-only.
      const std::string captured_error = e.what();
      abandon_capture(s);
      queue();
      mark_eager_only(key, captured_error);
      ++counts_.eager;
      return;
    }
    why = e.what();
  }
  if (why.empty()) {
    const cudaError_t e = cudaStreamEndCapture(s, &graph);
    if (e != cudaSuccess) why = std::string("cudaStreamEndCapture: ") + cudaGetErrorString(e);
  } else {
    abandon_capture(s);
  }
  auto exec = std::make_shared<Exec>();
  if (why.empty()) {
    const cudaError_t e = cudaGraphInstantiate(&exec->exec, graph, 0);
    if (e != cudaSuccess) why = std::string("cudaGraphInstantiate: ") + cudaGetErrorString(e);
  }
  if (graph) cudaGraphDestroy(graph);
  if (!why.empty()) {
    mark_eager_only(key, why);
    queue();  // nothing captured ran: the step runs eagerly (a real error throws again here)
    ++counts_.eager;
    return;
  }
  Exec& stored = *cache_.store(key, std::move(exec));
  ZIMAGE_CUDA_CHECK(cudaGraphLaunch(stored.exec, s));
  ++counts_.captured;
}

}  // namespace zimage::gpu

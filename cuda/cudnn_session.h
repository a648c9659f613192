// What every cuDNN path here shares (attention_cudnn.h's fused SDPA, conv_cudnn.h's convolution):
// libcudnn loaded at run time with dlopen ("libcudnn_graph.so.9", else "libcudnn.so.9"; the build
// needs only the headers), one handle per device, one workspace per (device, stream), grown as
// needed. The backend-API plumbing itself (descriptors, heuristics, plans, execute) is
// cudnn_plan.h, compiled only with cuDNN's headers.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

namespace zimage::gpu {

// True when cuDNN is compiled in (ZIMAGE_WITH_CUDNN), the library loaded (any 9.x) and a handle
// was created on the current device. Otherwise false and `why` gets one line naming cuDNN, e.g.
// "cuDNN not found (libcudnn_graph.so.9: ...)". The result for the current device is remembered.
bool cudnn_available(std::string* why = nullptr);

// How many times a cuDNN workspace has been (re)allocated in this process: a CUDA graph that
// captured a cuDNN call points into the workspace of its time (step_graph.h keys on this).
uint64_t cudnn_workspace_generation();

// Frees the workspaces kept for `stream` (on any device). The stream's owner calls it before it
// destroys the stream, after synchronizing it (Runtime's destructor): a workspace is kept per
// stream, so a process that makes a Runtime per image would otherwise keep one per image.
void cudnn_release_stream(cudaStream_t stream);

}  // namespace zimage::gpu

// kernels/cuda/graphs.cpp: CUDA graphs behind device_memory's graph hooks. The runtime records one decode step's
// kernels once (stream capture) and replays them as one launch per step (runtime/step_graphs.h), which removes the
// host's per-kernel launch cost: a batch-1 decode step of the 9B model is ~700 small kernels.
//
// Capture mode is relaxed: an arena chunk or a workspace allocated during the recording (cudaMalloc) is allowed;
// anything that synchronizes (a pageable copy, a stream wait) fails the recording, and graph_end then returns null
// after ending the capture, so the stream stays usable and the caller runs the step without a graph.
#include <cuda_runtime.h>

#include "core/log.h"
#include "kernels/cuda/cuda_host.h"

namespace autoglm::cuda {

void graph_begin(const kernel_context& kc) {
  stream_state& s = state_of(kc);
  check(cudaStreamBeginCapture(stream_of(s), cudaStreamCaptureModeRelaxed), "graph capture begin");
}

void* graph_end(const kernel_context& kc) {
  stream_state& s = state_of(kc);
  cudaGraph_t graph = nullptr;
  join_side(s);  // a forked branch must rejoin before the capture ends
  const cudaError_t e = cudaStreamEndCapture(stream_of(s), &graph);
  if (e != cudaSuccess || !graph) {
    cudaGetLastError();  // the capture's error, cleared: the stream is usable again
    AG_LOG_WARN("cuda: a step could not be recorded as a graph ({}); it runs without one", cudaGetErrorString(e));
    if (graph) cudaGraphDestroy(graph);
    return nullptr;
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t ie = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (ie != cudaSuccess) {
    cudaGetLastError();
    AG_LOG_WARN("cuda: a recorded step could not be instantiated ({}); it runs without a graph", cudaGetErrorString(ie));
    return nullptr;
  }
  return exec;
}

void graph_launch(const kernel_context& kc, void* graph) {
  stream_state& s = state_of(kc);
  check(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph), stream_of(s)), "graph launch");
}

void graph_destroy(device dev, void* graph) {
  if (!graph) return;
  int cur = -1;
  if (cudaGetDevice(&cur) == cudaSuccess && cur != dev.index) cudaSetDevice(dev.index);
  cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph));
}

}  // namespace autoglm::cuda

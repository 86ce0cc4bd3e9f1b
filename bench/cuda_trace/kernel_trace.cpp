// bench/cuda_trace/kernel_trace.cpp: a CUPTI injection library for the GPU machine, to see where a decode step's
// time goes with everything on (CUDA graphs, programmatic dependent launch, the side stream): Nsight Compute
// serializes launches, and the lent machine's nsys cannot write reports. Run a command with
//
//   CUDA_INJECTION64_PATH=/path/libautoglm_kernel_trace.so AUTOGLM_KERNEL_TRACE=trace.csv <command>
//
// and the CUDA driver loads this library into the command and calls InitializeInjection() before the first CUDA
// call. It records every kernel's activity (CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: launched alone or as a node of a
// graph, without serializing kernels) and at exit writes one CSV line per kernel:
//
//   start_ns,end_ns,stream,grid_x,grid_y,grid_z,block_x,graph_node,name
//
// (GPU timestamps; the name demangled, quoted, last). scripts/kernel_trace_report.py reads it. A tool, never linked
// into autoglm; built only where the CUDA toolkit has CUPTI.
#include <cupti.h>
#include <cxxabi.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

namespace {

struct kernel_record {
  uint64_t start, end, graph_node;
  uint32_t stream;
  int32_t grid[3], block_x;
  std::string name;
};

std::mutex g_mutex;
std::vector<kernel_record> g_records;  // guarded by g_mutex (CUPTI completes buffers on its own thread)
std::string g_out;

constexpr size_t k_buffer_bytes = size_t(8) << 20;

void report(CUptiResult r, const char* what) {
  if (r == CUPTI_SUCCESS) return;
  const char* msg = nullptr;
  cuptiGetResultString(r, &msg);
  std::fprintf(stderr, "kernel_trace: %s: %s\n", what, msg ? msg : "unknown CUPTI error");
}

std::string demangled(const char* name) {
  if (!name) return "?";
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string s = status == 0 && d ? d : name;
  std::free(d);
  return s;
}

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, k_buffer_bytes));
  *size = *buffer ? k_buffer_bytes : 0;
  *max_records = 0;  // as many as fit
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid_bytes) {
  std::vector<kernel_record> batch;
  CUpti_Activity* rec = nullptr;
  while (cuptiActivityGetNextRecord(buffer, valid_bytes, &rec) == CUPTI_SUCCESS) {
    if (rec->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && rec->kind != CUPTI_ACTIVITY_KIND_KERNEL) continue;
    const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(rec);
    batch.push_back({k->start, k->end, k->graphNodeId, k->streamId, {k->gridX, k->gridY, k->gridZ}, k->blockX,
                     demangled(k->name)});
  }
  std::free(buffer);
  std::lock_guard<std::mutex> lock(g_mutex);
  for (kernel_record& r : batch) g_records.push_back(std::move(r));
}

void write_trace() {
  report(cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED), "flush");
  std::lock_guard<std::mutex> lock(g_mutex);
  FILE* f = std::fopen(g_out.c_str(), "w");
  if (!f) {
    std::fprintf(stderr, "kernel_trace: cannot write %s\n", g_out.c_str());
    return;
  }
  std::fprintf(f, "start_ns,end_ns,stream,grid_x,grid_y,grid_z,block_x,graph_node,name\n");
  for (const kernel_record& r : g_records) {
    std::string quoted;
    for (char c : r.name) {
      if (c == '"') quoted += '"';  // CSV doubles a quote inside a quoted field
      quoted += c;
    }
    std::fprintf(f, "%llu,%llu,%u,%d,%d,%d,%d,%llu,\"%s\"\n", static_cast<unsigned long long>(r.start),
                 static_cast<unsigned long long>(r.end), r.stream, r.grid[0], r.grid[1], r.grid[2], r.block_x,
                 static_cast<unsigned long long>(r.graph_node), quoted.c_str());
  }
  std::fclose(f);
  std::fprintf(stderr, "kernel_trace: %zu kernels -> %s\n", g_records.size(), g_out.c_str());
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int InitializeInjection() {
  const char* out = std::getenv("AUTOGLM_KERNEL_TRACE");
  g_out = out && *out ? out : "kernel_trace.csv";
  report(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed), "register callbacks");
  report(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "enable kernel records");
  std::atexit(write_trace);
  return 1;
}

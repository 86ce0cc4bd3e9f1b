// ops/context.h: the execution context every op takes: which device and backend, the thread pool or stream,
// a scratch arena for activations, the named-intermediate dump callback, and the communicator slot for tensor
// parallelism. The engine owns one context per concurrent worker (decoder, vision encoder); tools and tests
// make their own. A context is used by one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/communicator.h"
#include "core/kernel_registry.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace autoglm {

// Bump allocator for the activations of one forward pass on one device. Memory comes in chunks that are never
// moved, so tensors handed out stay valid until reset(); reset() keeps the memory for the next pass.
class scratch_arena {
 public:
  explicit scratch_arena(device dev);
  ~scratch_arena();
  scratch_arena(const scratch_arena&) = delete;
  scratch_arena& operator=(const scratch_arena&) = delete;

  tensor alloc(dtype type, const std::vector<int64_t>& shape);
  void reset();
  size_t bytes_reserved() const;
  size_t high_water() const { return high_water_; }

  // Changes whenever chunks are added or replaced: addresses handed out under another generation may be gone.
  uint64_t generation() const { return generation_; }
  // The bump state, to put back after a recorded graph replays the allocations of a pass the host did not run
  // again (runtime/step_graphs): allocations after restore() land where they landed after the recording.
  struct mark {
    std::vector<size_t> used;
    size_t in_use = 0;
    bool operator==(const mark& o) const { return used == o.used && in_use == o.in_use; }
  };
  mark get_mark() const;
  void restore(const mark& m);  // m from get_mark() under the same generation()

 private:
  struct chunk {
    void* data = nullptr;
    size_t size = 0;
    size_t used = 0;
  };
  device dev_;
  std::vector<chunk> chunks_;
  size_t in_use_ = 0, high_water_ = 0;
  uint64_t generation_ = 0;
};

// name, tensor (host F32 copy; rows x cols) of a named intermediate, e.g. "layer.3.attn_norm".
using dump_fn = std::function<void(const std::string& name, const tensor& value)>;

class exec_context {
 public:
  // n_threads: CPU worker threads of this context's own pool (0 = all cores). Registers the built-in backends
  // on first use.
  explicit exec_context(device dev = {}, int32_t n_threads = 0);
  ~exec_context();
  exec_context(const exec_context&) = delete;
  exec_context& operator=(const exec_context&) = delete;

  device dev() const { return kc_.dev; }
  const kernel_context& kernels() const { return kc_; }
  thread_pool* pool() const { return pool_.get(); }
  scratch_arena& arena() { return arena_; }

  void set_dump(dump_fn fn) { dump_ = std::move(fn); }
  const dump_fn& dump() const { return dump_; }
  void set_communicator(communicator* c) { comm_ = c; }
  communicator* comm() const { return comm_; }

 private:
  kernel_context kc_;
  std::unique_ptr<thread_pool> pool_;
  scratch_arena arena_;
  dump_fn dump_;
  communicator* comm_ = nullptr;
};

}  // namespace autoglm

// core/communicator.h: collective communication across the ranks of a tensor-parallel group (NCCL on GPUs, an
// in-process one on the CPU), as the model's ops see it. Backends implement it (kernels/cpu, kernels/cuda) and
// register a factory in their device_memory entry (core/kernel_registry.h); ops::all_reduce_sum and
// ops::all_gather_cols are the callers. Every rank calls the same collectives in the same order with tensors of
// the same shape; each rank is driven by its own thread (one thread per device: runtime/tensor_parallel.h).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace autoglm {

struct kernel_context;

class communicator {
 public:
  virtual ~communicator() = default;
  virtual int32_t rank() const = 0;
  virtual int32_t size() const = 0;
  // x = sum over ranks of x, F32 [n, d] contiguous on the rank's device. Summation order is the same on every
  // rank, so all ranks hold identical results afterwards.
  virtual void all_reduce_sum(const kernel_context& kc, tensor& x) = 0;
  // out [size() * n, d] = the ranks' x [n, d] stacked in rank order (rank r's rows at [r * n, (r + 1) * n)); F32,
  // contiguous, on the rank's device.
  virtual void all_gather_rows(const kernel_context& kc, const tensor& x, tensor& out) = 0;
  // A rank that failed part-way calls this so that the others, waiting in a collective for it, throw instead of
  // waiting forever; the group cannot be used afterwards.
  virtual void abort() = 0;
};

// The communicators of one group whose ranks all live in this process: element r is rank r on devs[r].
using communicator_group = std::vector<std::unique_ptr<communicator>>;

}  // namespace autoglm

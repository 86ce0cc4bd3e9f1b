// kernels/cpu/inprocess_communicator.h: the CPU backend's communicator (core/communicator.h): the ranks of a
// tensor-parallel group are threads of this process sharing host memory, so a collective is a barrier, a sum
// over the ranks' buffers and a second barrier. It makes the sharding and the collective call sequence of the
// model testable on any machine (tests/runtime/tensor_parallel_test.cpp: TP=2/4 against TP=1); on GPUs the same
// calls go to NCCL (kernels/cuda/nccl_communicator.cpp).
#pragma once

#include <vector>

#include "core/communicator.h"

namespace autoglm::cpu {

// n = devs.size() communicators of one group (every device must be the CPU).
communicator_group create_inprocess_communicators(const std::vector<device>& devs);

}  // namespace autoglm::cpu

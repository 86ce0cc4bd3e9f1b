// runtime/step_graphs.h: decode steps replayed as recorded graphs (CUDA graphs through ops::graph_*).
//
// A batch-1 decode step of the 9B model is ~700 small kernels; launched one by one from the engine thread they
// cost more host time than the GPU needs to run them (bench/results/cuda_h200_*.md). A step whose shape repeats
// (n decoding sequences, their contexts rounded up to a bucket of k_context_bucket positions) is recorded once
// and then replayed as one launch:
//   1st time a shape is seen: run normally (the arena and the kernels' workspaces grow to what the shape needs);
//   2nd time: record the device work (model::compute_step) and replay it;
//   after that: upload the step's inputs (model::prepare_step: same arena offsets, same tables' shapes) and replay.
// The recording holds device addresses: it is dropped when the scratch arena's chunks change (a larger prefill
// made it grow) and recorded again. Workspaces are never freed while their stream lives (kernels/cuda/memory.cpp).
// AUTOGLM_CUDA_GRAPHS=0 turns this off (bisection, benchmarks).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <tuple>
#include <vector>

#include "model/model.h"
#include "ops/context.h"

namespace autoglm {

class step_graphs {
 public:
  static constexpr int32_t k_context_bucket = 256;  // positions: one recording per 256 tokens of context
  static constexpr int32_t k_max_seqs = 8;          // the decode GEMV's row limit (more rows take cuBLAS GEMMs)

  // Enabled when ctx's backend records graphs, the model has a two-phase forward and AUTOGLM_CUDA_GRAPHS != 0.
  step_graphs(exec_context& ctx, const model& m);
  bool enabled() const { return enabled_; }
  // A step that may be replayed: every sequence adds one token, at most k_max_seqs of them, no image rows, no
  // dump callback on the context.
  bool eligible(const forward_batch& batch) const;
  // The step's logits as model::forward_logits returns them (in ctx's arena).
  tensor run(const forward_batch& batch, const std::vector<paged_kv_layer>& kv);

  int64_t n_recorded() const { return n_recorded_; }
  int64_t n_replayed() const { return n_replayed_; }

 private:
  using key = std::tuple<int32_t, int32_t, int32_t>;  // sequences, logits rows, context bucket
  struct recording {
    std::shared_ptr<void> graph;
    tensor logits;
    uint64_t arena_generation = 0;
    scratch_arena::mark before, after;  // the arena after prepare_step and after compute_step
  };

  exec_context& ctx_;
  const model& model_;
  bool enabled_ = false;
  std::map<key, recording> recordings_;
  std::set<key> seen_;
  std::set<key> unrecordable_;  // shapes whose recording failed: always run plainly
  int64_t n_recorded_ = 0, n_replayed_ = 0;
};

}  // namespace autoglm

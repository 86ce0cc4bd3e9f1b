// runtime/step_graphs.cpp: see step_graphs.h.
#include "runtime/step_graphs.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "core/log.h"
#include "ops/ops.h"

namespace autoglm {

namespace {

bool graphs_wanted() {
  const char* e = std::getenv("AUTOGLM_CUDA_GRAPHS");
  return !(e && std::string(e) == "0");
}

}  // namespace

step_graphs::step_graphs(exec_context& ctx, const model& m) : ctx_(ctx), model_(m) {
  enabled_ = graphs_wanted() && ops::graphs_supported(ctx_);
}

bool step_graphs::eligible(const forward_batch& batch) const {
  if (!enabled_ || ctx_.dump() || !batch.embeddings.empty()) return false;
  if (batch.sequences.empty() || int32_t(batch.sequences.size()) > k_max_seqs) return false;
  for (const auto& s : batch.sequences)
    if (s.n_tokens != 1) return false;
  return true;
}

tensor step_graphs::run(const forward_batch& batch, const std::vector<paged_kv_layer>& kv) {
  int32_t max_context = 0;
  for (const auto& s : batch.sequences) max_context = std::max(max_context, s.n_past + s.n_tokens);
  const int32_t bucket = (max_context + k_context_bucket - 1) / k_context_bucket * k_context_bucket;
  const key k{int32_t(batch.sequences.size()), int32_t(batch.logits_rows.size()), bucket};

  std::unique_ptr<prepared_step> step = model_.prepare_step(ctx_, batch, kv, bucket);
  if (!step) {  // no two-phase forward after all
    enabled_ = false;
    return model_.forward_logits(ctx_, batch, kv);
  }
  scratch_arena& arena = ctx_.arena();
  auto it = recordings_.find(k);
  if (it != recordings_.end()) {
    recording& r = it->second;
    if (r.arena_generation == arena.generation() && r.before == arena.get_mark()) {
      arena.restore(r.after);
      ops::graph_launch(ctx_, r.graph);
      ++n_replayed_;
      return r.logits;
    }
    recordings_.erase(it);  // the arena moved: record again
  }
  if (!seen_.count(k) || unrecordable_.count(k)) {  // first sight: run plainly, memory grows outside a recording
    seen_.insert(k);
    return model_.compute_step(ctx_, *step, kv);
  }

  recording r;
  r.before = arena.get_mark();
  const uint64_t generation_before = arena.generation();
  ops::graph_begin(ctx_);
  tensor logits;
  try {
    logits = model_.compute_step(ctx_, *step, kv);
  } catch (...) {
    ops::graph_end(ctx_);  // leave capture mode; the recording is dropped
    throw;
  }
  r.graph = ops::graph_end(ctx_);
  if (!r.graph) {  // could not be recorded: run the step plainly and never try this shape again
    unrecordable_.insert(k);
    arena.restore(r.before);
    return model_.compute_step(ctx_, *step, kv);
  }
  r.after = arena.get_mark();
  r.arena_generation = arena.generation();
  r.logits = logits;
  ++n_recorded_;
  ops::graph_launch(ctx_, r.graph);  // recording ran nothing: run it now
  // If the arena grew while recording, its chunks merge at the next reset: the generation check then drops this
  // recording (kept until then: the launch above may still be running).
  if (r.arena_generation != generation_before)
    AG_LOG_DEBUG("step_graphs: the arena grew while recording; the shape is recorded again next time");
  recordings_[k] = std::move(r);
  return logits;
}

}  // namespace autoglm

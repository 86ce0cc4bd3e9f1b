// runtime/scheduler.h: continuous batching over a waiting queue and a running set. Each step's batch holds one
// decode token for every running sequence, then prefill chunks (running sequences still prefilling first, then
// newly admitted ones, FCFS) within max_batch_tokens, so a long prompt is split over steps instead of stalling
// running streams. Admission needs KV blocks for all of a sequence's tokens (after prefix reuse); when a decode
// needs a block and none is free, the newest running sequence is preempted by recompute: its blocks are released
// and it goes back to the front of the waiting queue with its generated tokens (re-prefilled later, usually from
// the prefix cache). A prefill never passes a sequence's ready_until() (a placeholder whose image embedding is
// not there yet): such a sequence keeps its slot and blocks and runs on once the engine attaches the image.
// Pure CPU logic: no model, no sampling.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "runtime/block_manager.h"
#include "runtime/sequence.h"

namespace autoglm {

struct scheduler_config {
  int32_t max_num_seqs = 16;
  int32_t max_batch_tokens = 512;  // decode tokens count against it first; prefill chunks get what is left
  int32_t max_model_len = 0;       // 0 = unlimited; a sequence reaching it finishes with LENGTH
};

// New tokens [seq->n_computed, seq->n_computed + n_tokens) of one sequence in this step.
struct scheduled_chunk {
  sequence* seq = nullptr;
  int32_t n_tokens = 0;
  bool wants_logits = false;  // the chunk reaches the sequence's last token: sample after the forward
};

class scheduler {
 public:
  scheduler(const scheduler_config& config, block_manager& blocks);

  void add(std::unique_ptr<sequence> seq);
  // The next batch (empty when there is nothing to run). Allocates blocks; may preempt.
  std::vector<scheduled_chunk> schedule();
  // After a successful forward of `batch`: the chunks' K/V are in the cache.
  void complete(const std::vector<scheduled_chunk>& batch);
  // Appends a sampled token and applies the stopping rules; a finished sequence releases its blocks at once and
  // waits in take_finished(). Returns its finish reason (NONE while it goes on).
  finish_reason append_token(sequence& seq, int32_t token);
  // Removes a sequence wherever it is (cancel, error), releasing its blocks; nullptr when unknown.
  std::unique_ptr<sequence> remove(uint64_t id, finish_reason reason);
  std::vector<std::unique_ptr<sequence>> take_finished();

  int32_t n_waiting() const { return int32_t(waiting_.size()); }
  int32_t n_running() const { return int32_t(running_.size()); }
  bool idle() const { return waiting_.empty() && running_.empty(); }
  int64_t n_preemptions() const { return n_preemptions_; }
  const std::vector<std::unique_ptr<sequence>>& running() const { return running_; }
  const std::deque<std::unique_ptr<sequence>>& waiting() const { return waiting_; }

 private:
  void preempt_last();

  scheduler_config config_;
  block_manager& blocks_;
  std::deque<std::unique_ptr<sequence>> waiting_;
  std::vector<std::unique_ptr<sequence>> running_;  // admission order: the back is preempted first
  std::vector<std::unique_ptr<sequence>> finished_;
  int64_t n_preemptions_ = 0;
};

}  // namespace autoglm

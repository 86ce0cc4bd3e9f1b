// runtime/scheduler.cpp: one step = decodes, then prefill chunks of running sequences, then admissions.
#include "runtime/scheduler.h"

#include <algorithm>
#include <utility>

#include "core/error.h"

namespace autoglm {

scheduler::scheduler(const scheduler_config& config, block_manager& blocks) : config_(config), blocks_(blocks) {
  AG_CHECK(config.max_num_seqs > 0 && config.max_batch_tokens > 0, "scheduler limits must be positive");
}

void scheduler::add(std::unique_ptr<sequence> seq) {
  AG_CHECK(seq->n_tokens() > 0, "empty sequence");
  AG_CHECK(blocks_.n_blocks_for(seq->n_tokens() + 1) <= blocks_.n_blocks(), "sequence can never fit the KV pool");
  seq->status = sequence_status::WAITING;
  waiting_.push_back(std::move(seq));
}

void scheduler::preempt_last() {
  std::unique_ptr<sequence> victim = std::move(running_.back());
  running_.pop_back();
  blocks_.release(*victim);
  victim->status = sequence_status::WAITING;
  waiting_.push_front(std::move(victim));
  ++n_preemptions_;
}

std::vector<scheduled_chunk> scheduler::schedule() {
  std::vector<scheduled_chunk> batch;
  int32_t budget = config_.max_batch_tokens;
  bool preempted = false;

  // 1. Decodes: every running sequence whose prompt is fully computed gets its one new token.
  for (size_t i = 0; i < running_.size(); ++i) {
    sequence& seq = *running_[i];
    if (seq.n_tokens() - seq.n_computed != 1 || seq.n_computed >= seq.ready_until()) continue;
    while (!blocks_.can_append(seq)) {
      const bool self = running_.back().get() == &seq;
      preempt_last();
      preempted = true;
      if (self) break;
    }
    if (i >= running_.size()) break;  // seq preempted itself (it was the newest)
    blocks_.append_slots(seq);
    batch.push_back({&seq, 1, true});
    --budget;
  }

  // 2. Prefill chunks of running sequences admitted earlier (blocks already cover their tokens).
  for (auto& seq : running_) {
    const int32_t remaining = seq->n_tokens() - seq->n_computed;
    if (remaining <= 1 || budget <= 0) continue;
    const int32_t n = std::min({remaining, budget, seq->ready_until() - seq->n_computed});
    if (n <= 0) continue;  // waiting for an image's embedding
    batch.push_back({seq.get(), n, n == remaining});
    budget -= n;
  }

  // 3. Admissions, FCFS, while blocks, sequence slots and the token budget allow. A step that preempted admits
  //    nothing, so the victim does not bounce straight back in.
  while (!preempted && budget > 0 && !waiting_.empty() && int32_t(running_.size()) < config_.max_num_seqs) {
    sequence& seq = *waiting_.front();
    if (!blocks_.can_allocate(seq)) break;
    blocks_.allocate(seq);
    if (!seq.admitted_once) {
      seq.admitted_once = true;
      seq.n_cached_prompt = std::min(seq.n_computed, seq.n_prompt);
    }
    seq.n_computed = std::max(seq.n_computed, std::min(seq.n_skip, seq.n_tokens() - 1));
    seq.status = sequence_status::RUNNING;
    const int32_t remaining = seq.n_tokens() - seq.n_computed;
    const int32_t n = std::min({remaining, budget, seq.ready_until() - seq.n_computed});
    if (n > 0) {  // else it holds its blocks until its image's embedding arrives
      batch.push_back({&seq, n, n == remaining});
      budget -= n;
    }
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  return batch;
}

void scheduler::complete(const std::vector<scheduled_chunk>& batch) {
  for (const scheduled_chunk& c : batch) {
    c.seq->n_computed += c.n_tokens;
    AG_CHECK(c.seq->n_computed <= c.seq->n_tokens(), "computed past the sequence end");
    blocks_.commit(*c.seq);
  }
}

finish_reason scheduler::append_token(sequence& seq, int32_t token) {
  seq.tokens.push_back(token);
  finish_reason r = finish_reason::NONE;
  if (std::find(seq.stop_ids.begin(), seq.stop_ids.end(), token) != seq.stop_ids.end())
    r = finish_reason::STOP;
  else if (seq.n_generated() >= seq.max_tokens)
    r = finish_reason::LENGTH;
  else if (config_.max_model_len > 0 && seq.n_tokens() >= config_.max_model_len)
    r = finish_reason::LENGTH;
  if (r != finish_reason::NONE) {
    auto it = std::find_if(running_.begin(), running_.end(), [&](const auto& s) { return s.get() == &seq; });
    AG_CHECK(it != running_.end(), "append_token on a sequence that is not running");
    blocks_.release(seq);
    seq.status = sequence_status::FINISHED;
    seq.finish = r;
    finished_.push_back(std::move(*it));
    running_.erase(it);
  }
  return r;
}

std::unique_ptr<sequence> scheduler::remove(uint64_t id, finish_reason reason) {
  std::unique_ptr<sequence> out;
  auto take = [&](auto& queue) {
    auto it = std::find_if(queue.begin(), queue.end(), [&](const auto& s) { return s->id == id; });
    if (it == queue.end()) return false;
    out = std::move(*it);
    queue.erase(it);
    return true;
  };
  if (!take(running_) && !take(waiting_) && !take(finished_)) return nullptr;
  if (out->status != sequence_status::FINISHED) {
    blocks_.release(*out);
    out->status = sequence_status::FINISHED;
    out->finish = reason;
  }
  return out;
}

std::vector<std::unique_ptr<sequence>> scheduler::take_finished() { return std::exchange(finished_, {}); }

}  // namespace autoglm

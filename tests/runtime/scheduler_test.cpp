// Scheduler: admission limits, chunked prefill beside running decodes, preemption by recompute, prefix reuse
// across requests, cancellation, stopping rules, and block accounting under a random workload.
#include <gtest/gtest.h>

#include <map>
#include <numeric>
#include <random>

#include "runtime/scheduler.h"

using namespace autoglm;

namespace {

std::unique_ptr<sequence> make_seq(uint64_t id, int32_t n_prompt, int32_t max_tokens = 100, int32_t first = 0) {
  auto s = std::make_unique<sequence>();
  s->id = id;
  s->tokens.resize(size_t(n_prompt));
  std::iota(s->tokens.begin(), s->tokens.end(), first);
  s->n_prompt = n_prompt;
  s->max_tokens = max_tokens;
  return s;
}

// The model's stand-in for tests: a token that depends only on the sequence's content, never a stop id.
int32_t next_token(const sequence& s) { return 1000 + s.n_tokens(); }

// A scheduled chunk copied out of the step (the sequence may be gone once it finished).
struct chunk_info {
  uint64_t id;
  int32_t n_tokens;
  bool wants_logits;
};

struct harness {
  block_manager bm;
  scheduler sched;
  std::map<uint64_t, std::vector<int32_t>> outputs;
  std::map<uint64_t, finish_reason> finished;
  harness(int32_t n_blocks, int32_t bs, scheduler_config cfg) : bm(n_blocks, bs, true), sched(cfg, bm) {}

  std::vector<chunk_info> step() {
    auto batch = sched.schedule();
    std::vector<chunk_info> out;
    for (const auto& c : batch) {
      EXPECT_GE(int32_t(c.seq->block_table.size()) * bm.block_size(), c.seq->n_computed + c.n_tokens);
      out.push_back({c.seq->id, c.n_tokens, c.wants_logits});
    }
    sched.complete(batch);
    for (const auto& c : batch) {
      if (!c.wants_logits) continue;
      const uint64_t id = c.seq->id;
      const int32_t t = next_token(*c.seq);
      outputs[id].push_back(t);
      finish_reason r = sched.append_token(*c.seq, t);
      if (r != finish_reason::NONE) finished[id] = r;
    }
    sched.take_finished();
    return out;
  }
  int run_to_idle(int max_steps = 10000) {
    int n = 0;
    while (!sched.idle() && n < max_steps) {
      step();
      ++n;
    }
    return n;
  }
};

scheduler_config cfg(int32_t max_seqs, int32_t max_tokens, int32_t max_len = 0) {
  scheduler_config c;
  c.max_num_seqs = max_seqs;
  c.max_batch_tokens = max_tokens;
  c.max_model_len = max_len;
  return c;
}

}  // namespace

TEST(scheduler, admits_up_to_max_num_seqs) {
  harness h(64, 4, cfg(2, 64));
  for (uint64_t id = 1; id <= 3; ++id) h.sched.add(make_seq(id, 5, 3));
  auto b = h.step();
  EXPECT_EQ(b.size(), 2u);
  EXPECT_EQ(h.sched.n_running(), 2);
  EXPECT_EQ(h.sched.n_waiting(), 1);
  h.run_to_idle();
  EXPECT_EQ(h.finished.size(), 3u);
  for (auto& [id, out] : h.outputs) EXPECT_EQ(out.size(), 3u);
  EXPECT_EQ(h.bm.n_used_blocks(), 0);
}

TEST(scheduler, admission_waits_for_blocks) {
  harness h(4, 4, cfg(8, 64));
  h.sched.add(make_seq(1, 10, 2));  // 3 blocks
  h.sched.add(make_seq(2, 10, 2));  // 3 more: must wait
  h.step();
  EXPECT_EQ(h.sched.n_running(), 1);
  EXPECT_EQ(h.sched.n_waiting(), 1);
  h.run_to_idle();
  EXPECT_EQ(h.finished.size(), 2u);
  EXPECT_EQ(h.bm.n_used_blocks(), 0);
}

TEST(scheduler, long_prompt_is_chunked_and_running_decodes_continue) {
  harness h(64, 4, cfg(4, 8));
  h.sched.add(make_seq(1, 3, 50));
  h.step();  // prefill of seq 1, first token sampled
  ASSERT_EQ(h.outputs[1].size(), 1u);
  h.sched.add(make_seq(2, 30, 1, 500));
  // Each step: seq 1 decodes one token, seq 2 gets a chunk of at most 7 tokens; logits only on the last chunk.
  int32_t prefilled = 0;
  int steps = 0;
  while (h.outputs[2].empty()) {
    auto b = h.step();
    ++steps;
    ASSERT_EQ(b.size(), 2u);
    EXPECT_EQ(b[0].id, 1u);
    EXPECT_EQ(b[0].n_tokens, 1);
    EXPECT_EQ(b[1].id, 2u);
    EXPECT_LE(b[1].n_tokens, 7);
    prefilled += b[1].n_tokens;
    EXPECT_EQ(b[1].wants_logits, prefilled == 30);
  }
  EXPECT_EQ(prefilled, 30);
  EXPECT_EQ(steps, 5);  // ceil(30 / 7)
  EXPECT_EQ(h.outputs[1].size(), 6u);
}

TEST(scheduler, preempts_newest_by_recompute_and_finishes_everything) {
  // 6 blocks of 4 tokens; two sequences of 8 prompt tokens growing to 20 each cannot both fit.
  harness h(6, 4, cfg(4, 64));
  h.sched.add(make_seq(1, 8, 12));
  h.sched.add(make_seq(2, 8, 12, 100));
  bool saw_preemption = false;
  for (int i = 0; i < 1000 && !h.sched.idle(); ++i) {
    h.step();
    if (h.sched.n_preemptions() > 0 && !saw_preemption) {
      saw_preemption = true;
      // The newest (2) went back to waiting holding no blocks; the oldest keeps running.
      ASSERT_EQ(h.sched.n_waiting(), 1);
      EXPECT_EQ(h.sched.waiting().front()->id, 2u);
      EXPECT_TRUE(h.sched.waiting().front()->block_table.empty());
      EXPECT_EQ(h.sched.waiting().front()->n_computed, 0);
      EXPECT_EQ(h.sched.running().front()->id, 1u);
    }
  }
  EXPECT_TRUE(saw_preemption);
  ASSERT_EQ(h.finished.size(), 2u);
  EXPECT_EQ(h.finished[1], finish_reason::LENGTH);
  EXPECT_EQ(h.finished[2], finish_reason::LENGTH);
  // Recompute keeps the generated tokens: each sequence still has exactly max_tokens outputs.
  EXPECT_EQ(h.outputs[1].size(), 12u);
  EXPECT_EQ(h.outputs[2].size(), 12u);
  EXPECT_EQ(h.bm.n_used_blocks(), 0);
}

TEST(scheduler, prefix_reuse_across_requests) {
  harness h(64, 4, cfg(4, 64));
  h.sched.add(make_seq(1, 18, 2));
  h.run_to_idle();
  auto s = make_seq(2, 18, 2);
  sequence* raw = s.get();
  h.sched.add(std::move(s));
  auto b = h.step();
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(raw->n_cached_prompt, 16);
  EXPECT_EQ(b[0].n_tokens, 2);  // only the uncached tail is prefilled
  h.run_to_idle();
  EXPECT_EQ(h.outputs[1], h.outputs[2]);
}

TEST(scheduler, cancellation_frees_blocks_anywhere) {
  harness h(64, 4, cfg(1, 64));
  h.sched.add(make_seq(1, 10, 50));
  h.sched.add(make_seq(2, 10, 50));
  h.step();
  EXPECT_GT(h.bm.n_used_blocks(), 0);
  auto w = h.sched.remove(2, finish_reason::CANCELLED);  // waiting
  ASSERT_TRUE(w);
  EXPECT_EQ(w->finish, finish_reason::CANCELLED);
  auto r = h.sched.remove(1, finish_reason::CANCELLED);  // running
  ASSERT_TRUE(r);
  EXPECT_TRUE(h.sched.idle());
  EXPECT_EQ(h.bm.n_used_blocks(), 0);
  EXPECT_FALSE(h.sched.remove(1, finish_reason::CANCELLED));
}

TEST(scheduler, stopping_rules) {
  harness h(64, 4, cfg(4, 64, 12));
  auto stop = make_seq(1, 4, 100);
  stop->stop_ids = {1000 + 5};  // the second generated token (chosen when the sequence has 5 tokens)
  h.sched.add(std::move(stop));
  h.sched.add(make_seq(2, 4, 3));    // max_tokens
  h.sched.add(make_seq(3, 4, 100));  // context limit 12
  h.run_to_idle();
  EXPECT_EQ(h.finished[1], finish_reason::STOP);
  EXPECT_EQ(h.outputs[1].size(), 2u);
  EXPECT_EQ(h.finished[2], finish_reason::LENGTH);
  EXPECT_EQ(h.outputs[2].size(), 3u);
  EXPECT_EQ(h.finished[3], finish_reason::LENGTH);
  EXPECT_EQ(h.outputs[3].size(), 8u);
}

TEST(scheduler, random_workload_never_leaks_blocks) {
  std::mt19937 rng(42);
  harness h(24, 4, cfg(6, 16));
  uint64_t next_id = 1;
  std::vector<uint64_t> live;
  for (int step = 0; step < 3000; ++step) {
    if (rng() % 3 == 0 && next_id < 300) {
      const int32_t n = int32_t(1 + rng() % 30);
      // Shared prefixes: half the prompts start with the same tokens.
      h.sched.add(make_seq(next_id, n, int32_t(1 + rng() % 20), rng() % 2 ? 0 : int32_t(next_id * 1000)));
      live.push_back(next_id++);
    }
    if (rng() % 11 == 0 && !live.empty()) {
      const uint64_t id = live[rng() % live.size()];
      if (h.sched.remove(id, finish_reason::CANCELLED)) h.finished[id] = finish_reason::CANCELLED;
    }
    h.step();
    int32_t referenced = 0;
    for (const auto& s : h.sched.running()) {
      referenced += int32_t(s->block_table.size());
      EXPECT_GE(int32_t(s->block_table.size()) * 4, s->n_tokens() - 1);  // the newest token's slot comes next step
    }
    for (const auto& s : h.sched.waiting()) EXPECT_TRUE(s->block_table.empty());
    EXPECT_LE(h.bm.n_used_blocks(), referenced);  // shared blocks count once
    EXPECT_EQ(h.bm.n_used_blocks() + h.bm.n_free_blocks(), 24);
  }
  h.run_to_idle();
  EXPECT_TRUE(h.sched.idle());
  EXPECT_EQ(h.bm.n_used_blocks(), 0);
  EXPECT_EQ(int64_t(h.finished.size()), int64_t(next_id - 1));
}

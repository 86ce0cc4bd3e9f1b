// Engine loop over the toy paged model (toy_model.h): batching gives the tokens a request gets alone, prefix and
// image caches hit without changing outputs, decode positions continue with rope_delta, cancel/shutdown/errors
// end requests with one final event and free their blocks, the waiting queue is bounded.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "toy_engine.h"

using namespace autoglm;
using namespace autoglm::test;

TEST(engine, concurrent_requests_match_running_alone) {
  std::vector<generation_request> reqs;
  for (int32_t i = 0; i < 8; ++i) {
    // Prompts of 3..40 tokens; half share a 20-token prefix so the prefix cache and chunking interleave.
    std::vector<int32_t> p = prompt_of(i % 2 ? 99 : i, 20);
    std::vector<int32_t> tail = prompt_of(i + 100, 3 + i * 3);
    p.insert(p.end(), tail.begin(), tail.end());
    p.resize(size_t(3 + i * 5));
    reqs.push_back(text_request(p, 10 + i));
  }
  reqs[3].sampling.temperature = 0.8f;  // seeded sampling is per request, so batching does not change it
  reqs[3].sampling.seed = 5;
  reqs[5].sampling.temperature = 1.0f;
  reqs[5].sampling.top_k = 5;
  reqs[5].sampling.seed = 9;
  reqs.push_back(image_request(image(0.5f)));

  std::vector<std::vector<int32_t>> alone;
  for (const auto& r : reqs) alone.push_back(run_alone(r));

  auto e = make(options(4, 16));
  toy_collector c;
  std::vector<uint64_t> ids;
  for (const auto& r : reqs) ids.push_back(e->submit(r, c.callback()));
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(c.tokens(ids[i]), alone[i]) << "request " << i;
    const auto evs = c.wait(ids[i]);
    EXPECT_EQ(evs.back().n_prompt_tokens, int32_t(reqs[i].prompt.size()));
    EXPECT_EQ(evs.back().n_generated_tokens, int32_t(alone[i].size()));
  }
  wait_blocks_free(*e);
  EXPECT_EQ(e->stats().n_running, 0);
}

TEST(engine, prefix_cache_hit_gives_identical_output) {
  auto e = make(options());
  toy_collector c;
  const generation_request r = text_request(prompt_of(3, 30), 8);
  const auto first = c.tokens(e->submit(r, c.callback()));
  const uint64_t id2 = e->submit(r, c.callback());
  const auto second = c.tokens(id2);
  EXPECT_EQ(first, second);
  EXPECT_EQ(c.wait(id2).back().n_cached_prompt_tokens, 28);  // 7 full blocks; the last token is recomputed
  const engine_stats s = e->stats();
  EXPECT_EQ(s.n_prefix_hit_tokens, 28);
  EXPECT_EQ(s.n_prefix_query_tokens, 60);
}

TEST(engine, image_cache_and_image_aware_prefix) {
  toy_model* model = nullptr;
  auto e = make(options(), &model);
  toy_collector c;
  const auto a1 = c.tokens(e->submit(image_request(image(0.5f)), c.callback()));

  // Positions the model saw for that request: the prompt's M-RoPE positions (text 0 1, a 2x3 merged image at
  // t = 2, h = 2..3, w = 2..4, text 5 6 7), then decode tokens at p + rope_delta = 8, 9, ... on all three axes.
  const auto seen = model->positions();
  ASSERT_EQ(seen.size(), 11 + a1.size() - 1);
  EXPECT_EQ(seen[2].t, 2);
  EXPECT_EQ(seen[7].h, 3);
  EXPECT_EQ(seen[7].w, 4);
  EXPECT_EQ(seen[10].t, 7);
  for (size_t j = 11; j < seen.size(); ++j) {
    EXPECT_EQ(seen[j].t, int32_t(j) - 3);
    EXPECT_EQ(seen[j].h, int32_t(j) - 3);
    EXPECT_EQ(seen[j].w, int32_t(j) - 3);
  }

  const uint64_t id_b = e->submit(image_request(image(0.75f)), c.callback());
  const auto b = c.tokens(id_b);
  EXPECT_NE(a1, b);                                          // same ids, different image
  EXPECT_EQ(c.wait(id_b).back().n_cached_prompt_tokens, 0);  // block 0 holds image tokens already
  const uint64_t id_a2 = e->submit(image_request(image(0.5f)), c.callback());
  EXPECT_EQ(c.tokens(id_a2), a1);
  EXPECT_GT(c.wait(id_a2).back().n_cached_prompt_tokens, 0);
  const engine_stats s = e->stats();
  EXPECT_EQ(s.n_images_encoded, 2);
  EXPECT_EQ(s.n_image_cache_hits, 0);  // the third request's image tokens were all served from cached KV
}

TEST(engine, image_encoded_again_when_prefix_does_not_cover_it) {
  auto e = make(options());
  toy_collector c;
  const vision_input im = image(0.25f);
  c.tokens(e->submit(image_request(im), c.callback()));
  // A different text prefix before the same image: no KV reuse, but the embedding comes from the image cache.
  generation_request r = image_request(im);
  r.prompt[0] = 9;
  c.tokens(e->submit(r, c.callback()));
  EXPECT_EQ(e->stats().n_images_encoded, 1);
  EXPECT_EQ(e->stats().n_image_cache_hits, 1);
}

TEST(engine, preemption_under_a_small_cache_keeps_outputs) {
  engine_options o = options(4, 32);
  o.kv_cache_bytes = 64 * 4 * 14;  // 14 blocks of 4 tokens: four 20-token requests growing by 16 cannot all fit
  o.max_model_len = 48;
  std::vector<generation_request> reqs;
  for (int32_t i = 0; i < 4; ++i) reqs.push_back(text_request(prompt_of(i + 20, 20), 16));
  for (auto& r : reqs) r.sampling.ignore_eos = true;
  std::vector<std::vector<int32_t>> alone;
  for (const auto& r : reqs) alone.push_back(run_alone(r));
  auto e = make(o);
  toy_collector c;
  std::vector<uint64_t> ids;
  for (const auto& r : reqs) ids.push_back(e->submit(r, c.callback()));
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(c.tokens(ids[i]), alone[i]) << i;
  wait_blocks_free(*e);
}

TEST(engine, cancel_frees_blocks_and_ends_with_one_cancelled_event) {
  toy_model* model = nullptr;
  auto e = make(options(), &model);
  toy_collector c;
  generation_request r = text_request(prompt_of(1, 10), 400);
  r.sampling.ignore_eos = true;
  model->hold();
  const uint64_t id = e->submit(r, c.callback());
  model->wait_in_forward();
  e->cancel(id);
  model->release();
  const auto evs = c.wait(id);
  EXPECT_EQ(evs.back().finish, finish_reason::CANCELLED);
  EXPECT_LT(evs.size(), 5u);  // takes effect within a step
  for (size_t i = 0; i + 1 < evs.size(); ++i) EXPECT_EQ(evs[i].finish, finish_reason::NONE);
  wait_blocks_free(*e);
  e->cancel(id);  // cancelling a finished request is harmless
  e->cancel(12345);
}

TEST(engine, failing_step_errors_its_requests_and_engine_keeps_running) {
  auto e = make(options());
  toy_collector c;
  const uint64_t bad = e->submit(text_request({1, 2, toy_model::poison_token, 3}), c.callback());
  EXPECT_EQ(c.wait(bad).back().finish, finish_reason::ERROR);
  EXPECT_FALSE(c.wait(bad).back().error.empty());
  // A bad image fails only its own request.
  vision_input broken = image(-1.0f);
  const uint64_t bad_img = e->submit(image_request(broken), c.callback());
  const uint64_t good = e->submit(text_request(prompt_of(2, 9)), c.callback());
  EXPECT_EQ(c.wait(bad_img).back().finish, finish_reason::ERROR);
  EXPECT_NE(c.wait(good).back().finish, finish_reason::ERROR);
  EXPECT_EQ(c.tokens(good), run_alone(text_request(prompt_of(2, 9))));
  wait_blocks_free(*e);
}

TEST(engine, rejects_requests_that_can_never_run) {
  engine_options o = options();
  o.max_model_len = 32;
  auto e = make(o);
  toy_collector c;
  EXPECT_EQ(e->max_model_len(), 32);
  EXPECT_THROW(e->submit(text_request(prompt_of(1, 32)), c.callback()), invalid_request);
  EXPECT_THROW(e->submit(text_request({}), c.callback()), invalid_request);
  generation_request r = image_request(image(0.5f));
  r.prompt.push_back(toy_model::image_token);  // one placeholder more than the image has rows
  EXPECT_THROW(e->submit(r, c.callback()), invalid_request);
  generation_request bad_p = text_request({1, 2, 3});
  bad_p.sampling.top_p = 0.0f;
  EXPECT_THROW(e->submit(bad_p, c.callback()), invalid_request);
  // A prompt of max_model_len - 1 runs and stops at the context limit.
  const uint64_t id = e->submit(text_request(prompt_of(1, 31), 100), c.callback());
  const auto evs = c.wait(id);
  if (evs.back().finish == finish_reason::LENGTH) {
    EXPECT_EQ(evs.back().n_generated_tokens, 1);
  }
}

TEST(engine, waiting_queue_is_bounded) {
  engine_options o = options(1, 16);
  o.max_waiting = 3;
  toy_model* model = nullptr;
  auto e = make(o, &model);
  toy_collector c;
  model->hold();
  const uint64_t first = e->submit(text_request(prompt_of(1, 5)), c.callback());
  model->wait_in_forward();  // the engine thread is parked with `first` running
  std::vector<uint64_t> queued;
  for (int i = 0; i < 3; ++i) queued.push_back(e->submit(text_request(prompt_of(i + 2, 5)), c.callback()));
  for (uint64_t id : queued) EXPECT_NE(id, 0u);
  EXPECT_EQ(e->submit(text_request(prompt_of(9, 5)), c.callback()), 0u);
  EXPECT_EQ(e->stats().n_waiting, 3);
  model->release();
  c.wait(first);
  for (uint64_t id : queued) c.wait(id);
}

TEST(engine, shutdown_cancels_everything) {
  toy_model* model = nullptr;
  auto e = make(options(2, 16), &model);
  toy_collector c;
  std::vector<uint64_t> ids;
  model->hold();
  for (int i = 0; i < 5; ++i) {
    generation_request r = text_request(prompt_of(i, 6), 1000);
    r.sampling.ignore_eos = true;
    ids.push_back(e->submit(r, c.callback()));
  }
  model->wait_in_forward();
  std::thread stopper([&] { e->shutdown(); });
  // submit() refuses once shutdown has begun; only then let the engine thread go on.
  for (;;) {
    const uint64_t id = e->submit(text_request(prompt_of(7, 6), 1000), c.callback());
    if (id == 0) break;
    ids.push_back(id);
    std::this_thread::yield();
  }
  model->release();
  stopper.join();
  for (uint64_t id : ids) {
    const auto evs = c.wait(id);
    EXPECT_EQ(evs.back().finish, finish_reason::CANCELLED);
    int n_final = 0;
    for (const auto& ev : evs) n_final += ev.finish != finish_reason::NONE;
    EXPECT_EQ(n_final, 1);
  }
}

TEST(engine, logprobs_when_asked) {
  auto e = make(options());
  toy_collector c;
  generation_request r = text_request(prompt_of(4, 7), 3);
  r.sampling.top_logprobs = 3;
  for (const auto& ev : c.wait(e->submit(r, c.callback()))) {
    if (!ev.has_token) continue;
    ASSERT_EQ(ev.top_logprobs.size(), 3u);
    EXPECT_EQ(ev.top_logprobs[0].token, ev.token);  // greedy: the chosen token is the most probable
    EXPECT_FLOAT_EQ(ev.top_logprobs[0].logprob, ev.logprob);
    EXPECT_LT(ev.logprob, 0.0f);
  }
}

// The engine's vision worker and request options on the toy model (toy_model.h):
//  - a running stream keeps producing tokens while a new image is encoded (the encode is parked inside the
//    toy's encode_image, so "while" is a fact, not a timing);
//  - a request waiting for its image can be cancelled (queued or running encode), shares one encode with other
//    requests for the same image, fails alone when its image fails, and shutdown ends it;
//  - an image the prefix cache covered on arrival but lost before admission is fetched after admission;
//  - return_prompt_logits gives every prompt position's logits in order, whatever the chunking or cache;
//  - benchmark_skip_prefill runs only the last prompt token and never shares its KV.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "core/error.h"
#include "toy_engine.h"

using namespace autoglm;
using namespace autoglm::test;

namespace {

bool finished(collector& c, uint64_t id) {
  std::lock_guard<std::mutex> lk(c.mu);
  const auto& evs = c.events[id];
  return !evs.empty() && evs.back().finish != finish_reason::NONE;
}

generation_request endless(int32_t seed) {
  generation_request r = text_request(prompt_of(seed, 6), 400);
  r.sampling.ignore_eos = true;
  return r;
}

}  // namespace

TEST(engine_vision, running_stream_decodes_while_an_image_is_encoded) {
  toy_model* model = nullptr;
  auto e = make(options(), &model);
  toy_collector c;
  // `a` is decoding (parked in a forward) when `b` arrives with a new image; the toy then parks the vision
  // worker inside b's encode until `a` has run to its end.
  const generation_request a_req = endless(1);
  model->hold();
  const uint64_t a = e->submit(a_req, c.callback());
  model->wait_in_forward();
  model->hold_encode();
  const generation_request b_req = image_request(image(0.5f));
  const uint64_t b = e->submit(b_req, c.callback());
  model->release();
  model->wait_in_encode();
  // The old engine encoded on its own thread inside the step: `a` could not produce a token until the encode
  // returned, so it could never finish while the encode is parked.
  const auto a_events = c.wait(a);
  EXPECT_EQ(a_events.back().finish, finish_reason::LENGTH);
  EXPECT_EQ(c.tokens(a), run_alone(a_req));
  const engine_stats s = e->stats();
  EXPECT_EQ(s.n_images_encoding, 1);
  EXPECT_EQ(s.n_vision_waiting, 1);
  EXPECT_FALSE(finished(c, b));
  model->release_encode();

  EXPECT_EQ(c.tokens(b), run_alone(b_req));
  EXPECT_EQ(e->stats().n_images_encoded, 1);
  for (int i = 0; i < 6000 && e->stats().n_images_encoding != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(e->stats().n_images_encoding, 0);
  wait_blocks_free(*e);
}

TEST(engine_vision, cancel_while_waiting_for_the_vision_worker) {
  toy_model* model = nullptr;
  auto e = make(options(), &model);
  toy_collector c;
  model->hold_encode();
  const uint64_t b = e->submit(image_request(image(0.5f)), c.callback());
  model->wait_in_encode();
  const uint64_t queued = e->submit(image_request(image(0.75f)), c.callback());  // behind b's encode
  // Both end at once although the encode is still parked.
  e->cancel(queued);
  e->cancel(b);
  EXPECT_EQ(c.wait(queued).back().finish, finish_reason::CANCELLED);
  EXPECT_EQ(c.wait(b).back().finish, finish_reason::CANCELLED);
  for (const uint64_t id : {b, queued}) {
    const auto evs = c.wait(id);
    EXPECT_EQ(evs.size(), 1u);
    EXPECT_FALSE(evs[0].has_token);
  }
  // Stats are published after the step that delivered the events.
  for (int i = 0; i < 6000 && e->stats().n_vision_waiting != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(e->stats().n_vision_waiting, 0);
  model->release_encode();
  for (int i = 0; i < 6000 && e->stats().n_images_encoded < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  // The queued image was dropped without being encoded; b's finished encode was kept for the next request.
  const uint64_t again = e->submit(image_request(image(0.5f)), c.callback());
  EXPECT_EQ(c.tokens(again), run_alone(image_request(image(0.5f))));
  EXPECT_EQ(model->n_encodes(), 1);
  EXPECT_EQ(e->stats().n_image_cache_hits, 1);
  wait_blocks_free(*e);
}

TEST(engine_vision, requests_for_one_image_share_its_encode) {
  toy_model* model = nullptr;
  auto e = make(options(), &model);
  toy_collector c;
  model->hold_encode();
  generation_request r1 = image_request(image(0.25f));
  generation_request r2 = image_request(image(0.25f));
  r2.prompt[0] = 7;  // another text prefix: no KV reuse, same image
  const uint64_t id1 = e->submit(r1, c.callback());
  model->wait_in_encode();
  const uint64_t id2 = e->submit(r2, c.callback());
  // Two images of one request with the same content are one encode too.
  generation_request r3 = image_request(image(0.25f));
  r3.prompt.insert(r3.prompt.end(), size_t(r3.images[0].n_tokens()), toy_model::image_token);
  r3.images.push_back(r3.images[0]);
  const uint64_t id3 = e->submit(r3, c.callback());
  for (int i = 0; i < 6000 && e->stats().n_vision_waiting < 3; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(e->stats().n_vision_waiting, 3);
  model->release_encode();
  EXPECT_EQ(c.tokens(id1), run_alone(r1));
  EXPECT_EQ(c.tokens(id2), run_alone(r2));
  EXPECT_EQ(c.tokens(id3), run_alone(r3));
  EXPECT_EQ(model->n_encodes(), 1);
  EXPECT_EQ(e->stats().n_images_encoded, 1);
}

TEST(engine_vision, a_failing_image_fails_only_the_requests_that_need_it) {
  toy_model* model = nullptr;
  auto e = make(options(), &model);
  toy_collector c;
  const generation_request a_req = endless(2);
  model->hold();
  const uint64_t a = e->submit(a_req, c.callback());
  model->wait_in_forward();
  const uint64_t bad1 = e->submit(image_request(image(-1.0f)), c.callback());
  const uint64_t bad2 = e->submit(image_request(image(-1.0f)), c.callback());
  const uint64_t good = e->submit(image_request(image(0.5f)), c.callback());
  model->release();
  for (const uint64_t id : {bad1, bad2}) {
    const auto evs = c.wait(id);
    EXPECT_EQ(evs.back().finish, finish_reason::ERROR);
    EXPECT_NE(evs.back().error.find("toy model: bad image"), std::string::npos) << evs.back().error;
  }
  EXPECT_EQ(c.tokens(a), run_alone(a_req));
  EXPECT_EQ(c.tokens(good), run_alone(image_request(image(0.5f))));
  EXPECT_EQ(model->n_encodes(), 2);  // the bad image once for both requests, the good one
  EXPECT_EQ(e->stats().n_images_encoded, 1);
  wait_blocks_free(*e);
}

TEST(engine_vision, shutdown_ends_requests_waiting_for_images) {
  toy_model* model = nullptr;
  auto e = make(options(), &model);
  toy_collector c;
  model->hold_encode();
  const uint64_t b = e->submit(image_request(image(0.5f)), c.callback());
  model->wait_in_encode();
  const uint64_t queued = e->submit(image_request(image(0.75f)), c.callback());
  std::thread stopper([&] { e->shutdown(); });
  EXPECT_EQ(c.wait(b).back().finish, finish_reason::CANCELLED);  // before the encode returns
  EXPECT_EQ(c.wait(queued).back().finish, finish_reason::CANCELLED);
  model->release_encode();  // shutdown joins the worker once its encode returns
  stopper.join();
  EXPECT_EQ(e->submit(image_request(image(0.5f)), c.callback()), 0u);
}

TEST(engine_vision, image_lost_from_the_prefix_cache_before_admission_is_fetched_then) {
  // 14 blocks of 4 tokens, one sequence at a time. `first` leaves its image's KV in the prefix cache; `b`
  // arrives while that cache still covers its image (so no encode is asked for) but waits for the slot that
  // `hog` holds, and hog's growth evicts those blocks. b must then get the image after admission.
  engine_options o = options(1, 16);
  o.kv_cache_bytes = 64 * 4 * 14;
  o.max_model_len = 56;
  toy_model* model = nullptr;
  auto e = make(o, &model);
  toy_collector c;
  const generation_request first = image_request(image(0.5f), 4);
  c.tokens(e->submit(first, c.callback()));
  generation_request hog = text_request(prompt_of(3, 4), 48);
  hog.sampling.ignore_eos = true;
  model->hold();
  const uint64_t hog_id = e->submit(hog, c.callback());
  model->wait_in_forward();
  generation_request b_req = first;
  b_req.sampling.max_tokens = 6;
  const uint64_t b = e->submit(b_req, c.callback());
  model->release();
  EXPECT_EQ(c.wait(hog_id).back().n_generated_tokens, 48);
  EXPECT_EQ(c.tokens(b), run_alone(b_req));
  EXPECT_LT(c.wait(b).back().n_cached_prompt_tokens, 8);  // the image's blocks were gone
  EXPECT_EQ(e->stats().n_images_encoded, 1);
  EXPECT_EQ(e->stats().n_image_cache_hits, 1);  // attached after admission, from the embedding cache
  wait_blocks_free(*e);
}

TEST(engine_requests, prompt_logits_cover_every_position_in_order) {
  const std::vector<int32_t> prompt = prompt_of(5, 23);
  generation_request r = text_request(prompt, 3);
  r.return_prompt_logits = true;
  auto logits_with = [&](int32_t batch_tokens) {
    auto e = make(options(4, batch_tokens));
    toy_collector c;
    const auto evs = c.wait(e->submit(r, c.callback()));
    EXPECT_TRUE(evs[0].has_token);
    for (size_t i = 1; i < evs.size(); ++i) EXPECT_TRUE(evs[i].prompt_logits.empty());
    return evs[0].prompt_logits;
  };
  const std::vector<float> one_pass = logits_with(64);
  ASSERT_EQ(one_pass.size(), prompt.size() * size_t(toy_model::vocab));
  EXPECT_EQ(logits_with(5), one_pass);  // chunked prefill gives the same rows
  // Row p is what a prompt of p + 1 tokens ends with: its argmax is that prompt's greedy first token.
  for (const size_t p : {size_t(0), size_t(6), size_t(22)}) {
    const float* row = one_pass.data() + p * size_t(toy_model::vocab);
    const int32_t argmax = int32_t(std::max_element(row, row + toy_model::vocab) - row);
    std::vector<int32_t> prefix(prompt.begin(), prompt.begin() + long(p) + 1);
    EXPECT_EQ(run_alone(text_request(prefix, 1)), std::vector<int32_t>{argmax}) << "row " << p;
  }
  // A repeated prompt that asks for logits is computed again, not served from the prefix cache.
  auto e = make(options());
  toy_collector c;
  c.wait(e->submit(text_request(prompt, 2), c.callback()));
  const auto evs = c.wait(e->submit(r, c.callback()));
  EXPECT_EQ(evs.back().n_cached_prompt_tokens, 0);
  EXPECT_EQ(evs[0].prompt_logits, one_pass);
}

TEST(engine_requests, prompt_logits_with_an_image) {
  generation_request r = image_request(image(0.5f), 2);
  r.return_prompt_logits = true;
  std::vector<float> ref;
  for (const int32_t batch_tokens : {64, 3}) {
    auto e = make(options(4, batch_tokens));
    toy_collector c;
    const auto evs = c.wait(e->submit(r, c.callback()));
    ASSERT_EQ(evs[0].prompt_logits.size(), r.prompt.size() * size_t(toy_model::vocab));
    if (ref.empty()) ref = evs[0].prompt_logits;
    else EXPECT_EQ(evs[0].prompt_logits, ref);  // image rows split over chunks of 3 reach the same rows
  }
}

TEST(engine_requests, benchmark_skip_prefill_runs_only_the_last_prompt_token) {
  toy_model* model = nullptr;
  auto e = make(options(), &model);
  model->allow_uncomputed_reads();
  toy_collector c;
  generation_request r = text_request(prompt_of(8, 40), 5);
  r.sampling.ignore_eos = true;
  r.benchmark_skip_prefill = true;
  const auto evs = c.wait(e->submit(r, c.callback()));
  EXPECT_EQ(evs.back().n_generated_tokens, 5);
  EXPECT_EQ(evs.back().n_cached_prompt_tokens, 0);
  const auto seen = model->positions();
  ASSERT_EQ(seen.size(), 5u);  // the last prompt token, then 4 decodes
  for (size_t j = 0; j < seen.size(); ++j) EXPECT_EQ(seen[j].t, int32_t(39 + j));
  // Its KV is not real: the same prompt afterwards is computed in full, not served from the prefix cache.
  generation_request normal = r;
  normal.benchmark_skip_prefill = false;
  const uint64_t id = e->submit(normal, c.callback());
  EXPECT_EQ(c.tokens(id), run_alone(normal));
  EXPECT_EQ(c.wait(id).back().n_cached_prompt_tokens, 0);
  // Benchmark requests take text only.
  generation_request with_image = image_request(image(0.5f));
  with_image.benchmark_skip_prefill = true;
  EXPECT_THROW(e->submit(with_image, c.callback()), invalid_request);
}

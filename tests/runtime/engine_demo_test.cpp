// engine::create on the demo checkpoint (models/demo, a tiny random GLM-4.1V in the HF layout): batching gives
// the greedy tokens a request gets alone, a repeated prompt hits the prefix cache with identical output, images
// go through the vision tower and its cache, cancel frees blocks, a running stream decodes while a large image
// is encoded, F16/BF16/Q8_0 KV caches stay close to F32, the dump option sees the named intermediates.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "event_collector.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "autoglm/engine.h"

using namespace autoglm;

namespace {

std::string demo_dir() { return std::string(AUTOGLM_SOURCE_DIR) + "/models/demo"; }

using test::collector;

class engine_demo : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(demo_dir() + "/config.json")) GTEST_SKIP() << "no demo model at " << demo_dir();
  }
  static engine_options options(bool prefix_caching = true) {
    engine_options o;
    o.model_dir = demo_dir();
    o.n_threads = 2;
    o.max_num_seqs = 8;
    o.max_batch_tokens = 64;
    o.max_model_len = 512;
    o.enable_prefix_caching = prefix_caching;
    return o;
  }
};

generation_request greedy(std::vector<int32_t> prompt, int32_t max_tokens) {
  generation_request r;
  r.prompt = std::move(prompt);
  r.sampling.temperature = 0.0f;
  r.sampling.max_tokens = max_tokens;
  r.sampling.ignore_eos = true;  // a random checkpoint: keep every run the same length
  return r;
}

std::vector<int32_t> text(const engine& e, const std::string& s) { return e.get_tokenizer().encode(s); }

vision_input random_image(uint64_t seed, int32_t grid_h, int32_t grid_w) {
  vision_input im;
  im.grid_h = grid_h;
  im.grid_w = grid_w;
  im.pixel_values.resize(size_t(grid_h * grid_w) * 3 * 2 * 14 * 14);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (float& v : im.pixel_values) v = nd(rng);
  im.content_hash = seed * 0x9e3779b97f4a7c15ULL + 1;
  return im;
}

}  // namespace

TEST_F(engine_demo, concurrent_greedy_matches_alone) {
  auto e = engine::create(options());
  std::vector<generation_request> reqs;
  const char* texts[] = {"Hello, world!", "The quick brown fox jumps over the lazy dog.", "Open the settings app",
                         "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30",
                         "Tap the search box and type weather", "a", "Swipe up to go home, then open Messages.",
                         "What is on the screen?"};
  for (int i = 0; i < 8; ++i) reqs.push_back(greedy(text(*e, texts[i]), 12 + i));
  std::vector<std::vector<int32_t>> alone;
  {
    auto solo = engine::create(options(false));
    collector c;
    for (const auto& r : reqs) alone.push_back(c.tokens(solo->submit(r, c.callback()), true));
  }
  collector c;
  std::vector<uint64_t> ids;
  for (const auto& r : reqs) ids.push_back(e->submit(r, c.callback()));
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(c.tokens(ids[i], true), alone[i]) << "request " << i;
    EXPECT_EQ(int32_t(alone[i].size()), reqs[i].sampling.max_tokens);
  }
}

TEST_F(engine_demo, repeated_prompt_hits_prefix_cache) {
  auto e = engine::create(options());
  std::string long_text;
  for (int i = 0; i < 12; ++i) long_text += "The agent taps the button labelled OK and waits. ";
  const generation_request r = greedy(text(*e, long_text), 10);
  ASSERT_GT(r.prompt.size(), 32u);
  collector c;
  const auto first = c.tokens(e->submit(r, c.callback()), true);
  const uint64_t id2 = e->submit(r, c.callback());
  EXPECT_EQ(c.tokens(id2, true), first);
  EXPECT_GT(c.wait(id2).back().n_cached_prompt_tokens, 0);
  EXPECT_GT(e->stats().n_prefix_hit_tokens, 0);
}

TEST_F(engine_demo, image_request_runs_and_reuses_the_image) {
  auto e = engine::create(options());
  const model_info& mi = e->info();
  ASSERT_TRUE(mi.has_vision);
  const vision_input im = random_image(3, 4, 6);  // 2x3 merged = 6 placeholder tokens
  std::vector<int32_t> p = text(*e, "Look:");
  p.push_back(mi.image_start_token_id);
  p.insert(p.end(), size_t(im.n_tokens()), mi.image_token_id);
  p.push_back(mi.image_end_token_id);
  const auto tail = text(*e, " describe it");
  p.insert(p.end(), tail.begin(), tail.end());
  generation_request r = greedy(p, 8);
  r.images.push_back(im);
  collector c;
  const auto a = c.tokens(e->submit(r, c.callback()), true);
  EXPECT_EQ(a.size(), 8u);
  // Same ids, another image: a different answer is likely but not guaranteed on a random model; the cache
  // accounting is what must hold.
  generation_request r2 = r;
  r2.images[0] = random_image(4, 4, 6);
  c.tokens(e->submit(r2, c.callback()), true);
  EXPECT_EQ(e->stats().n_images_encoded, 2);
  // The first image again, alone: prefix blocks and (when not all covered) the embedding cache give the same answer.
  EXPECT_EQ(c.tokens(e->submit(r, c.callback()), true), a);
  EXPECT_EQ(e->stats().n_images_encoded, 2);
}

TEST_F(engine_demo, cancel_frees_blocks) {
  auto e = engine::create(options());
  collector c;
  const uint64_t id = e->submit(greedy(text(*e, "Keep going"), 400), c.callback());
  e->cancel(id);
  EXPECT_EQ(c.wait(id).back().finish, finish_reason::CANCELLED);
  for (int i = 0; i < 6000 && e->stats().kv_blocks_used != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(e->stats().kv_blocks_used, 0);
}

TEST_F(engine_demo, rejects_overlong_prompt) {
  auto e = engine::create(options());
  collector c;
  EXPECT_THROW(e->submit(greedy(std::vector<int32_t>(600, 5), 4), c.callback()), invalid_request);
}

TEST_F(engine_demo, running_stream_keeps_decoding_while_a_large_image_is_encoded) {
  // One stream decodes; a request with a new 44x64-patch image (704 merged tokens; hundreds of ms to encode
  // on 2 cores) arrives. Every token event of the stream reads the engine's live vision state: tokens must
  // arrive while the image is being encoded. The old engine encoded inside its step, so none could.
  engine_options o = options();
  o.max_model_len = 4096;
  auto e = engine::create(o);
  const model_info& mi = e->info();
  std::mutex mu;
  std::condition_variable cv;
  int32_t n_a = 0, n_a_during_encode = 0;
  bool a_done = false;
  std::chrono::steady_clock::time_point last_token;
  double worst_gap_ms = 0;
  generation_request a = greedy(text(*e, "Keep going"), 3900);
  const engine* eng = e.get();
  const uint64_t id_a = e->submit(a, [&](const generation_event& ev) {
    const bool encoding = eng->stats().n_images_encoding > 0;
    std::lock_guard<std::mutex> lk(mu);
    if (ev.has_token) {
      const auto now = std::chrono::steady_clock::now();
      if (n_a > 0) worst_gap_ms = std::max(worst_gap_ms, std::chrono::duration<double, std::milli>(now - last_token).count());
      last_token = now;
      ++n_a;
      n_a_during_encode += encoding;
    }
    if (ev.finish != finish_reason::NONE) a_done = true;
    cv.notify_all();
  });
  {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return n_a >= 5 || a_done; });
  }
  const vision_input im = random_image(11, 44, 64);
  std::vector<int32_t> p = text(*e, "Look:");
  p.push_back(mi.image_start_token_id);
  p.insert(p.end(), size_t(im.n_tokens()), mi.image_token_id);
  p.push_back(mi.image_end_token_id);
  generation_request b = greedy(p, 2);
  b.images.push_back(im);
  collector c;
  const uint64_t id_b = e->submit(b, c.callback());
  EXPECT_EQ(c.tokens(id_b, true).size(), 2u);
  e->cancel(id_a);
  {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return a_done; });
  }
  EXPECT_EQ(e->stats().n_images_encoded, 1);
  EXPECT_GT(n_a_during_encode, 0) << "the running stream produced no token while the image was encoded";
  std::printf("[vision] %d of the stream's %d tokens arrived during the encode (%.0f ms of encoding); worst gap %.1f ms\n",
              n_a_during_encode, n_a, e->stats().vision_encode_ms_total, worst_gap_ms);
}

TEST_F(engine_demo, reduced_precision_kv_caches_stay_close_to_f32) {
  // The same prompt's logits with the KV cache in F32, F16, BF16 and Q8_0 (every position reads the cache back).
  std::string long_text;
  for (int i = 0; i < 6; ++i) long_text += "Open the settings app and turn on airplane mode. ";
  std::vector<float> ref;
  for (const kv_cache_type t : {kv_cache_type::F32, kv_cache_type::F16, kv_cache_type::BF16, kv_cache_type::Q8_0}) {
    engine_options o = options();
    o.kv_cache_dtype = t;
    auto e = engine::create(o);
    generation_request r = greedy(text(*e, long_text), 1);
    r.return_prompt_logits = true;
    collector c;
    const auto evs = c.wait(e->submit(r, c.callback()));
    const std::vector<float>& logits = evs[0].prompt_logits;
    ASSERT_EQ(logits.size(), r.prompt.size() * size_t(e->info().vocab_size));
    if (t == kv_cache_type::F32) {
      ref = logits;
      continue;
    }
    double max_ref = 0, max_diff = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      max_ref = std::max(max_ref, double(std::fabs(ref[i])));
      max_diff = std::max(max_diff, double(std::fabs(logits[i] - ref[i])));
    }
    // Rounding K/V to 11 (F16) or 8 (BF16, Q8_0 per 32-block) significant bits: close, not the same bits.
    EXPECT_GT(max_diff, 0.0) << kv_cache_type_name(t);
    EXPECT_LE(max_diff, (t == kv_cache_type::F16 ? 1e-2 : 5e-2) * max_ref) << kv_cache_type_name(t);
    std::printf("[kv] %-4s max|diff| / max|f32 logit| = %.2g\n", kv_cache_type_name(t), max_diff / max_ref);
  }
}

TEST_F(engine_demo, dump_option_names_the_intermediates) {
  engine_options o = options();
  std::mutex mu;
  std::map<std::string, std::pair<int64_t, int64_t>> seen;
  o.dump = [&](const std::string& name, const float* d, int64_t rows, int64_t cols) {
    std::lock_guard<std::mutex> lk(mu);
    EXPECT_NE(d, nullptr);
    seen[name] = {rows, cols};
  };
  auto e = engine::create(o);
  collector c;
  const std::vector<int32_t> prompt = text(*e, "Hello there");
  c.tokens(e->submit(greedy(prompt, 1), c.callback()), true);
  std::lock_guard<std::mutex> lk(mu);
  EXPECT_GT(seen.size(), 5u);
  ASSERT_TRUE(seen.count("hidden.0")) << "no embedding output dumped";
  EXPECT_EQ(seen["hidden.0"], std::make_pair(int64_t(prompt.size()), int64_t(e->info().hidden_size)));
}

// tests/runtime/toy_engine.h: engines over the toy model (toy_model.h) and the requests the engine tests send.
#pragma once

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "event_collector.h"
#include "runtime/engine_impl.h"
#include "toy_model.h"

namespace autoglm::test {

// The toy model is fast: a request that takes a minute has hung.
struct toy_collector : collector {
  toy_collector() { timeout = std::chrono::seconds(60); }
};

inline engine_options options(int32_t max_num_seqs = 4, int32_t max_batch_tokens = 16) {
  engine_options o;
  o.max_num_seqs = max_num_seqs;
  o.max_batch_tokens = max_batch_tokens;
  o.kv_block_size = 4;
  o.kv_cache_bytes = 64 * 4 * 256;  // 256 blocks of 4 tokens
  return o;
}

inline std::unique_ptr<engine> make(const engine_options& o, toy_model** model = nullptr) {
  auto m = std::make_unique<toy_model>();
  if (model) *model = m.get();
  return make_engine(o, std::make_unique<exec_context>(device{}, 1), std::move(m), nullptr);
}

inline generation_request text_request(std::vector<int32_t> prompt, int32_t max_tokens = 12) {
  generation_request r;
  r.prompt = std::move(prompt);
  r.sampling.temperature = 0.0f;
  r.sampling.max_tokens = max_tokens;
  return r;
}

inline std::vector<int32_t> prompt_of(int32_t seed, int32_t n) {
  std::vector<int32_t> p;
  for (int32_t i = 0; i < n; ++i) p.push_back((seed * 7 + i * 3) % 50 + 1);
  return p;
}

inline vision_input image(float value, int32_t grid_h = 4, int32_t grid_w = 6) {
  vision_input im;
  im.grid_h = grid_h;
  im.grid_w = grid_w;
  im.pixel_values.assign(size_t(grid_h * grid_w) * 8, value);
  im.content_hash = uint64_t(value * 1000.0f) + 17;
  return im;
}

// Prompt "1 2 <image x n> 3 4 5" for an image of n tokens.
inline generation_request image_request(const vision_input& im, int32_t max_tokens = 8) {
  std::vector<int32_t> p = {1, 2};
  p.insert(p.end(), size_t(im.n_tokens()), toy_model::image_token);
  p.insert(p.end(), {3, 4, 5});
  generation_request r = text_request(p, max_tokens);
  r.images.push_back(im);
  return r;
}

inline std::vector<int32_t> run_alone(const generation_request& r) {
  engine_options o = options();
  o.enable_prefix_caching = false;
  auto e = make(o);
  toy_collector c;
  return c.tokens(e->submit(r, c.callback()));
}

inline void wait_blocks_free(engine& e) {
  for (int i = 0; i < 6000 && e.stats().kv_blocks_used != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(e.stats().kv_blocks_used, 0);
}

}  // namespace autoglm::test

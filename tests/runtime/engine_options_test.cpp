// engine_options are checked before anything is loaded: each out-of-range option is an invalid_request naming
// it (param = the option), so a typo fails in milliseconds instead of after a multi-gigabyte load, and no
// option can wrap an int32 (KV block count) or overflow the automatic KV budget; the KV element type sizes the
// cache (the same budget holds twice the tokens in F16/BF16).
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "autoglm/engine.h"
#include "core/error.h"

using namespace autoglm;

namespace {

std::string tiny_dir() { return std::string(AUTOGLM_SOURCE_DIR) + "/tests/fixtures/tiny_glm4v"; }

engine_options good_options(const std::string& dir) {
  engine_options o;
  o.model_dir = dir;
  o.n_threads = 1;
  o.max_num_seqs = 2;
  return o;
}

}  // namespace

TEST(engine_options, out_of_range_options_are_named_before_loading) {
  struct bad {
    std::function<void(engine_options&)> set;
    std::string param;
    std::string expect;
  };
  const bad cases[] = {
      {[](engine_options& o) { o.n_threads = -1; }, "n_threads", "n_threads must be between 0 and 1024, got -1"},
      {[](engine_options& o) { o.n_threads = 100000; }, "n_threads", "n_threads must be between 0 and 1024"},
      {[](engine_options& o) { o.max_num_seqs = 0; }, "max_num_seqs", "max_num_seqs must be between 1 and 4096, got 0"},
      {[](engine_options& o) { o.max_num_seqs = 1 << 30; }, "max_num_seqs", "max_num_seqs must be between 1 and 4096"},
      {[](engine_options& o) { o.max_model_len = -5; }, "max_model_len", "max_model_len must be between 0 and 16777216, got -5"},
      {[](engine_options& o) { o.max_batch_tokens = -1; }, "max_batch_tokens", "max_batch_tokens must be between 0 and 262144"},
      {[](engine_options& o) { o.max_waiting = 0; }, "max_waiting", "max_waiting must be between 1 and 1048576, got 0"},
      {[](engine_options& o) { o.kv_block_size = 0; }, "kv_block_size", "kv_block_size must be between 1 and 1024, got 0"},
      {[](engine_options& o) { o.kv_block_size = 1 << 20; }, "kv_block_size", "kv_block_size must be between 1 and 1024"},
      {[](engine_options& o) { o.n_vision_threads = -2; }, "n_vision_threads", "n_vision_threads must be between 0 and 1024, got -2"},
      {[](engine_options& o) { o.kv_cache_dtype = kv_cache_type(7); }, "kv_cache_dtype", "unknown KV cache type"},
      {[](engine_options& o) { o.model_dir.clear(); }, "model_dir", "model_dir is empty"},
  };
  for (const bad& c : cases) {
    // A directory that does not exist: the option must be reported, not the missing model.
    engine_options o = good_options("/nonexistent/autoglm-model");
    c.set(o);
    try {
      engine::create(o);
      ADD_FAILURE() << c.param << " accepted";
    } catch (const invalid_request& e) {
      EXPECT_EQ(e.param(), c.param);
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << e.what();
    }
  }
}

TEST(engine_options, kv_budget_cannot_wrap_the_block_count) {
  // The tiny model stores 1 KiB of KV per token: 2^46 bytes in 16-token blocks is 2^32 blocks, which wrapped to 0
  // as an int32.
  engine_options o = good_options(tiny_dir());
  o.kv_cache_bytes = size_t(1) << 46;
  try {
    engine::create(o);
    ADD_FAILURE() << "a 2^32-block KV cache was accepted";
  } catch (const invalid_request& e) {
    EXPECT_EQ(e.param(), "kv_cache_bytes");
    EXPECT_NE(std::string(e.what()).find("KV blocks, more than the limit of 2147483647"), std::string::npos) << e.what();
  }
  // The largest max_num_seqs with a context as long as the model's and an explicit budget loads.
  o = good_options(tiny_dir());
  o.max_num_seqs = 4096;
  o.max_model_len = 4096;
  o.kv_cache_bytes = size_t(64) << 20;
  auto e = engine::create(o);
  EXPECT_EQ(e->max_model_len(), 4096);
  e->shutdown();
}

TEST(engine_options, kv_cache_type_sizes_the_cache) {
  // The same budget holds twice the tokens in F16 or BF16: the context the budget allows doubles.
  engine_options o = good_options(tiny_dir());
  o.max_num_seqs = 1;
  o.kv_cache_bytes = size_t(1024) * 1000;  // 1000 tokens at 1 KiB each in F32
  EXPECT_EQ(engine::create(o)->max_model_len(), 992);  // whole 16-token blocks
  for (const kv_cache_type t : {kv_cache_type::F16, kv_cache_type::BF16}) {
    o.kv_cache_dtype = t;
    EXPECT_EQ(engine::create(o)->max_model_len(), 2000) << kv_cache_type_name(t);
  }
  // Q8_0: 34 bytes per 32 values, so the tiny model's 1 KiB of F32 K/V per token takes 272 bytes.
  o.kv_cache_dtype = kv_cache_type::Q8_0;
  EXPECT_EQ(engine::create(o)->max_model_len(), 3760);  // 235 whole blocks of 16 in 1,024,000 bytes
  EXPECT_EQ(parse_kv_cache_type("BF16"), kv_cache_type::BF16);
  EXPECT_EQ(parse_kv_cache_type("q8_0"), kv_cache_type::Q8_0);
  EXPECT_THROW(parse_kv_cache_type("q4"), invalid_request);
}

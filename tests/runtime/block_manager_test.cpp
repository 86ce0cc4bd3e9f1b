// Block manager: allocation and release accounting, prefix reuse (chained hashes, never the last token, image
// keys), sharing while referenced, LRU eviction of cached blocks.
#include <gtest/gtest.h>

#include <numeric>

#include "runtime/block_manager.h"

using namespace autoglm;

namespace {

sequence make_seq(int32_t n, int32_t first = 0) {
  sequence s;
  s.tokens.resize(size_t(n));
  std::iota(s.tokens.begin(), s.tokens.end(), first);
  s.n_prompt = n;
  return s;
}

// Marks every token computed and registers its full blocks, as the engine does after a forward.
void compute_all(block_manager& bm, sequence& s) {
  s.n_computed = s.n_tokens();
  bm.commit(s);
}

}  // namespace

TEST(block_manager, allocate_and_release_balance) {
  block_manager bm(10, 4, true);
  sequence a = make_seq(9);
  EXPECT_EQ(bm.n_blocks_needed(a), 3);
  bm.allocate(a);
  EXPECT_EQ(a.block_table.size(), 3u);
  EXPECT_EQ(a.n_computed, 0);
  EXPECT_EQ(bm.n_used_blocks(), 3);
  a.tokens.push_back(100);
  a.tokens.push_back(101);
  a.tokens.push_back(102);
  a.tokens.push_back(103);  // 13 tokens -> 4 blocks
  EXPECT_TRUE(bm.can_append(a));
  bm.append_slots(a);
  EXPECT_EQ(a.block_table.size(), 4u);
  bm.release(a);
  EXPECT_TRUE(a.block_table.empty());
  EXPECT_EQ(bm.n_used_blocks(), 0);
  EXPECT_EQ(bm.n_free_blocks(), 10);
}

TEST(block_manager, reuses_cached_prefix_but_recomputes_the_last_token) {
  block_manager bm(16, 4, true);
  sequence a = make_seq(10);
  bm.allocate(a);
  compute_all(bm, a);  // blocks 0 and 1 are full and registered
  bm.release(a);

  sequence b = make_seq(10);
  bm.allocate(b);
  EXPECT_EQ(b.n_computed, 8);
  EXPECT_EQ(bm.n_hit_tokens(), 8);
  bm.release(b);

  // A prompt that ends exactly on a block boundary: its last block holds the last token and is not reused.
  sequence c = make_seq(8);
  bm.allocate(c);
  EXPECT_EQ(c.n_computed, 4);
  bm.release(c);

  // A different token in block 1 keeps block 0's hit only; a different first token hits nothing.
  sequence d = make_seq(10);
  d.tokens[5] = 999;
  bm.allocate(d);
  EXPECT_EQ(d.n_computed, 4);
  bm.release(d);
  sequence e = make_seq(10, 1);
  bm.allocate(e);
  EXPECT_EQ(e.n_computed, 0);
  bm.release(e);
  EXPECT_EQ(bm.n_used_blocks(), 0);
}

TEST(block_manager, uncommitted_blocks_are_not_shared) {
  block_manager bm(16, 4, true);
  sequence a = make_seq(12);
  bm.allocate(a);
  a.n_computed = 4;  // first prefill chunk only
  bm.commit(a);
  sequence b = make_seq(12);
  bm.allocate(b);
  EXPECT_EQ(b.n_computed, 4);
  EXPECT_EQ(b.block_table[0], a.block_table[0]);
  EXPECT_NE(b.block_table[1], a.block_table[1]);
  EXPECT_EQ(bm.ref_count(a.block_table[0]), 2);
  bm.release(a);
  bm.release(b);
  EXPECT_EQ(bm.n_used_blocks(), 0);
}

TEST(block_manager, shared_blocks_cost_no_free_block) {
  block_manager bm(5, 4, true);
  sequence a = make_seq(13);  // 4 blocks
  bm.allocate(a);
  compute_all(bm, a);
  EXPECT_EQ(bm.n_free_blocks(), 1);
  sequence b = make_seq(13);
  // 3 full blocks before the last token are shared; only the last block is new.
  EXPECT_EQ(bm.n_blocks_needed(b), 1);
  ASSERT_TRUE(bm.can_allocate(b));
  bm.allocate(b);
  EXPECT_EQ(b.n_computed, 12);
  EXPECT_EQ(bm.n_free_blocks(), 0);
  bm.release(a);
  bm.release(b);
  EXPECT_EQ(bm.n_free_blocks(), 5);
}

TEST(block_manager, image_keys_separate_equal_ids) {
  block_manager bm(16, 4, true);
  const int32_t img = 77;
  auto with_image = [&](uint64_t key) {
    sequence s;
    s.tokens = {1, 2, img, img, img, img, 3, 4, 5};
    s.n_prompt = 9;
    s.extra_keys.assign(9, 0);
    for (int i = 2; i < 6; ++i) s.extra_keys[size_t(i)] = key;
    return s;
  };
  sequence a = with_image(0xaaaa);
  bm.allocate(a);
  compute_all(bm, a);
  bm.release(a);
  sequence b = with_image(0xbbbb);
  bm.allocate(b);
  EXPECT_EQ(b.n_computed, 0);  // block 0 already holds image tokens
  bm.release(b);
  sequence c = with_image(0xaaaa);
  bm.allocate(c);
  EXPECT_EQ(c.n_computed, 8);
  bm.release(c);
}

TEST(block_manager, lru_keeps_cached_blocks_until_evicted) {
  block_manager bm(4, 4, true);
  sequence a = make_seq(9);  // 3 blocks, 2 registered
  bm.allocate(a);
  compute_all(bm, a);
  bm.release(a);
  // One unrelated block: taken from the empty/uncached end, the cache survives.
  sequence x = make_seq(3, 500);
  bm.allocate(x);
  bm.release(x);
  sequence b = make_seq(9);
  bm.allocate(b);
  EXPECT_EQ(b.n_computed, 8);
  bm.release(b);
  // A sequence that needs the whole pool evicts everything.
  sequence y = make_seq(16, 1000);
  bm.allocate(y);
  bm.release(y);
  sequence c = make_seq(9);
  bm.allocate(c);
  EXPECT_EQ(c.n_computed, 0);
  bm.release(c);
}

TEST(block_manager, generated_blocks_are_registered_too) {
  block_manager bm(8, 4, true);
  sequence a = make_seq(3);
  bm.allocate(a);
  compute_all(bm, a);
  for (int32_t t = 100; t < 106; ++t) {  // decode: append, grow, compute
    a.tokens.push_back(t);
    bm.append_slots(a);
    compute_all(bm, a);
  }
  EXPECT_EQ(a.block_hashes.size(), 2u);
  sequence b;
  b.tokens = a.tokens;
  b.tokens.push_back(7);
  b.n_prompt = b.n_tokens();
  bm.release(a);
  bm.allocate(b);
  EXPECT_EQ(b.n_computed, 8);
  bm.release(b);
}

TEST(block_manager, prefix_caching_off_shares_nothing) {
  block_manager bm(8, 4, false);
  sequence a = make_seq(9);
  bm.allocate(a);
  compute_all(bm, a);
  bm.release(a);
  sequence b = make_seq(9);
  bm.allocate(b);
  EXPECT_EQ(b.n_computed, 0);
  bm.release(b);
}

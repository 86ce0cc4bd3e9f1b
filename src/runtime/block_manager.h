// runtime/block_manager.h: the KV block pool. Which blocks a sequence owns, reference counts, and the prefix
// cache: every full block whose K/V has been computed is registered under a hash chained from the previous
// block's hash and the block's (token id, extra key) pairs. The extra key carries what the id alone does not
// say, i.e. the image content behind an image placeholder, so prompts with equal ids but different images never
// share blocks. Unreferenced blocks sit in an LRU free list and keep their cached content until reused.
#pragma once

#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

#include "runtime/sequence.h"

namespace autoglm {

class block_manager {
 public:
  block_manager(int32_t n_blocks, int32_t block_size, bool enable_prefix_caching);

  int32_t block_size() const { return block_size_; }
  int32_t n_blocks() const { return int32_t(blocks_.size()); }
  int32_t n_free_blocks() const { return int32_t(free_list_.size()); }  // unreferenced (cached or empty)
  int32_t n_used_blocks() const { return n_blocks() - n_free_blocks(); }
  int32_t n_blocks_for(int32_t n_tokens) const { return (n_tokens + block_size_ - 1) / block_size_; }

  // Leading tokens of seq that allocate() would take from the prefix cache now (whole blocks).
  int32_t n_cached_tokens(const sequence& seq) const;
  // Free blocks allocate() would consume for all of seq's tokens after reusing its cached prefix.
  int32_t n_blocks_needed(const sequence& seq) const;
  bool can_allocate(const sequence& seq) const { return n_blocks_needed(seq) <= n_free_blocks(); }
  // Gives a sequence with no blocks a table covering all its tokens, reusing the longest cached prefix of full
  // blocks (never the block holding the last token, whose logits must be computed; none when
  // !seq.reuse_prefix): sets n_computed.
  void allocate(sequence& seq);
  // Drops the sequence's references (tail blocks first into the LRU, so they are evicted first).
  void release(sequence& seq);

  // Whether one more free block is available if seq's table must grow to cover its tokens.
  bool can_append(const sequence& seq) const;
  // Grows seq's table to cover all its tokens.
  void append_slots(sequence& seq);
  // Registers the full blocks of seq whose K/V are now computed (call after each forward; nothing when
  // !seq.share_kv).
  void commit(sequence& seq);

  int64_t n_query_tokens() const { return n_query_tokens_; }  // tokens looked up by allocate()
  int64_t n_hit_tokens() const { return n_hit_tokens_; }      // of those, served from the cache
  int32_t ref_count(int32_t block) const { return blocks_[size_t(block)].ref_count; }

 private:
  struct block {
    int32_t ref_count = 0;
    bool has_hash = false;
    uint64_t hash = 0;
    uint64_t parent_hash = 0;            // with keys below: guards against hash collisions
    std::vector<int32_t> token_ids;      // [block_size]
    std::vector<uint64_t> extra_keys;    // [block_size]
    std::list<int32_t>::iterator free_pos;
    bool in_free_list = false;
  };

  uint64_t hash_block(const sequence& seq, int32_t i, uint64_t parent) const;
  // Cached block holding seq's block i under `hash`, or -1.
  int32_t lookup(const sequence& seq, int32_t i, uint64_t parent, uint64_t hash) const;
  // Calls fn(block id, chained hash) for each block of seq's longest cached prefix, in order.
  template <class Fn>
  void walk_cached_prefix(const sequence& seq, Fn&& fn) const;
  int32_t take_free_block();
  void ref(int32_t b);

  int32_t block_size_;
  bool enable_prefix_caching_;
  std::vector<block> blocks_;
  std::list<int32_t> free_list_;  // front = evicted first
  std::unordered_map<uint64_t, int32_t> cached_;  // chained hash -> block id
  int64_t n_query_tokens_ = 0, n_hit_tokens_ = 0;
};

}  // namespace autoglm

// runtime/block_manager.cpp: KV block pool with ref counts, chained prefix hashes and an LRU of cached blocks.
#include "runtime/block_manager.h"

#include <algorithm>

#include "core/error.h"

namespace autoglm {

namespace {

uint64_t mix(uint64_t h, uint64_t v) {
  // splitmix64 finalizer over the running state: cheap and well distributed.
  uint64_t z = h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

block_manager::block_manager(int32_t n_blocks, int32_t block_size, bool enable_prefix_caching)
    : block_size_(block_size), enable_prefix_caching_(enable_prefix_caching), blocks_(size_t(n_blocks)) {
  AG_CHECK(n_blocks > 0 && block_size > 0, "block pool needs blocks");
  for (int32_t b = 0; b < n_blocks; ++b) {
    blocks_[size_t(b)].free_pos = free_list_.insert(free_list_.end(), b);
    blocks_[size_t(b)].in_free_list = true;
  }
}

uint64_t block_manager::hash_block(const sequence& seq, int32_t i, uint64_t parent) const {
  uint64_t h = mix(parent, 0x6b76626c6f636bULL);
  for (int32_t p = i * block_size_; p < (i + 1) * block_size_; ++p) {
    h = mix(h, uint64_t(uint32_t(seq.tokens[size_t(p)])));
    h = mix(h, seq.extra_key(p));
  }
  return h;
}

int32_t block_manager::lookup(const sequence& seq, int32_t i, uint64_t parent, uint64_t hash) const {
  auto it = cached_.find(hash);
  if (it == cached_.end()) return -1;
  const block& b = blocks_[size_t(it->second)];
  if (b.parent_hash != parent) return -1;
  for (int32_t s = 0; s < block_size_; ++s) {
    const int32_t p = i * block_size_ + s;
    if (b.token_ids[size_t(s)] != seq.tokens[size_t(p)] || b.extra_keys[size_t(s)] != seq.extra_key(p)) return -1;
  }
  return it->second;
}

template <class Fn>
void block_manager::walk_cached_prefix(const sequence& seq, Fn&& fn) const {
  if (!enable_prefix_caching_ || !seq.reuse_prefix) return;
  uint64_t parent = 0;
  const int32_t n_full = (seq.n_tokens() - 1) / block_size_;  // keeps the last token out of the hit
  for (int32_t i = 0; i < n_full; ++i) {
    const uint64_t h = hash_block(seq, i, parent);
    const int32_t b = lookup(seq, i, parent, h);
    if (b < 0) break;
    fn(b, h);
    parent = h;
  }
}

int32_t block_manager::n_cached_tokens(const sequence& seq) const {
  int32_t n = 0;
  walk_cached_prefix(seq, [&](int32_t, uint64_t) { n += block_size_; });
  return n;
}

int32_t block_manager::n_blocks_needed(const sequence& seq) const {
  // A cached hit that is still referenced costs no free block; an unreferenced one does (it leaves the LRU).
  int32_t n_shared = 0;
  walk_cached_prefix(seq, [&](int32_t b, uint64_t) { n_shared += blocks_[size_t(b)].ref_count > 0; });
  return n_blocks_for(seq.n_tokens()) - n_shared;
}

void block_manager::ref(int32_t b) {
  block& blk = blocks_[size_t(b)];
  if (blk.in_free_list) {
    free_list_.erase(blk.free_pos);
    blk.in_free_list = false;
  }
  ++blk.ref_count;
}

int32_t block_manager::take_free_block() {
  AG_CHECK(!free_list_.empty(), "KV block pool exhausted");
  const int32_t b = free_list_.front();
  block& blk = blocks_[size_t(b)];
  if (blk.has_hash) {  // evict the cached content
    auto it = cached_.find(blk.hash);
    if (it != cached_.end() && it->second == b) cached_.erase(it);
    blk.has_hash = false;
  }
  ref(b);
  return b;
}

void block_manager::allocate(sequence& seq) {
  AG_CHECK(seq.block_table.empty() && seq.n_computed == 0, "allocate() on a sequence that holds blocks");
  AG_CHECK(can_allocate(seq), "allocate() without room");
  seq.block_hashes.clear();
  if (seq.reuse_prefix) n_query_tokens_ += seq.n_tokens();
  walk_cached_prefix(seq, [&](int32_t b, uint64_t h) {
    ref(b);
    seq.block_table.push_back(b);
    seq.block_hashes.push_back(h);
  });
  seq.n_computed = int32_t(seq.block_table.size()) * block_size_;
  n_hit_tokens_ += seq.n_computed;
  append_slots(seq);
}

void block_manager::release(sequence& seq) {
  for (auto it = seq.block_table.rbegin(); it != seq.block_table.rend(); ++it) {
    block& blk = blocks_[size_t(*it)];
    AG_CHECK(blk.ref_count > 0, "double free of a KV block");
    if (--blk.ref_count == 0) {
      // Cached content goes to the back (most recently used); empty blocks to the front (reused first).
      blk.free_pos = blk.has_hash ? free_list_.insert(free_list_.end(), *it) : free_list_.insert(free_list_.begin(), *it);
      blk.in_free_list = true;
    }
  }
  seq.block_table.clear();
  seq.block_hashes.clear();
  seq.n_computed = 0;
}

bool block_manager::can_append(const sequence& seq) const {
  const int32_t need = n_blocks_for(seq.n_tokens()) - int32_t(seq.block_table.size());
  return need <= n_free_blocks();
}

void block_manager::append_slots(sequence& seq) {
  while (int32_t(seq.block_table.size()) < n_blocks_for(seq.n_tokens())) seq.block_table.push_back(take_free_block());
}

void block_manager::commit(sequence& seq) {
  if (!enable_prefix_caching_ || !seq.share_kv) return;
  const int32_t n_full = std::min(seq.n_computed, seq.n_tokens()) / block_size_;
  for (int32_t i = int32_t(seq.block_hashes.size()); i < n_full; ++i) {
    const uint64_t parent = i == 0 ? 0 : seq.block_hashes[size_t(i - 1)];
    const uint64_t h = hash_block(seq, i, parent);
    seq.block_hashes.push_back(h);
    const int32_t b = seq.block_table[size_t(i)];
    block& blk = blocks_[size_t(b)];
    if (blk.has_hash || cached_.count(h)) continue;  // another sequence registered this content first
    blk.has_hash = true;
    blk.hash = h;
    blk.parent_hash = parent;
    blk.token_ids.assign(seq.tokens.begin() + i * block_size_, seq.tokens.begin() + (i + 1) * block_size_);
    blk.extra_keys.resize(size_t(block_size_));
    for (int32_t s = 0; s < block_size_; ++s) blk.extra_keys[size_t(s)] = seq.extra_key(i * block_size_ + s);
    cached_[h] = b;
  }
}

}  // namespace autoglm

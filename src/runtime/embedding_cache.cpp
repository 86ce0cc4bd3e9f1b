// runtime/embedding_cache.cpp: byte-bounded LRU of image embeddings.
#include "runtime/embedding_cache.h"

namespace autoglm {

namespace {
size_t size_of(const tensor& e) { return e.empty() ? 0 : e.n_bytes(); }
}  // namespace

tensor embedding_cache::get(uint64_t key) {
  auto it = map_.find(key);
  if (it == map_.end()) return {};
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->second;
}

void embedding_cache::put(uint64_t key, tensor value) {
  if (size_of(value) > max_bytes_) return;  // larger than the whole cache: do not flush everything for it
  auto it = map_.find(key);
  if (it != map_.end()) {
    bytes_ -= size_of(it->second->second);
    lru_.erase(it->second);
    map_.erase(it);
  }
  bytes_ += size_of(value);
  lru_.emplace_front(key, std::move(value));
  map_[key] = lru_.begin();
  while (bytes_ > max_bytes_ && !lru_.empty()) {
    bytes_ -= size_of(lru_.back().second);
    map_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

}  // namespace autoglm

// runtime/embedding_cache.h: LRU of vision-tower outputs keyed by image content, so a screenshot sent again (the
// common case for a phone agent re-sending history) is not encoded twice. Entries are tensors [n_tokens, hidden]
// on the engine's device; a tensor shares its storage, so a request keeps the embeddings it uses alive even
// after eviction.
#pragma once

#include <cstdint>
#include <list>
#include <unordered_map>
#include <utility>

#include "core/tensor.h"

namespace autoglm {

class embedding_cache {
 public:
  explicit embedding_cache(size_t max_bytes) : max_bytes_(max_bytes) {}

  tensor get(uint64_t key);  // empty on a miss; a hit becomes most recently used
  void put(uint64_t key, tensor value);

  size_t bytes() const { return bytes_; }
  size_t size() const { return map_.size(); }

 private:
  using entry = std::pair<uint64_t, tensor>;
  size_t max_bytes_;
  size_t bytes_ = 0;
  std::list<entry> lru_;  // front = most recently used
  std::unordered_map<uint64_t, std::list<entry>::iterator> map_;
};

}  // namespace autoglm

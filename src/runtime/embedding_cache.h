// runtime/embedding_cache.h: LRU of vision-tower outputs keyed by image content, so a screenshot sent again (the
// common case for a phone agent re-sending history) is not encoded twice. Entries are shared: a request keeps the
// embeddings it uses alive even after eviction.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

namespace autoglm {

using image_embedding = std::shared_ptr<const std::vector<float>>;  // [n_tokens, hidden_size]

class embedding_cache {
 public:
  explicit embedding_cache(size_t max_bytes) : max_bytes_(max_bytes) {}

  image_embedding get(uint64_t key);  // nullptr on a miss; a hit becomes most recently used
  void put(uint64_t key, image_embedding value);

  size_t bytes() const { return bytes_; }
  size_t size() const { return map_.size(); }

 private:
  using entry = std::pair<uint64_t, image_embedding>;
  size_t max_bytes_;
  size_t bytes_ = 0;
  std::list<entry> lru_;  // front = most recently used
  std::unordered_map<uint64_t, std::list<entry>::iterator> map_;
};

}  // namespace autoglm

// bpe.h: the BPE model of tokenizer.json: vocab, merges by rank (both "a b" and [a, b] formats), ignore_merges,
// byte_fallback, unk/fuse_unk, continuing_subword_prefix/end_of_word_suffix, plus a raw-byte fast path for
// byte-level vocabularies and a per-word cache. Merging uses a linked list + heap, O(n log n) per word.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace autoglm::tok {

struct string_hash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using string_map = std::unordered_map<std::string, int32_t, string_hash, std::equal_to<>>;

// The largest token id a tokenizer.json may use. Tables are indexed by id (id -> token string, ~40 bytes per id),
// so one id of 2^31 - 1 in a hostile file would size them at tens of GB (and overflowed vocab_size + 1); real
// vocabularies stay below 2^20.
constexpr int32_t max_token_id = (1 << 22) - 1;

class bpe_model {
 public:
  // Parses the "model" node; `where` names the file for errors.
  void load(const nlohmann::json& model, const std::string& where);
  // Makes tokenize(raw_bytes=true) available: words are then raw bytes mapped through the GPT-2 alphabet.
  void enable_byte_level();

  // Appends the ids of one pre-tokenized word.
  void tokenize(std::string_view word, bool raw_bytes, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(int32_t id) const;  // nullptr if the id is not in the vocab
  int32_t max_id() const { return static_cast<int32_t>(id_to_token_.size()) - 1; }

 private:
  struct merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t key(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }
  void initial_symbols(std::string_view word, bool raw_bytes, std::vector<int32_t>& syms) const;
  void merge_word(std::vector<int32_t>& syms) const;

  string_map vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  std::unordered_map<uint64_t, merge> merges_;
  bool ignore_merges_ = false;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  std::optional<int32_t> unk_id_;
  std::string prefix_, suffix_;
  std::array<int32_t, 256> byte_ids_{};       // byte -> id of its byte-level char (-1 if absent)
  std::array<int32_t, 256> fallback_ids_{};   // byte -> id of "<0xXX>" (-1 if absent)
  string_map raw_vocab_;                      // byte-level tokens keyed by the raw bytes they stand for

  static constexpr size_t max_cached_word = 256;
  static constexpr size_t max_cache_entries = 200000;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, string_hash, std::equal_to<>> cache_[2];
};

}  // namespace autoglm::tok

// bpe.cpp: BPE model loading and the merge loop (mirrors HF tokenizers' Word::merge_all tie-breaking).
#include "tokenizer/bpe.h"

#include <queue>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace autoglm::tok {

using json = nlohmann::json;

void bpe_model::load(const json& m, const std::string& where) {
  if (!m.is_object()) throw error(where + ": \"model\" must be an object");
  std::string type = m.contains("type") && m["type"].is_string() ? m["type"].get<std::string>() : "BPE";
  if (type != "BPE")
    throw error(where + ": unsupported model type \"" + type + "\" (only BPE is supported)");
  if (!m.contains("vocab") || !m["vocab"].is_object()) throw error(where + ": model.vocab must be an object");
  if (!m.contains("merges") || !m["merges"].is_array()) throw error(where + ": model.merges must be an array");
  auto opt_string = [&](const char* k) {
    if (!m.contains(k) || m[k].is_null()) return std::string();
    if (!m[k].is_string()) throw error(where + ": model." + k + " must be a string");
    return m[k].get<std::string>();
  };
  auto opt_bool = [&](const char* k) {
    if (!m.contains(k) || m[k].is_null()) return false;
    if (!m[k].is_boolean()) throw error(where + ": model." + k + " must be a boolean");
    return m[k].get<bool>();
  };
  if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"].get<double>() > 0.0)
    throw error(where + ": model.dropout is not supported");
  ignore_merges_ = opt_bool("ignore_merges");
  byte_fallback_ = opt_bool("byte_fallback");
  fuse_unk_ = opt_bool("fuse_unk");
  prefix_ = opt_string("continuing_subword_prefix");
  suffix_ = opt_string("end_of_word_suffix");

  vocab_.reserve(m["vocab"].size());
  int32_t max_id = -1;
  for (auto& [tok, v] : m["vocab"].items()) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > max_token_id)
      throw error(where + ": model.vocab[\"" + tok + "\"] must be an integer id from 0 to " +
                  std::to_string(max_token_id));
    int32_t id = v.get<int32_t>();
    vocab_.emplace(tok, id);
    max_id = std::max(max_id, id);
  }
  id_to_token_.assign(max_id + 1, std::string());
  has_id_.assign(max_id + 1, false);
  for (auto& [tok, id] : vocab_) {
    id_to_token_[id] = tok;
    has_id_[id] = true;
  }
  std::string unk = opt_string("unk_token");
  if (!unk.empty()) {
    auto it = vocab_.find(unk);
    if (it == vocab_.end()) throw error(where + ": model.unk_token \"" + unk + "\" is not in the vocab");
    unk_id_ = it->second;
  }

  const json& merges = m["merges"];
  merges_.reserve(merges.size() * 2);
  auto lookup = [&](const std::string& t, size_t i) {
    auto it = vocab_.find(t);
    if (it == vocab_.end())
      throw error(where + ": model.merges[" + std::to_string(i) + "] uses \"" + t + "\" which is not in the vocab");
    return it->second;
  };
  for (size_t i = 0; i < merges.size(); ++i) {
    std::string a, b;
    const json& e = merges[i];
    if (e.is_string()) {
      const std::string& s = e.get_ref<const std::string&>();
      size_t sp = s.find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 == s.size())
        throw error(where + ": model.merges[" + std::to_string(i) + "] is not \"a b\": \"" + s + "\"");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      throw error(where + ": model.merges[" + std::to_string(i) + "] must be \"a b\" or [\"a\", \"b\"]");
    }
    std::string joined = a + (b.compare(0, prefix_.size(), prefix_) == 0 ? b.substr(prefix_.size()) : b);
    int32_t ia = lookup(a, i), ib = lookup(b, i), inew = lookup(joined, i);
    merges_.emplace(key(ia, ib), merge{static_cast<int32_t>(i), inew});  // first occurrence wins
  }

  fallback_ids_.fill(-1);
  if (byte_fallback_) {
    static const char* hex = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
      std::string t = std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
      auto it = vocab_.find(t);
      if (it != vocab_.end()) fallback_ids_[b] = it->second;
    }
  }
  byte_ids_.fill(-1);
}

void bpe_model::enable_byte_level() {
  for (int b = 0; b < 256; ++b) {
    std::string c;
    utf8::append(c, unicode::byte_to_cp(static_cast<uint8_t>(b)));
    auto it = vocab_.find(c);
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }
  raw_vocab_.reserve(vocab_.size());
  for (auto& [tok, id] : vocab_) {
    std::string raw;
    bool ok = true;
    for (size_t i = 0; i < tok.size() && ok;) {
      int b = unicode::cp_to_byte(utf8::next(tok, i));
      if (b < 0) ok = false;
      else raw.push_back(static_cast<char>(b));
    }
    if (ok) raw_vocab_.emplace(std::move(raw), id);
  }
}

std::optional<int32_t> bpe_model::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* bpe_model::id_to_token(int32_t id) const {
  if (id < 0 || id >= static_cast<int32_t>(id_to_token_.size()) || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

void bpe_model::initial_symbols(std::string_view word, bool raw_bytes, std::vector<int32_t>& syms) const {
  bool prev_unk = false;
  auto push_unknown = [&](std::string_view ch_bytes) {
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char b : ch_bytes) all = all && fallback_ids_[b] >= 0;
      if (all) {
        for (unsigned char b : ch_bytes) syms.push_back(fallback_ids_[b]);
        prev_unk = false;
        return;
      }
    }
    if (unk_id_) {
      if (!(fuse_unk_ && prev_unk)) syms.push_back(*unk_id_);
      prev_unk = true;
    }
  };
  if (raw_bytes && prefix_.empty() && suffix_.empty()) {
    for (unsigned char b : word) {
      int32_t id = byte_ids_[b];
      if (id >= 0) {
        syms.push_back(id);
        prev_unk = false;
      } else {
        std::string mapped;
        utf8::append(mapped, unicode::byte_to_cp(b));
        push_unknown(mapped);
      }
    }
    return;
  }
  std::string mapped_storage;
  if (raw_bytes) {
    for (unsigned char b : word) utf8::append(mapped_storage, unicode::byte_to_cp(b));
    word = mapped_storage;
  }
  std::string buf;
  for (size_t i = 0; i < word.size();) {
    size_t start = i;
    utf8::next(word, i);
    std::string_view ch = word.substr(start, i - start);
    buf.clear();
    if (start > 0) buf += prefix_;
    buf += ch;
    if (i == word.size()) buf += suffix_;
    auto it = vocab_.find(buf);
    if (it != vocab_.end()) {
      syms.push_back(it->second);
      prev_unk = false;
    } else {
      push_unknown(ch);
    }
  }
}

void bpe_model::merge_word(std::vector<int32_t>& syms) const {
  const size_t n = syms.size();
  if (n < 2) return;
  std::vector<int32_t> prev(n), next(n);
  std::vector<char> alive(n, 1);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  struct cand {
    int32_t rank, pos, new_id;
    bool operator>(const cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<cand, std::vector<cand>, std::greater<cand>> q;
  auto push = [&](int32_t pos) {
    int32_t nx = next[pos];
    if (nx < 0) return;
    auto it = merges_.find(key(syms[pos], syms[nx]));
    if (it != merges_.end()) q.push({it->second.rank, pos, it->second.new_id});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
  while (!q.empty()) {
    cand top = q.top();
    q.pop();
    int32_t pos = top.pos;
    if (!alive[pos] || next[pos] < 0) continue;
    int32_t nx = next[pos];
    auto it = merges_.find(key(syms[pos], syms[nx]));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;
    syms[pos] = top.new_id;
    alive[nx] = 0;
    next[pos] = next[nx];
    if (next[nx] >= 0) prev[next[nx]] = pos;
    if (prev[pos] >= 0) push(prev[pos]);
    push(pos);
  }
  size_t w = 0;
  for (int32_t i = 0; i >= 0; i = next[i]) syms[w++] = syms[i];
  syms.resize(w);
}

void bpe_model::tokenize(std::string_view word, bool raw_bytes, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  const bool cacheable = word.size() <= max_cached_word;
  auto& cache = cache_[raw_bytes ? 1 : 0];
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache.find(word);
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> syms;
  bool whole = false;
  if (ignore_merges_) {
    const string_map& v = raw_bytes && prefix_.empty() && suffix_.empty() ? raw_vocab_ : vocab_;
    std::string mapped;
    std::string_view k = word;
    if (raw_bytes && &v == &vocab_) {
      for (unsigned char b : word) utf8::append(mapped, unicode::byte_to_cp(b));
      k = mapped;
    }
    auto it = v.find(k);
    if (it != v.end()) {
      syms.push_back(it->second);
      whole = true;
    }
  }
  if (!whole) {
    syms.reserve(word.size());
    initial_symbols(word, raw_bytes, syms);
    merge_word(syms);
  }
  out.insert(out.end(), syms.begin(), syms.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache.size() >= max_cache_entries) cache.clear();
    cache.emplace(std::string(word), std::move(syms));
  }
}

}  // namespace autoglm::tok

// tokenizer.cpp: loads tokenizer.json and runs the HF pipeline: added-token split -> normalizer -> normalized
// added-token split -> pre-tokenizer -> BPE; decode via the decoder chain; the incremental (streaming) decoder.
#include "tokenizer/tokenizer.h"

#include <array>
#include <cctype>
#include <filesystem>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "formats/json_limits.h"
#include "tokenizer/bpe.h"
#include "tokenizer/components.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace autoglm {

namespace tok {

using json = nlohmann::json;

struct added_token {
  int32_t id = 0;
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

// Byte trie over added-token contents; finds leftmost-longest matches like HF's aho-corasick MatchKind::LeftmostLongest.
class token_trie {
 public:
  void add(const std::string& s, int32_t token_index) {
    if (s.empty()) return;
    if (nodes_.empty()) nodes_.emplace_back();
    first_[static_cast<unsigned char>(s[0])] = true;
    int32_t n = 0;
    for (unsigned char c : s) {
      int32_t child = find(n, c);
      if (child < 0) {
        child = static_cast<int32_t>(nodes_.size());
        nodes_[n].kids.emplace_back(c, child);
        nodes_.emplace_back();
      }
      n = child;
    }
    if (nodes_[n].token < 0) nodes_[n].token = token_index;
  }
  bool empty() const { return nodes_.empty(); }
  // Longest token starting at s[i]: returns its index and sets len, or -1.
  int32_t match_at(std::string_view s, size_t i, size_t& len) const {
    if (!first_[static_cast<unsigned char>(s[i])]) return -1;
    int32_t n = 0, best = -1;
    for (size_t k = i; k < s.size(); ++k) {
      n = find(n, static_cast<unsigned char>(s[k]));
      if (n < 0) break;
      if (nodes_[n].token >= 0) {
        best = nodes_[n].token;
        len = k + 1 - i;
      }
    }
    return best;
  }

 private:
  struct node {
    std::vector<std::pair<unsigned char, int32_t>> kids;
    int32_t token = -1;
  };
  int32_t find(int32_t n, unsigned char c) const {
    for (auto& [k, child] : nodes_[n].kids)
      if (k == c) return child;
    return -1;
  }
  std::vector<node> nodes_;
  std::array<bool, 256> first_{};
};

struct segment {
  size_t b, e;
  int32_t token;  // index into added tokens, or -1 for text
};

struct tokenizer_impl {
  std::string name;
  bpe_model model;
  bool byte_level_last = false;
  std::unique_ptr<normalizer> norm;
  std::unique_ptr<pre_tokenizer> pre;
  std::unique_ptr<decoder> dec;
  std::unique_ptr<post_processor> post;
  std::vector<added_token> added;
  std::unordered_map<int32_t, size_t> added_by_id;
  string_map added_by_content;
  token_trie raw_trie, norm_trie;
  int32_t vocab_size = 0;

  // Rust char::is_alphanumeric() || '_' (HF single_word), approximated by \p{L} / \p{N} outside ASCII.
  static bool is_word_char(uint32_t cp) {
    if (cp < 0x80) return cp == '_' || std::isalnum(static_cast<int>(cp)) != 0;
    static const regex word(R"([\p{L}\p{N}])", false, "single_word");
    std::string c;
    utf8::append(c, cp);
    thread_local std::vector<std::pair<size_t, size_t>> m;
    word.find_all(c, m);
    return !m.empty();
  }

  // HF AddedVocabulary::find_matches: calls emit(segment) for each segment in order; stops (returning false) as
  // soon as emit returns false, so a long text is only scanned as far as it is encoded.
  template <class Emit>
  bool split_added(std::string_view s, const token_trie& trie, bool parse_special, Emit&& emit) const {
    size_t start_offset = 0;
    size_t i = 0;
    while (i < s.size()) {
      size_t len = 0;
      int32_t t = trie.empty() ? -1 : trie.match_at(s, i, len);
      if (t < 0) {
        ++i;
        continue;
      }
      const added_token& a = added[t];
      size_t start = i, stop = i + len;
      i = stop;
      if (!parse_special && a.special) continue;
      if (a.single_word) {
        bool start_ok = true, stop_ok = true;
        if (start > 0) {
          size_t k = start - 1;
          while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
          size_t kk = k;
          start_ok = !is_word_char(utf8::next(s, kk));
        }
        if (stop < s.size()) {
          size_t kk = stop;
          stop_ok = !is_word_char(utf8::next(s, kk));
        }
        if (!start_ok || !stop_ok) continue;
      }
      if (a.lstrip) {
        size_t ns = start;
        while (ns > start_offset) {
          size_t k = ns - 1;
          while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
          size_t kk = k;
          if (!unicode::is_whitespace(utf8::next(s, kk))) break;
          ns = k;
        }
        start = ns;
      }
      if (a.rstrip) {
        while (stop < s.size()) {
          size_t kk = stop;
          if (!unicode::is_whitespace(utf8::next(s, kk))) break;
          stop = kk;
        }
        i = stop;
      }
      if (start_offset < start && !emit(segment{start_offset, start, -1})) return false;
      if (!emit(segment{start, stop, t})) return false;
      start_offset = stop;
    }
    if (start_offset < s.size()) return emit(segment{start_offset, s.size(), -1});
    return true;
  }

  // Appends the ids of one pre-tokenized word; false once there are more than `limit` ids.
  bool tokenize_piece(std::string_view word, std::vector<int32_t>& ids, size_t limit) const {
    model.tokenize(word, byte_level_last, ids);
    return ids.size() <= limit;
  }

  // Text between added tokens: pre-tokenizer + BPE. False once there are more than `limit` ids. With a limit,
  // the text is pre-tokenized window by window (pre_tokenizer::apply_window) so a 50 MB prompt stops after the
  // few kilobytes that hold `limit` tokens; each window's pieces are what the whole-text split gives there.
  bool encode_text(std::string_view text, bool at_start, std::vector<int32_t>& ids, size_t limit) const {
    if (text.empty()) return true;
    if (!pre) {
      model.tokenize(text, false, ids);
      return ids.size() <= limit;
    }
    std::vector<piece> pieces;
    piece_arena arena;
    if (limit != pre_tokenizer::npos) {
      constexpr size_t k_first_window = 64u << 10;
      size_t window = k_first_window, from = 0;
      while (from < text.size()) {
        size_t end = std::min(text.size(), from + window);
        while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;  // whole chars
        pieces.clear();
        arena.clear();
        const size_t next = pre->apply_window(text, from, end, at_start, pieces, arena);
        if (next == pre_tokenizer::npos) {  // this pipeline splits only whole texts (e.g. Metaspace)
          AG_CHECK(from == 0, "apply_window gave up after the first window");
          break;
        }
        for (auto& p : pieces)
          if (!tokenize_piece(p.text, ids, limit)) return false;
        if (next == from) window *= 2;  // no whole piece yet (a very long word or run): look further
        from = next;
      }
      if (from >= text.size()) return true;
      pieces.clear();
      arena.clear();
    }
    pieces.push_back({text, at_start});
    pre->apply(pieces, arena);
    for (auto& p : pieces)
      if (!tokenize_piece(p.text, ids, limit)) return false;
    return true;
  }

  // The whole pipeline; stops once more than `limit` ids are known (returns false; ids then holds at least
  // limit + 1 ids, the first ones of the full encoding).
  bool encode(std::string_view text, bool parse_special, size_t limit, std::vector<int32_t>& ids) const {
    size_t bad = utf8::valid_prefix(text);
    if (bad != text.size())
      throw error("tokenizer: input text is not valid UTF-8 (at byte " + std::to_string(bad) + ")");
    ids.reserve(std::min(text.size() / 3, limit) + 4);
    return split_added(text, raw_trie, parse_special, [&](const segment& sg) {
      if (sg.token >= 0) {
        ids.push_back(added[sg.token].id);
        return ids.size() <= limit;
      }
      std::string_view part = text.substr(sg.b, sg.e - sg.b);
      std::string normalized;
      if (norm) {
        normalized = norm->apply(part);
        part = normalized;
      }
      if (norm_trie.empty()) return encode_text(part, sg.b == 0, ids, limit);
      return split_added(part, norm_trie, parse_special, [&](const segment& s2) {
        if (s2.token >= 0) {
          ids.push_back(added[s2.token].id);
          return ids.size() <= limit;
        }
        return encode_text(part.substr(s2.b, s2.e - s2.b), sg.b == 0 && s2.b == 0, ids, limit);
      });
    });
  }

  // HF TokenizerImpl::decode: ids -> token strings (added tokens by content, special ones skipped on request),
  // then the decoder chain over the whole list (added tokens go through it too, e.g. Gemma's "▁▁").
  std::string decode(const int32_t* ids, size_t n, bool skip_special, bool raw) const {
    std::vector<std::string> tokens;
    tokens.reserve(n);
    for (size_t k = 0; k < n; ++k) {
      auto it = added_by_id.find(ids[k]);
      if (it != added_by_id.end()) {
        const added_token& a = added[it->second];
        if (skip_special && a.special) continue;
        tokens.push_back(a.content);
      } else if (const std::string* t = model.id_to_token(ids[k])) {
        tokens.push_back(*t);
      }
    }
    std::string result;
    if (dec) {
      dec->apply(tokens, raw);
      for (auto& t : tokens) result += t;
    } else {
      for (size_t k = 0; k < tokens.size(); ++k) {
        if (k) result += ' ';
        result += tokens[k];
      }
    }
    return result;
  }
};

namespace {
template <class T>
T flag(const json& j, const char* key, const std::string& where, T fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  try {
    return j[key].get<T>();
  } catch (const std::exception& e) {
    throw error(where + "." + key + ": " + e.what());
  }
}
}  // namespace

}  // namespace tok

tokenizer::tokenizer() : impl_(std::make_unique<tok::tokenizer_impl>()) {}
tokenizer::~tokenizer() = default;

namespace {
// Real tokenizer.json files reach ~35 MB (Gemma 3: 262k tokens with merges); the caps leave about 4x room and
// keep a wrong path or a hostile file from being read or parsed without bound.
constexpr uint64_t k_max_tokenizer_bytes = 128ull << 20;
constexpr autoglm::json_limits k_tokenizer_json_limits{/*max_depth=*/64, /*max_values=*/32'000'000};
}  // namespace

std::unique_ptr<tokenizer> tokenizer::load(const std::string& path) {
  namespace fs = std::filesystem;
  std::string file = path;
  std::error_code ec;
  if (fs::is_directory(path, ec)) file = (fs::path(path) / "tokenizer.json").string();
  return from_json(read_regular_file(file, k_max_tokenizer_bytes), file);
}

std::unique_ptr<tokenizer> tokenizer::from_json(const std::string& text, const std::string& name) {
  using tok::json;
  json j;
  try {
    j = parse_json(text, k_tokenizer_json_limits);
  } catch (const json_parse_error& e) {
    throw error(name + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) throw error(name + ": expected a JSON object at the top level");
  if (!j.contains("model")) throw error(name + ": missing \"model\"");
  std::unique_ptr<tokenizer> t(new tokenizer());
  auto& im = *t->impl_;
  im.name = name;
  try {
    im.model.load(j["model"], name);
    static const json null_json;
    auto node = [&](const char* k) -> const json& { return j.contains(k) ? j[k] : null_json; };
    im.norm = tok::parse_normalizer(node("normalizer"), name + ": normalizer");
    im.pre = tok::parse_pre_tokenizer(node("pre_tokenizer"), name + ": pre_tokenizer", im.byte_level_last);
    im.dec = tok::parse_decoder(node("decoder"), name + ": decoder");
    im.post = tok::parse_post_processor(node("post_processor"), name + ": post_processor");
  } catch (const json::exception& e) {
    throw error(name + ": malformed tokenizer.json: " + e.what());
  }
  if (im.byte_level_last) im.model.enable_byte_level();
  im.vocab_size = im.model.max_id() + 1;

  const json& added = j.contains("added_tokens") ? j["added_tokens"] : json::array();
  if (!added.is_array()) throw error(name + ": added_tokens must be an array");
  for (size_t i = 0; i < added.size(); ++i) {
    std::string where = name + ": added_tokens[" + std::to_string(i) + "]";
    const json& a = added[i];
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || a["id"].get<int64_t>() < 0 ||
        a["id"].get<int64_t>() > tok::max_token_id || !a.contains("content") || !a["content"].is_string())
      throw error(where + ": needs an integer \"id\" from 0 to " + std::to_string(tok::max_token_id) +
                  " and a string \"content\"");
    tok::added_token at;
    at.id = a["id"].get<int32_t>();
    at.content = a["content"].get<std::string>();
    if (at.content.empty()) continue;
    at.single_word = tok::flag<bool>(a, "single_word", where, false);
    at.lstrip = tok::flag<bool>(a, "lstrip", where, false);
    at.rstrip = tok::flag<bool>(a, "rstrip", where, false);
    at.normalized = tok::flag<bool>(a, "normalized", where, !tok::flag<bool>(a, "special", where, false));
    at.special = tok::flag<bool>(a, "special", where, false);
    if (!utf8::is_valid(at.content)) throw error(where + ": content is not valid UTF-8");
    size_t idx = im.added.size();
    im.added_by_id[at.id] = idx;
    im.added_by_content.emplace(at.content, at.id);
    im.vocab_size = std::max(im.vocab_size, at.id + 1);
    if (at.normalized && im.norm) im.norm_trie.add(im.norm->apply(at.content), static_cast<int32_t>(idx));
    else if (at.normalized) im.norm_trie.add(at.content, static_cast<int32_t>(idx));
    else im.raw_trie.add(at.content, static_cast<int32_t>(idx));
    im.added.push_back(std::move(at));
  }
  return t;
}

std::vector<int32_t> tokenizer::encode(std::string_view text, bool parse_special) const {
  std::vector<int32_t> ids;
  impl_->encode(text, parse_special, tok::pre_tokenizer::npos, ids);
  return ids;
}

std::vector<int32_t> tokenizer::encode_with_post_processor(std::string_view text, bool parse_special) const {
  std::vector<int32_t> ids;
  impl_->encode(text, parse_special, tok::pre_tokenizer::npos, ids);
  if (impl_->post) impl_->post->apply(ids);
  return ids;
}

bounded_encoding tokenizer::encode_bounded(std::string_view text, size_t max_tokens, bool parse_special) const {
  bounded_encoding out;
  out.over_limit = !impl_->encode(text, parse_special, max_tokens, out.ids);
  if (out.ids.size() > max_tokens) out.ids.resize(max_tokens);
  return out;
}

bounded_encoding tokenizer::encode_with_post_processor_bounded(std::string_view text, size_t max_tokens,
                                                               bool parse_special) const {
  bounded_encoding out;
  out.over_limit = !impl_->encode(text, parse_special, max_tokens, out.ids);
  // Post-processors only add tokens around the text's (template prefix/suffix), so processing the first ids
  // and cutting again gives the first ids of the full result.
  if (impl_->post) impl_->post->apply(out.ids);
  if (out.ids.size() > max_tokens) {
    out.ids.resize(max_tokens);
    out.over_limit = true;
  }
  return out;
}

std::string tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  return impl_->decode(ids.data(), ids.size(), skip_special, false);
}

std::string tokenizer::decode_raw(const int32_t* ids, size_t n, bool skip_special) const {
  return impl_->decode(ids, n, skip_special, true);
}

std::optional<int32_t> tokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->added_by_content.find(token);
  if (it != impl_->added_by_content.end()) return it->second;
  return impl_->model.token_to_id(token);
}

std::string tokenizer::id_to_token(int32_t id) const {
  auto it = impl_->added_by_id.find(id);
  if (it != impl_->added_by_id.end()) return impl_->added[it->second].content;
  const std::string* t = impl_->model.id_to_token(id);
  return t ? *t : std::string();
}

bool tokenizer::is_special(int32_t id) const {
  auto it = impl_->added_by_id.find(id);
  return it != impl_->added_by_id.end() && impl_->added[it->second].special;
}

int32_t tokenizer::vocab_size() const { return impl_->vocab_size; }

// ---------------------------------------------------------------------------------------------------------------
incremental_decoder::incremental_decoder(const tokenizer& tok, bool skip_special) : tok_(tok), skip_special_(skip_special) {}

std::string incremental_decoder::push(int32_t id) {
  ids_.push_back(id);
  std::string full = tok_.decode_raw(ids_.data(), ids_.size(), skip_special_);
  // Decoding a longer window normally extends the previous text; if a decoder rewrote earlier text, only the part
  // past the common prefix is new (what was already returned cannot be taken back).
  size_t common = 0;
  while (common < full.size() && common < window_text_.size() && full[common] == window_text_[common]) ++common;
  if (common == window_text_.size()) pending_.append(full, common);
  else if (full.size() > window_text_.size()) pending_.append(full, window_text_.size());
  window_text_ = std::move(full);
  read_ = ids_.size();
  // Keep a few ids of context (decoders such as Metaspace treat the first token specially).
  constexpr size_t keep = 4;
  if (ids_.size() > 2 * keep) {
    ids_.erase(ids_.begin(), ids_.end() - keep);
    window_text_ = tok_.decode_raw(ids_.data(), ids_.size(), skip_special_);
    read_ = ids_.size();
  }
  size_t tail = utf8::incomplete_tail(pending_);
  std::string out = utf8::lossy(std::string_view(pending_).substr(0, pending_.size() - tail));
  pending_.erase(0, pending_.size() - tail);
  return out;
}

std::string incremental_decoder::flush() {
  std::string out = utf8::lossy(pending_);
  pending_.clear();
  ids_.clear();
  window_text_.clear();
  read_ = 0;
  return out;
}

}  // namespace autoglm

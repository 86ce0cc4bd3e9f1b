// pre_tokenizer.cpp: normalizers and pre-tokenizers of tokenizer.json, following HF tokenizers' semantics
// (Split behaviours, ByteLevel prefix space per piece, Metaspace prepend schemes).
#include <algorithm>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/components.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace autoglm::tok {

using json = nlohmann::json;

namespace {

// {"String": s} or {"Regex": r}
std::unique_ptr<regex> parse_pattern(const json& j, const std::string& where, std::string* literal = nullptr) {
  if (!j.is_object()) throw error(where + ": pattern must be {\"String\": ...} or {\"Regex\": ...}");
  if (j.contains("String") && j["String"].is_string()) {
    if (literal) *literal = j["String"].get<std::string>();
    return std::make_unique<regex>(j["String"].get<std::string>(), true, where);
  }
  if (j.contains("Regex") && j["Regex"].is_string()) return std::make_unique<regex>(j["Regex"].get<std::string>(), false, where);
  throw error(where + ": pattern must be {\"String\": ...} or {\"Regex\": ...}");
}

// ---------------------------------------------------------------------------------------------------------------
class seq_normalizer : public normalizer {
 public:
  std::vector<std::unique_ptr<normalizer>> steps;
  std::string apply(std::string_view s) const override {
    std::string cur(s);
    for (auto& n : steps) cur = n->apply(cur);
    return cur;
  }
};
class form_normalizer : public normalizer {
 public:
  explicit form_normalizer(unicode::norm_form f) : form_(f) {}
  std::string apply(std::string_view s) const override { return unicode::normalize(s, form_); }
 private:
  unicode::norm_form form_;
};
class lowercase_normalizer : public normalizer {
 public:
  std::string apply(std::string_view s) const override { return unicode::lowercase(s); }
};
class replace_normalizer : public normalizer {
 public:
  std::unique_ptr<regex> re;
  std::string content;
  std::string apply(std::string_view s) const override {
    std::vector<std::pair<size_t, size_t>> m;
    re->find_all(s, m);
    if (m.empty()) return std::string(s);
    std::string out;
    size_t prev = 0;
    for (auto [b, e] : m) {
      out.append(s.substr(prev, b - prev));
      out.append(content);
      prev = e;
    }
    out.append(s.substr(prev));
    return out;
  }
};
class prepend_normalizer : public normalizer {
 public:
  std::string prefix;
  std::string apply(std::string_view s) const override { return s.empty() ? std::string() : prefix + std::string(s); }
};
class strip_normalizer : public normalizer {
 public:
  bool left = true, right = true;
  std::string apply(std::string_view s) const override {
    size_t b = 0, e = s.size();
    if (left) {
      while (b < e) {
        size_t i = b;
        if (!unicode::is_whitespace(utf8::next(s, i))) break;
        b = i;
      }
    }
    if (right) {
      while (e > b) {
        size_t k = e - 1;
        while (k > b && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
        size_t i = k;
        if (!unicode::is_whitespace(utf8::next(s, i))) break;
        e = k;
      }
    }
    return std::string(s.substr(b, e - b));
  }
};

}  // namespace

std::unique_ptr<normalizer> parse_normalizer(const json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string t = type_of(j, where);
  if (t == "Sequence") {
    auto n = std::make_unique<seq_normalizer>();
    if (!j.contains("normalizers") || !j["normalizers"].is_array()) throw error(where + ".normalizers: expected an array");
    for (size_t i = 0; i < j["normalizers"].size(); ++i) {
      auto step = parse_normalizer(j["normalizers"][i], where + ".normalizers[" + std::to_string(i) + "]");
      if (step) n->steps.push_back(std::move(step));
    }
    return n;
  }
  if (t == "NFC") return std::make_unique<form_normalizer>(unicode::norm_form::nfc);
  if (t == "NFD") return std::make_unique<form_normalizer>(unicode::norm_form::nfd);
  if (t == "NFKC") return std::make_unique<form_normalizer>(unicode::norm_form::nfkc);
  if (t == "NFKD") return std::make_unique<form_normalizer>(unicode::norm_form::nfkd);
  if (t == "Lowercase") return std::make_unique<lowercase_normalizer>();
  if (t == "Replace") {
    auto n = std::make_unique<replace_normalizer>();
    if (!j.contains("pattern")) throw error(where + ".pattern: missing");
    n->re = parse_pattern(j["pattern"], where + ".pattern");
    n->content = field<std::string>(j, "content", where, "");
    return n;
  }
  if (t == "Prepend") {
    auto n = std::make_unique<prepend_normalizer>();
    n->prefix = field<std::string>(j, "prepend", where, "");
    return n;
  }
  if (t == "Strip") {
    auto n = std::make_unique<strip_normalizer>();
    n->left = field<bool>(j, "strip_left", where, true);
    n->right = field<bool>(j, "strip_right", where, true);
    return n;
  }
  throw error(where + ": unsupported normalizer type \"" + t +
              "\" (supported: Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Replace, Prepend, Strip)");
}

// ---------------------------------------------------------------------------------------------------------------
std::string byte_level_map(std::string_view raw) {
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char b : raw) utf8::append(out, unicode::byte_to_cp(b));
  return out;
}

namespace {

enum class split_behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

struct range {
  size_t b, e;
};
using match_list = std::vector<std::pair<size_t, size_t>>;

// HF NormalizedString::split of s[b0, e0) given the matches found in it (absolute offsets, in order): appends the
// ranges it keeps.
void kept_ranges(size_t b0, size_t e0, const match_list& found, split_behavior behavior, bool invert,
                 std::vector<range>& kept) {
  if (found.empty() && !invert) {
    if (e0 > b0) kept.push_back({b0, e0});
    return;
  }
  if (behavior == split_behavior::isolated) {  // the common GPT-2/GLM case: matches and gaps, in order
    size_t prev = b0;
    for (auto [b, e] : found) {
      if (prev < b) kept.push_back({prev, b});
      kept.push_back({b, e});
      prev = e;
    }
    if (prev < e0) kept.push_back({prev, e0});
    return;
  }
  struct part {
    size_t b, e;
    bool match;
  };
  std::vector<part> parts;
  size_t prev = b0;
  for (auto [b, e] : found) {
    if (prev < b) parts.push_back({prev, b, false});
    parts.push_back({b, e, true});
    prev = e;
  }
  if (prev < e0) parts.push_back({prev, e0, false});
  if (invert)
    for (auto& x : parts) x.match = !x.match;

  const size_t first = kept.size();
  switch (behavior) {
    case split_behavior::removed:
      for (auto& x : parts)
        if (!x.match) kept.push_back({x.b, x.e});
      break;
    case split_behavior::isolated:
      for (auto& x : parts) kept.push_back({x.b, x.e});
      break;
    case split_behavior::merged_with_previous: {
      bool prev_match = false;
      for (auto& x : parts) {
        if (x.match && !prev_match && kept.size() > first) kept.back().e = x.e;
        else kept.push_back({x.b, x.e});
        prev_match = x.match;
      }
      break;
    }
    case split_behavior::merged_with_next: {
      bool prev_match = false;
      for (size_t k = parts.size(); k-- > 0;) {
        auto& x = parts[k];
        if (x.match && !prev_match && kept.size() > first) kept.back().b = x.b;
        else kept.push_back({x.b, x.e});
        prev_match = x.match;
      }
      std::reverse(kept.begin() + static_cast<std::ptrdiff_t>(first), kept.end());
      break;
    }
    case split_behavior::contiguous: {
      bool prev_match = false;
      for (auto& x : parts) {
        if (x.match == prev_match && kept.size() > first) kept.back().e = x.e;
        else kept.push_back({x.b, x.e});
        prev_match = x.match;
      }
      break;
    }
  }
}

void split_piece(const piece& p, const regex& re, split_behavior behavior, bool invert, std::vector<piece>& out) {
  std::string_view s = p.text;
  thread_local match_list found;
  thread_local std::vector<range> kept;
  re.find_all(s, found);
  if (found.empty() && !invert) {
    out.push_back(p);
    return;
  }
  kept.clear();
  kept_ranges(0, s.size(), found, behavior, invert, kept);
  for (auto& x : kept)
    if (x.e > x.b) out.push_back({s.substr(x.b, x.e - x.b), p.at_start && x.b == 0});
}

// pre_tokenizer::apply_window for a split over the whole text. Every match find_window reports before c is
// final, so every part (match or gap) that starts before the last one begins where the whole-text split would
// put a boundary; only the last kept piece can still grow (a gap running into the window's end, a match a
// MergedWith*/Contiguous rule would join to what follows), so it is held back and the next window starts there.
size_t split_window(std::string_view text, size_t from, size_t end, bool at_start, const regex& re,
                    split_behavior behavior, bool invert, std::vector<piece>& out) {
  thread_local match_list found;
  thread_local std::vector<range> kept;
  const size_t c = re.find_window(text, from, end, found);
  kept.clear();
  kept_ranges(from, c, found, behavior, invert, kept);
  size_t next = c;
  if (end != text.size()) {
    if (!kept.empty()) {
      next = kept.back().b;
      kept.pop_back();
    } else if (found.empty()) {
      next = from;
    } else {  // only removed parts: the last one (a match, or the gap after it) starts at a boundary
      next = found.back().second < c ? found.back().second : found.back().first;
    }
  }
  for (auto& x : kept)
    if (x.e > x.b) out.push_back({text.substr(x.b, x.e - x.b), at_start && x.b == 0});
  return next;
}

class seq_pre_tokenizer : public pre_tokenizer {
 public:
  std::vector<std::unique_ptr<pre_tokenizer>> steps;
  void apply(std::vector<piece>& pieces, piece_arena& arena) const override {
    for (auto& s : steps) s->apply(pieces, arena);
  }
  // Only the first step sees the whole text; every later step works on each piece alone, so it can run on the
  // pieces of one window.
  size_t apply_window(std::string_view text, size_t from, size_t end, bool at_start, std::vector<piece>& out,
                      piece_arena& arena) const override {
    if (steps.empty()) return npos;
    std::vector<piece> pieces;
    const size_t next = steps[0]->apply_window(text, from, end, at_start, pieces, arena);
    if (next == npos) return npos;
    for (size_t k = 1; k < steps.size(); ++k) steps[k]->apply(pieces, arena);
    out.insert(out.end(), pieces.begin(), pieces.end());
    return next;
  }
};

class split_pre_tokenizer : public pre_tokenizer {
 public:
  std::unique_ptr<regex> re;
  split_behavior behavior = split_behavior::isolated;
  bool invert = false;
  void apply(std::vector<piece>& pieces, piece_arena&) const override {
    std::vector<piece> out;
    out.reserve(pieces.size() * 4);
    for (auto& p : pieces) split_piece(p, *re, behavior, invert, out);
    pieces.swap(out);
  }
  size_t apply_window(std::string_view text, size_t from, size_t end, bool at_start, std::vector<piece>& out,
                      piece_arena&) const override {
    return split_window(text, from, end, at_start, *re, behavior, invert, out);
  }
};

// The GPT-2 pattern HF's ByteLevel uses when use_regex is true.
const char* gpt2_pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class byte_level_pre_tokenizer : public pre_tokenizer {
 public:
  bool add_prefix_space = false;
  std::unique_ptr<regex> re;  // when use_regex
  bool map_now = false;       // false: leave raw bytes for the BPE fast path
  void apply(std::vector<piece>& pieces, piece_arena& arena) const override {
    if (add_prefix_space)
      for (auto& p : pieces)
        if (p.text.empty() || p.text[0] != ' ') p.text = arena.emplace_back(" " + std::string(p.text));
    if (re) {
      std::vector<piece> out;
      out.reserve(pieces.size() * 4);
      for (auto& p : pieces) split_piece(p, *re, split_behavior::isolated, false, out);
      pieces.swap(out);
    }
    if (map_now)
      for (auto& p : pieces) p.text = arena.emplace_back(byte_level_map(p.text));
  }
  // Windows need the regex split; a prefix space would shift every offset, so that case runs on the whole text.
  size_t apply_window(std::string_view text, size_t from, size_t end, bool at_start, std::vector<piece>& out,
                      piece_arena& arena) const override {
    if (add_prefix_space || !re) return npos;
    const size_t first = out.size();
    const size_t next = split_window(text, from, end, at_start, *re, split_behavior::isolated, false, out);
    if (map_now)
      for (size_t k = first; k < out.size(); ++k) out[k].text = arena.emplace_back(byte_level_map(out[k].text));
    return next;
  }
};

class metaspace_pre_tokenizer : public pre_tokenizer {
 public:
  std::string replacement = "\xE2\x96\x81";
  enum { always, never, first } scheme = always;
  std::unique_ptr<regex> split_re;  // literal replacement, MergedWithNext, when split is on
  void apply(std::vector<piece>& pieces, piece_arena& arena) const override {
    for (auto& p : pieces) {
      std::string t;
      t.reserve(p.text.size() + 3);
      for (char c : p.text) {
        if (c == ' ') t += replacement;
        else t.push_back(c);
      }
      bool prepend = scheme == always || (scheme == first && p.at_start);
      if (prepend && t.compare(0, replacement.size(), replacement) != 0) t.insert(0, replacement);
      p.text = arena.emplace_back(std::move(t));
    }
    if (split_re) {
      std::vector<piece> out;
      for (auto& p : pieces) split_piece(p, *split_re, split_behavior::merged_with_next, false, out);
      pieces.swap(out);
    }
  }
};

split_behavior parse_behavior(const std::string& b, const std::string& where) {
  if (b == "Removed") return split_behavior::removed;
  if (b == "Isolated") return split_behavior::isolated;
  if (b == "MergedWithPrevious") return split_behavior::merged_with_previous;
  if (b == "MergedWithNext") return split_behavior::merged_with_next;
  if (b == "Contiguous") return split_behavior::contiguous;
  throw error(where + ".behavior: unknown split behavior \"" + b + "\"");
}

std::unique_ptr<pre_tokenizer> parse_one(const json& j, const std::string& where, bool is_last, bool& byte_level_last) {
  std::string t = type_of(j, where);
  if (t == "Sequence") {
    auto s = std::make_unique<seq_pre_tokenizer>();
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array())
      throw error(where + ".pretokenizers: expected an array");
    const json& arr = j["pretokenizers"];
    for (size_t i = 0; i < arr.size(); ++i)
      s->steps.push_back(parse_one(arr[i], where + ".pretokenizers[" + std::to_string(i) + "]",
                                   is_last && i + 1 == arr.size(), byte_level_last));
    return s;
  }
  if (t == "Split") {
    auto s = std::make_unique<split_pre_tokenizer>();
    if (!j.contains("pattern")) throw error(where + ".pattern: missing");
    s->re = parse_pattern(j["pattern"], where + ".pattern");
    s->behavior = parse_behavior(field<std::string>(j, "behavior", where, "Isolated"), where);
    s->invert = field<bool>(j, "invert", where, false);
    return s;
  }
  if (t == "ByteLevel") {
    auto s = std::make_unique<byte_level_pre_tokenizer>();
    s->add_prefix_space = field<bool>(j, "add_prefix_space", where, true);
    if (field<bool>(j, "use_regex", where, true)) s->re = std::make_unique<regex>(gpt2_pattern, false, where);
    s->map_now = !is_last;
    if (is_last) byte_level_last = true;
    return s;
  }
  if (t == "Metaspace") {
    auto s = std::make_unique<metaspace_pre_tokenizer>();
    s->replacement = field<std::string>(j, "replacement", where, "\xE2\x96\x81");
    if (s->replacement.empty()) throw error(where + ".replacement: empty");
    std::string scheme = field<std::string>(j, "prepend_scheme", where, "");
    if (scheme.empty()) scheme = field<bool>(j, "add_prefix_space", where, true) ? "always" : "never";
    if (scheme == "always") s->scheme = metaspace_pre_tokenizer::always;
    else if (scheme == "never") s->scheme = metaspace_pre_tokenizer::never;
    else if (scheme == "first") s->scheme = metaspace_pre_tokenizer::first;
    else throw error(where + ".prepend_scheme: unknown value \"" + scheme + "\"");
    if (field<bool>(j, "split", where, true)) s->split_re = std::make_unique<regex>(s->replacement, true, where);
    return s;
  }
  if (t == "Digits") {
    auto s = std::make_unique<split_pre_tokenizer>();
    bool individual = field<bool>(j, "individual_digits", where, false);
    s->re = std::make_unique<regex>(R"(\p{N})", false, where);
    s->behavior = individual ? split_behavior::isolated : split_behavior::contiguous;
    return s;
  }
  if (t == "Whitespace") {
    auto s = std::make_unique<split_pre_tokenizer>();
    s->re = std::make_unique<regex>(R"(\w+|[^\w\s]+)", false, where);
    s->behavior = split_behavior::removed;
    s->invert = true;
    return s;
  }
  if (t == "WhitespaceSplit") {
    auto s = std::make_unique<split_pre_tokenizer>();
    s->re = std::make_unique<regex>(R"(\s+)", false, where);
    s->behavior = split_behavior::removed;
    return s;
  }
  throw error(where + ": unsupported pre_tokenizer type \"" + t +
              "\" (supported: Sequence, Split, ByteLevel, Metaspace, Digits, Whitespace, WhitespaceSplit)");
}

}  // namespace

std::unique_ptr<pre_tokenizer> parse_pre_tokenizer(const json& j, const std::string& where, bool& byte_level_last) {
  byte_level_last = false;
  if (j.is_null()) return nullptr;
  return parse_one(j, where, true, byte_level_last);
}

}  // namespace autoglm::tok

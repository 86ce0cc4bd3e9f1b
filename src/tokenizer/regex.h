// regex.h: a compiled PCRE2 pattern (UTF + UCP, JIT when available) used by Split pre-tokenizers and Replace
// normalizers, with a find-all that mirrors the Oniguruma find_iter semantics HF tokenizers relies on.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace autoglm::tok {

class regex {
 public:
  // Throws autoglm::error (prefixed with `what`) when the pattern does not compile.
  regex(const std::string& pattern, bool literal, const std::string& what);
  ~regex();
  regex(const regex&) = delete;
  regex& operator=(const regex&) = delete;

  // All non-overlapping matches in s (valid UTF-8), as [begin, end) byte ranges, left to right. Empty matches are
  // skipped and the scan moves on by one code point.
  void find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const;

  // find_all over a window of a longer text, for encoding it piece by piece: the matches starting at or after
  // `from` in s[0, end) (lookbehind may see s before `from`; nothing at or past `end` is looked at). Returns c:
  // the matches before c are exactly those find_all(s) finds there, whatever follows `end`; past c, more text
  // could change the result (PCRE2's hard partial matching tells where). c == end when end == s.size().
  size_t find_window(std::string_view s, size_t from, size_t end, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8*
  std::string literal_;   // for String patterns: plain substring search
  bool is_literal_ = false;
};

}  // namespace autoglm::tok

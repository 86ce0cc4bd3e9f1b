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

 private:
  void* code_ = nullptr;  // pcre2_code_8*
  std::string literal_;   // for String patterns: plain substring search
  bool is_literal_ = false;
};

}  // namespace autoglm::tok

// regex.cpp: PCRE2 wrapper for tokenizer patterns.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include <algorithm>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace autoglm::tok {

namespace {
// Per-thread match data, grown on demand: encode() may run on several threads at once.
struct match_data_holder {
  pcre2_match_data* md = nullptr;
  pcre2_jit_stack* stack = nullptr;
  pcre2_match_context* ctx = nullptr;
  match_data_holder() {
    md = pcre2_match_data_create(32, nullptr);
    stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    ctx = pcre2_match_context_create(nullptr);
    pcre2_jit_stack_assign(ctx, nullptr, stack);
  }
  ~match_data_holder() {
    pcre2_match_data_free(md);
    pcre2_match_context_free(ctx);
    pcre2_jit_stack_free(stack);
  }
};
match_data_holder& holder() {
  thread_local match_data_holder h;
  return h;
}
}  // namespace

regex::regex(const std::string& pattern, bool literal, const std::string& what) {
  if (literal) {
    if (pattern.empty()) throw error(what + ": empty split pattern");
    literal_ = pattern;
    is_literal_ = true;
    return;
  }
  int err = 0;
  PCRE2_SIZE off = 0;
  auto* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                             PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &off, nullptr);
  if (!code) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof buf);
    throw error(what + ": regex does not compile at offset " + std::to_string(off) + ": " +
                reinterpret_cast<const char*>(buf) + " (pattern " + pattern + ")");
  }
  // Best effort: the interpreter is used if JIT is unavailable. Partial-hard code serves find_window.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD);
  code_ = code;
}

regex::~regex() {
  if (code_) pcre2_code_free(static_cast<pcre2_code*>(code_));
}

void regex::find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const {
  out.clear();
  if (is_literal_) {
    size_t pos = 0;
    while ((pos = s.find(literal_, pos)) != std::string_view::npos) {
      out.emplace_back(pos, pos + literal_.size());
      pos += literal_.size();
    }
    return;
  }
  auto& h = holder();
  auto* code = static_cast<pcre2_code*>(code_);
  size_t pos = 0;
  while (pos <= s.size()) {
    int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), pos, PCRE2_NO_UTF_CHECK, h.md,
                         h.ctx);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR buf[256];
      pcre2_get_error_message(rc, buf, sizeof buf);
      throw error(std::string("tokenizer regex match failed: ") + reinterpret_cast<const char*>(buf));
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(h.md);
    size_t b = ov[0], e = ov[1];
    if (e > b) {
      out.emplace_back(b, e);
      pos = e;
    } else {
      if (b >= s.size()) break;
      pos = b + utf8::seq_len(static_cast<unsigned char>(s[b]));
    }
  }
}

size_t regex::find_window(std::string_view s, size_t from, size_t end,
                          std::vector<std::pair<size_t, size_t>>& out) const {
  out.clear();
  const bool final = end == s.size();
  if (is_literal_) {
    const std::string_view w = s.substr(0, end);
    size_t pos = from;
    while ((pos = w.find(literal_, pos)) != std::string_view::npos) {
      out.emplace_back(pos, pos + literal_.size());
      pos += literal_.size();
    }
    if (final) return end;
    // An occurrence starting in the last literal.size() - 1 bytes could end past the window.
    const size_t last_end = out.empty() ? from : out.back().second;
    const size_t tail = literal_.size() - 1;
    return std::max(last_end, end > tail ? end - tail : 0);
  }
  auto& h = holder();
  auto* code = static_cast<pcre2_code*>(code_);
  // PARTIAL_HARD: a match attempt that reaches the end of the window (including a lookahead such as (?!\S), or a
  // greedy run that could go on) reports a partial match instead of a complete or failed one.
  const uint32_t options = PCRE2_NO_UTF_CHECK | (final ? 0u : PCRE2_PARTIAL_HARD);
  size_t pos = from;
  while (pos <= end) {
    int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(s.data()), end, pos, options, h.md, h.ctx);
    if (rc == PCRE2_ERROR_NOMATCH) return end;
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(h.md);
    if (rc == PCRE2_ERROR_PARTIAL) {  // ov[0]: where the unfinished match starts
      const size_t last_end = out.empty() ? from : out.back().second;
      return std::max<size_t>(last_end, std::min<size_t>(ov[0], end));
    }
    if (rc < 0) {
      PCRE2_UCHAR buf[256];
      pcre2_get_error_message(rc, buf, sizeof buf);
      throw error(std::string("tokenizer regex match failed: ") + reinterpret_cast<const char*>(buf));
    }
    size_t b = ov[0], e = ov[1];
    if (e > b) {
      out.emplace_back(b, e);
      pos = e;
    } else {
      if (b >= end) return end;
      pos = b + utf8::seq_len(static_cast<unsigned char>(s[b]));
    }
  }
  return end;
}

}  // namespace autoglm::tok

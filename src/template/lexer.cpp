// template/lexer.cpp: the template tokenizer. Data text is scanned for "{{", "{%", "{#"; inside a tag the
// expression tokens are produced until the matching close delimiter at bracket depth 0.
#include "template/lexer.h"

#include <cctype>

#include "core/error.h"

namespace autoglm::jinja {

namespace {

[[noreturn]] void fail(int line, const std::string& msg) {
  throw autoglm::error("chat template line " + std::to_string(line) + ": " + msg);
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

class lexer {
 public:
  lexer(const std::string& src, const lex_options& o) : src_(src), opts_(o) {
    if (src_.size() >= 2 && src_.compare(src_.size() - 2, 2, "\r\n") == 0) src_.resize(src_.size() - 2);
    else if (!src_.empty() && src_.back() == '\n') src_.pop_back();
  }

  std::vector<token> run() {
    std::string pending;
    int pending_line = 1;
    while (pos_ < src_.size()) {
      size_t open = find_tag(pos_);
      if (open == std::string::npos) {
        append_text(pending, pending_line, src_.substr(pos_));
        pos_ = src_.size();
        break;
      }
      append_text(pending, pending_line, src_.substr(pos_, open - pos_));
      char kind = src_[open + 1];
      size_t p = open + 2;
      char modifier = p < src_.size() ? src_[p] : '\0';
      bool block_like = kind == '%' || kind == '#';
      if (modifier == '-') {
        size_t keep = pending.size();
        while (keep > 0 && is_space(pending[keep - 1])) --keep;
        pending.resize(keep);
        ++p;
      } else if (modifier == '+' && block_like) {
        ++p;
      } else if (block_like && opts_.lstrip_blocks) {
        lstrip(pending, open);
      }
      count_lines(pos_, open);
      flush(pending, pending_line);
      pos_ = p;
      if (kind == '#') {
        lex_comment();
      } else if (kind == '%' && is_raw_block()) {
        lex_raw(pending, pending_line);
      } else {
        lex_tag(kind);
      }
      pending_line = line_;
    }
    flush(pending, pending_line);
    out_.push_back({tok::eof, "", line_});
    return std::move(out_);
  }

 private:
  size_t find_tag(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i)
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    return std::string::npos;
  }

  void append_text(std::string& pending, int& pending_line, const std::string& s) {
    if (pending.empty()) pending_line = line_;
    pending += s;
  }

  void count_lines(size_t from, size_t to) {
    for (size_t i = from; i < to && i < src_.size(); ++i)
      if (src_[i] == '\n') ++line_;
  }

  // lstrip_blocks: drop spaces/tabs before a block or comment tag when only they separate it from a line start.
  void lstrip(std::string& pending, size_t tag_pos) const {
    size_t i = tag_pos;
    while (i > 0 && (src_[i - 1] == ' ' || src_[i - 1] == '\t')) --i;
    if (i != 0 && src_[i - 1] != '\n') return;
    size_t n = tag_pos - i;
    if (n <= pending.size()) pending.resize(pending.size() - n);
  }

  void flush(std::string& pending, int pending_line) {
    if (!pending.empty()) out_.push_back({tok::text, pending, pending_line});
    pending.clear();
  }

  // After a tag: "-" skips all following whitespace; trim_blocks drops one newline after blocks/comments.
  void after_tag(bool strip, bool block_like) {
    if (strip) {
      size_t start = pos_;
      while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
      count_lines(start, pos_);
    } else if (block_like && opts_.trim_blocks) {
      if (pos_ < src_.size() && src_[pos_] == '\n') {
        ++pos_;
        ++line_;
      } else if (pos_ + 1 < src_.size() && src_[pos_] == '\r' && src_[pos_ + 1] == '\n') {
        pos_ += 2;
        ++line_;
      }
    }
  }

  void lex_comment() {
    size_t end = src_.find("#}", pos_);
    if (end == std::string::npos) fail(line_, "unterminated comment '{#'");
    bool strip = end > pos_ && src_[end - 1] == '-';
    count_lines(pos_, end);
    pos_ = end + 2;
    after_tag(strip, true);
  }

  bool is_raw_block() const {
    size_t p = pos_;
    while (p < src_.size() && is_space(src_[p])) ++p;
    if (src_.compare(p, 3, "raw") != 0) return false;
    p += 3;
    while (p < src_.size() && is_space(src_[p])) ++p;
    return src_.compare(p, 2, "%}") == 0 || src_.compare(p, 3, "-%}") == 0;
  }

  void lex_raw(std::string& pending, int& pending_line) {
    size_t close = src_.find("%}", pos_);
    bool strip_after_open = src_[close - 1] == '-';
    pos_ = close + 2;
    after_tag(strip_after_open, true);
    // Find "{% endraw %}" (with optional modifiers).
    for (size_t i = src_.find("{%", pos_); i != std::string::npos; i = src_.find("{%", i + 2)) {
      size_t p = i + 2;
      bool strip_before = p < src_.size() && src_[p] == '-';
      if (strip_before || (p < src_.size() && src_[p] == '+')) ++p;
      while (p < src_.size() && is_space(src_[p])) ++p;
      if (src_.compare(p, 6, "endraw") != 0) continue;
      p += 6;
      while (p < src_.size() && is_space(src_[p])) ++p;
      bool strip_after = src_.compare(p, 3, "-%}") == 0;
      if (!strip_after && src_.compare(p, 2, "%}") != 0) continue;
      std::string body = src_.substr(pos_, i - pos_);
      if (strip_before) {
        while (!body.empty() && is_space(body.back())) body.pop_back();
      } else if (opts_.lstrip_blocks) {
        size_t k = body.size();
        while (k > 0 && (body[k - 1] == ' ' || body[k - 1] == '\t')) --k;
        if ((k == 0 && pos_ > 0 && src_[pos_ - 1] == '\n') || (k > 0 && body[k - 1] == '\n')) body.resize(k);
      }
      append_text(pending, pending_line, body);
      count_lines(pos_, p);
      pos_ = p + (strip_after ? 3 : 2);
      after_tag(strip_after, true);
      return;
    }
    fail(line_, "'{% raw %}' without '{% endraw %}'");
  }

  void lex_tag(char kind) {
    const bool block = kind == '%';
    out_.push_back({block ? tok::block_begin : tok::var_begin, "", line_});
    int depth = 0;
    while (true) {
      while (pos_ < src_.size() && is_space(src_[pos_])) {
        if (src_[pos_] == '\n') ++line_;
        ++pos_;
      }
      if (pos_ >= src_.size()) fail(line_, std::string("unterminated '") + (block ? "{%" : "{{") + "' tag");
      const char close0 = block ? '%' : '}';
      if (depth == 0) {
        bool dash = src_[pos_] == '-' && pos_ + 2 < src_.size() && src_[pos_ + 1] == close0 && src_[pos_ + 2] == '}';
        bool plain = src_[pos_] == close0 && pos_ + 1 < src_.size() && src_[pos_ + 1] == '}';
        if (dash || plain) {
          pos_ += dash ? 3 : 2;
          out_.push_back({block ? tok::block_end : tok::var_end, "", line_});
          after_tag(dash, block);
          return;
        }
      }
      char c = src_[pos_];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t s = pos_;
        while (pos_ < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_')) ++pos_;
        out_.push_back({tok::name, src_.substr(s, pos_ - s), line_});
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        lex_number();
      } else if (c == '\'' || c == '"') {
        lex_string(c);
      } else {
        static const char* ops3[] = {"**", "//", "==", "!=", "<=", ">="};
        std::string op(1, c);
        for (const char* o : ops3)
          if (src_.compare(pos_, 2, o) == 0) op = o;
        if (op.size() == 1 && std::string("+-*/%~<>=()[]{}.,:|!").find(c) == std::string::npos)
          fail(line_, std::string("unexpected character '") + c + "' in tag");
        if (op == "!") fail(line_, "unexpected character '!' in tag");
        if (op == "(" || op == "[" || op == "{") ++depth;
        if (op == ")" || op == "]" || op == "}") --depth;
        pos_ += op.size();
        out_.push_back({tok::op, op, line_});
      }
    }
  }

  void lex_number() {
    size_t s = pos_;
    bool is_float = false;
    while (pos_ < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_')) ++pos_;
    // A fraction needs a digit after the dot (so "x.0.1" style attribute chains are not swallowed).
    if (pos_ + 1 < src_.size() && src_[pos_] == '.' && std::isdigit(static_cast<unsigned char>(src_[pos_ + 1])) &&
        !(out_.size() && out_.back().type == tok::op && out_.back().text == ".")) {
      is_float = true;
      ++pos_;
      while (pos_ < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_')) ++pos_;
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t p = pos_ + 1;
      if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) ++p;
      if (p < src_.size() && std::isdigit(static_cast<unsigned char>(src_[p]))) {
        is_float = true;
        pos_ = p;
        while (pos_ < src_.size() && std::isdigit(static_cast<unsigned char>(src_[pos_]))) ++pos_;
      }
    }
    std::string text;
    for (size_t i = s; i < pos_; ++i)
      if (src_[i] != '_') text += src_[i];
    out_.push_back({is_float ? tok::floating : tok::integer, text, line_});
  }

  static void put_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  // Python string literal escapes (jinja2 decodes string literals like Python).
  void lex_string(char quote) {
    int start_line = line_;
    ++pos_;
    std::string s;
    while (true) {
      if (pos_ >= src_.size()) fail(start_line, "unterminated string literal");
      char c = src_[pos_++];
      if (c == quote) break;
      if (c == '\n') ++line_;
      if (c != '\\') {
        s += c;
        continue;
      }
      if (pos_ >= src_.size()) fail(start_line, "unterminated string literal");
      char e = src_[pos_++];
      switch (e) {
        case 'n': s += '\n'; break;
        case 't': s += '\t'; break;
        case 'r': s += '\r'; break;
        case 'b': s += '\b'; break;
        case 'f': s += '\f'; break;
        case 'v': s += '\v'; break;
        case '0': s += '\0'; break;
        case '\\': s += '\\'; break;
        case '\'': s += '\''; break;
        case '"': s += '"'; break;
        case '\n': ++line_; break;
        case 'x':
        case 'u':
        case 'U': {
          size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (pos_ + n > src_.size()) fail(start_line, "truncated \\" + std::string(1, e) + " escape");
          uint32_t cp = 0;
          for (size_t k = 0; k < n; ++k) {
            char h = src_[pos_ + k];
            if (!std::isxdigit(static_cast<unsigned char>(h))) fail(start_line, "invalid \\" + std::string(1, e) + " escape");
            cp = cp * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(static_cast<unsigned char>(h)) - 'a' + 10));
          }
          if (cp > 0x10ffff) fail(start_line, "\\U escape beyond U+10FFFF");
          pos_ += n;
          put_utf8(s, cp);
          break;
        }
        default:
          s += '\\';
          s += e;
      }
    }
    out_.push_back({tok::string, s, start_line});
  }

  std::string src_;
  lex_options opts_;
  size_t pos_ = 0;
  int line_ = 1;
  std::vector<token> out_;
};

}  // namespace

std::vector<token> lex(const std::string& source, const lex_options& opts) { return lexer(source, opts).run(); }

}  // namespace autoglm::jinja

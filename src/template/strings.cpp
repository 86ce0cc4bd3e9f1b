// template/strings.cpp: Python str operations for the filters and str methods (see strings.h).
#include "template/strings.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>

#include "core/error.h"

namespace autoglm::jinja {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string strip_chars(const std::string& s, const std::string* chars, bool left, bool right, budget& b) {
  // A byte table: testing each byte against a long `chars` string would cost |s| * |chars|.
  std::array<bool, 256> drop{};
  if (chars) {
    b.scan(chars->size());
    for (unsigned char c : *chars) drop[c] = true;
  } else {
    for (int c = 0; c < 256; ++c) drop[static_cast<size_t>(c)] = is_ws(static_cast<char>(c));
  }
  auto dropped = [&](char c) { return drop[static_cast<unsigned char>(c)]; };
  size_t first = 0, last = s.size();
  if (left)
    while (first < last && dropped(s[first])) ++first;
  if (right)
    while (last > first && dropped(s[last - 1])) --last;
  b.scan(s.size());
  return s.substr(first, last - first);
}

std::string ascii_upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string ascii_lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string title_case(std::string s) {
  bool prev_letter = false;
  for (auto& c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalpha(u)) {
      c = static_cast<char>(prev_letter ? std::tolower(u) : std::toupper(u));
      prev_letter = true;
    } else {
      prev_letter = u >= 0x80 && prev_letter;
    }
  }
  return s;
}

std::string capitalize(std::string s) {
  s = ascii_lower(std::move(s));
  if (!s.empty()) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  return s;
}

std::string html_escape(const std::string& s, budget& b) {
  b.scan(s.size());
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  b.check_string(out.size());  // at most 5x the input, which is itself a bounded string
  return out;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count, budget& b) {
  b.scan(s.size() + from.size());
  std::string out;
  if (from.empty()) {
    // Python inserts `to` before every character and at the end: size it before building.
    uint64_t slots = utf8_length(s) + 1;
    uint64_t inserts = count < 0 ? slots : std::min<uint64_t>(slots, static_cast<uint64_t>(count));
    b.check_string(to.empty() ? s.size() : (inserts > SIZE_MAX / 2 / to.size() ? SIZE_MAX : s.size() + inserts * to.size()));
    uint64_t n = 0;
    for (size_t i = 0;; i = utf8_next(s, i)) {
      if (n < inserts) {
        out += to;
        ++n;
      }
      if (i >= s.size()) break;
      out.append(s, i, utf8_next(s, i) - i);
    }
    return out;
  }
  substring_finder finder(from);
  size_t pos = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    size_t f = finder.find(s, pos);
    if (f == std::string::npos) break;
    out.append(s, pos, f - pos);
    out += to;
    b.check_string(out.size());  // "a" * 10**6 with every "a" replaced by a long string grows as it goes
    pos = f + from.size();
    ++n;
  }
  out.append(s, pos, std::string::npos);
  b.check_string(out.size());
  return out;
}

std::vector<value> split(const std::string& s, const std::string* sep, int64_t maxsplit, budget& b) {
  b.scan(s.size());
  std::vector<value> out;
  auto push = [&](std::string part) {
    b.check_items(out.size() + 1);
    out.push_back(value::string(std::move(part)));
  };
  if (!sep) {
    size_t i = 0;
    while (true) {
      while (i < s.size() && is_ws(s[i])) ++i;
      if (i >= s.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        size_t e = s.size();
        while (e > i && is_ws(s[e - 1])) --e;
        push(s.substr(i, e - i));
        break;
      }
      size_t j = i;
      while (j < s.size() && !is_ws(s[j])) ++j;
      push(s.substr(i, j - i));
      i = j;
    }
    return out;
  }
  if (sep->empty()) b.fail("split() separator is empty");
  substring_finder finder(*sep);
  size_t pos = 0;
  while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
    size_t f = finder.find(s, pos);
    if (f == std::string::npos) break;
    push(s.substr(pos, f - pos));
    pos = f + sep->size();
  }
  push(s.substr(pos));
  return out;
}

std::vector<value> split_lines(const std::string& s, budget& b) {
  b.scan(s.size());
  std::vector<value> out;
  size_t pos = 0;
  while (pos < s.size()) {
    // Lines end at "\n" or "\r\n" (a lone "\r" stays in its line).
    size_t nl = s.find('\n', pos);
    if (nl == std::string::npos) nl = s.size();
    size_t end = (nl > pos && nl < s.size() && s[nl - 1] == '\r') ? nl - 1 : nl;
    b.check_items(out.size() + 1);
    out.push_back(value::string(s.substr(pos, end - pos)));
    pos = nl + 1;
  }
  return out;
}

std::string reverse_chars(const std::string& s, budget& b) {
  b.scan(s.size());
  std::vector<size_t> starts;
  for (size_t i = 0; i < s.size(); i = utf8_next(s, i)) starts.push_back(i);
  std::string out;
  out.reserve(s.size());
  for (auto it = starts.rbegin(); it != starts.rend(); ++it) out.append(s, *it, utf8_next(s, *it) - *it);
  return out;
}

std::string indent_lines(const std::string& s, const std::string& pad, bool first, bool blank, budget& b) {
  b.scan(s.size());
  std::string text = s + "\n";
  std::vector<std::pair<size_t, size_t>> lines;  // [begin, end) of each line, line breaks excluded
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find_first_of("\r\n", pos);
    if (nl == std::string::npos) {
      lines.emplace_back(pos, text.size());
      break;
    }
    lines.emplace_back(pos, nl);
    pos = nl + ((text[nl] == '\r' && nl + 1 < text.size() && text[nl + 1] == '\n') ? 2 : 1);
  }
  // Every line may get the pad: size the result before building it (indent(10**9) must fail, not allocate).
  uint64_t n_pads = lines.size() + 1;
  b.check_string(pad.empty() ? text.size() : (n_pads > SIZE_MAX / 2 / pad.size() ? SIZE_MAX : text.size() + n_pads * pad.size()));
  std::string out;
  if (first) out += pad;
  for (size_t i = 0; i < lines.size(); ++i) {
    bool empty = lines[i].first == lines[i].second;
    if (i > 0) {
      out += '\n';
      if (blank || !empty) out += pad;
    }
    out.append(text, lines[i].first, lines[i].second - lines[i].first);
  }
  return out;
}

std::string printf_format(const std::string& fmt, const std::vector<value>& args, budget& b) {
  b.scan(fmt.size());
  std::string out;
  size_t next = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) b.fail("format: incomplete format string");
    char c = fmt[i];
    if (c == '%') {
      out += '%';
      continue;
    }
    if (next >= args.size()) b.fail("format: not enough arguments");
    const value& a = args[next++];
    if (c == 's') out += a.str(b);
    else if (c == 'r') out += a.repr(b);
    else if (c == 'd' || c == 'i') out += std::to_string(to_int(a, 0));
    else b.fail(std::string("format: unsupported conversion '%") + c + "'");
    b.check_string(out.size());
  }
  b.check_string(out.size());
  return out;
}

std::string str_format(const std::string& fmt, const call_args& args, budget& b) {
  b.scan(fmt.size());
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if (c == '{' && i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
    } else if (c == '}' && i + 1 < fmt.size() && fmt[i + 1] == '}') {
      out += '}';
      ++i;
    } else if (c == '{') {
      size_t close = fmt.find('}', i);
      if (close == std::string::npos) b.fail("format(): unmatched '{'");
      std::string field = fmt.substr(i + 1, close - i - 1);
      if (field.find_first_of(":!.[") != std::string::npos) b.fail("unsupported: format spec '{" + field + "}'");
      const value* v = nullptr;
      if (field.empty()) {
        v = auto_index < args.positional.size() ? &args.positional[auto_index++] : nullptr;
      } else if (std::isdigit(static_cast<unsigned char>(field[0]))) {
        size_t k = 0;
        auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), k);
        if (ec == std::errc() && end == field.data() + field.size() && k < args.positional.size()) v = &args.positional[k];
      } else {
        v = args.kw(field);
      }
      if (!v) b.fail("format(): missing argument for '{" + field + "}'");
      out += v->str(b);
      b.check_string(out.size());
      i = close;
    } else {
      out += c;
    }
  }
  return out;
}

// A double that converts to int64 without undefined behaviour (NaN and out-of-range values do not).
static bool fits_int64(double d) { return d >= -9223372036854775808.0 && d < 9223372036854775808.0; }

int64_t to_int(const value& v, int64_t dflt) {
  switch (v.type()) {
    case kind::integer: return v.as_int();
    case kind::boolean: return v.as_bool();
    case kind::floating: return fits_int64(v.as_double()) ? static_cast<int64_t>(v.as_double()) : dflt;
    case kind::string: {
      const std::string& s = v.as_string();
      size_t first = 0, last = s.size();
      while (first < last && is_ws(s[first])) ++first;
      while (last > first && is_ws(s[last - 1])) --last;
      std::string t = s.substr(first, last - first);
      try {
        size_t used = 0;
        int64_t i = std::stoll(t, &used);
        if (used == t.size()) return i;
        double d = std::stod(t, &used);
        if (used == t.size() && fits_int64(d)) return static_cast<int64_t>(d);
      } catch (const std::exception&) {
      }
      return dflt;
    }
    default: return dflt;
  }
}

double to_float(const value& v, double dflt) {
  switch (v.type()) {
    case kind::integer:
    case kind::floating: return v.as_double();
    case kind::boolean: return v.as_bool();
    case kind::string: {
      const std::string& s = v.as_string();
      size_t first = 0, last = s.size();
      while (first < last && is_ws(s[first])) ++first;
      while (last > first && is_ws(s[last - 1])) --last;
      std::string t = s.substr(first, last - first);
      try {
        size_t used = 0;
        double d = std::stod(t, &used);
        if (used == t.size()) return d;
      } catch (const std::exception&) {
      }
      return dflt;
    }
    default: return dflt;
  }
}

}  // namespace autoglm::jinja

// jinja/builtins.cpp: filters, tests, str/dict methods and globals (range, namespace, dict, raise_exception,
// strftime_now) of the Jinja subset, following jinja2 3.x and HF transformers' tojson.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <ctime>
#include <set>

#include "core/error.h"
#include "tokenizer/jinja/interpreter.h"
#include "tokenizer/jinja/parser.h"

namespace autoglm::jinja {

namespace {

const std::set<std::string>& filter_names() {
  static const std::set<std::string> names = {
      "abs",   "attr",  "capitalize", "count",  "d",       "default", "dictsort", "e",      "escape", "first",
      "float", "format", "indent",    "int",    "items",   "join",    "last",     "length", "list",   "lower",
      "map",   "max",   "min",        "reject", "rejectattr", "replace", "reverse", "round", "safe",  "select",
      "selectattr", "sort", "string", "sum",    "title",   "tojson",  "trim",     "unique", "upper",  "wordcount"};
  return names;
}

const std::set<std::string>& test_names() {
  static const std::set<std::string> names = {
      "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped", "even", "false", "float", "ge",
      "gt", "in", "integer", "iterable", "le", "lower", "lt", "mapping", "ne", "none", "number", "odd", "sameas",
      "sequence", "string", "true", "undefined", "upper", "==", "!=", "<", "<=", ">", ">="};
  return names;
}

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string strip_chars(const std::string& s, const value* chars, bool left, bool right) {
  auto drop = [&](char c) {
    if (!chars || chars->is_none() || chars->is_undefined()) return is_ws(c);
    return chars->as_string().find(c) != std::string::npos;
  };
  size_t b = 0, e = s.size();
  if (left)
    while (b < e && drop(s[b])) ++b;
  if (right)
    while (e > b && drop(s[e - 1])) --e;
  return s.substr(b, e - b);
}

std::string ascii_upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string ascii_lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Python str.title(): upper-case a letter following a non-letter, lower-case the others (ASCII letters).
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

std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  std::string out;
  if (from.empty()) {
    // Python inserts `to` between every character (and at both ends).
    auto chars = utf8_chars(s);
    int64_t n = 0;
    for (size_t i = 0; i <= chars.size(); ++i) {
      if (count < 0 || n < count) {
        out += to;
        ++n;
      }
      if (i < chars.size()) out += chars[i];
    }
    return out;
  }
  size_t pos = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    size_t f = s.find(from, pos);
    if (f == std::string::npos) break;
    out.append(s, pos, f - pos);
    out += to;
    pos = f + from.size();
    ++n;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

std::vector<value> split(const std::string& s, const value* sep, int64_t maxsplit) {
  std::vector<value> out;
  if (!sep || sep->is_none() || sep->is_undefined()) {
    size_t i = 0;
    while (true) {
      while (i < s.size() && is_ws(s[i])) ++i;
      if (i >= s.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        size_t e = s.size();
        while (e > i && is_ws(s[e - 1])) --e;
        out.push_back(value::string(s.substr(i, e - i)));
        break;
      }
      size_t j = i;
      while (j < s.size() && !is_ws(s[j])) ++j;
      out.push_back(value::string(s.substr(i, j - i)));
      i = j;
    }
    return out;
  }
  const std::string& d = sep->as_string();
  if (d.empty()) throw autoglm::error("chat template: split() separator is empty");
  size_t pos = 0;
  while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
    size_t f = s.find(d, pos);
    if (f == std::string::npos) break;
    out.push_back(value::string(s.substr(pos, f - pos)));
    pos = f + d.size();
  }
  out.push_back(value::string(s.substr(pos)));
  return out;
}

int64_t to_int(const value& v, int64_t dflt) {
  switch (v.type()) {
    case kind::integer: return v.as_int();
    case kind::boolean: return v.as_bool();
    case kind::floating: return static_cast<int64_t>(v.as_double());
    case kind::string: {
      std::string t = strip_chars(v.as_string(), nullptr, true, true);
      try {
        size_t used = 0;
        int64_t i = std::stoll(t, &used);
        if (used == t.size()) return i;
        double d = std::stod(t, &used);
        if (used == t.size()) return static_cast<int64_t>(d);
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
    case kind::string:
      try {
        size_t used = 0;
        std::string t = strip_chars(v.as_string(), nullptr, true, true);
        double d = std::stod(t, &used);
        if (used == t.size()) return d;
      } catch (const std::exception&) {
      }
      return dflt;
    default: return dflt;
  }
}

// Dotted attribute lookup used by map/sort/selectattr/... ("function.name", or "0" for an index).
value get_attribute_path(interpreter& in, const value& v, const std::string& path, int line) {
  value cur = v;
  size_t pos = 0;
  while (true) {
    size_t dot = path.find('.', pos);
    std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
    if (cur.is_dict()) {
      const value* f = cur.as_dict().find(part);
      cur = f ? *f : value();
    } else if (cur.is_list() && numeric) {
      size_t i = std::stoul(part);
      cur = i < cur.as_list().size() ? cur.as_list()[i] : value();
    } else {
      cur = value();
    }
    if (dot == std::string::npos) return cur;
    pos = dot + 1;
  }
  (void)in;
  (void)line;
}

std::string html_escape(const std::string& s) {
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
  return out;
}

// Minimal printf-style formatting for the `format` filter: %s, %d, %i, %r, %%.
std::string printf_format(const std::string& fmt, const std::vector<value>& args, int line) {
  std::string out;
  size_t next = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) interpreter::fail(line, "format: incomplete format string");
    char c = fmt[i];
    if (c == '%') {
      out += '%';
      continue;
    }
    if (next >= args.size()) interpreter::fail(line, "format: not enough arguments");
    const value& a = args[next++];
    if (c == 's') out += a.str();
    else if (c == 'r') out += a.repr();
    else if (c == 'd' || c == 'i') out += std::to_string(to_int(a, 0));
    else interpreter::fail(line, std::string("format: unsupported conversion '%") + c + "'");
  }
  return out;
}

// Python str.format with "{}" / "{0}" / "{name}" fields (no format specs).
std::string str_format(const std::string& fmt, const call_args& args, int line) {
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
      if (close == std::string::npos) interpreter::fail(line, "format(): unmatched '{'");
      std::string field = fmt.substr(i + 1, close - i - 1);
      if (field.find_first_of(":!.[") != std::string::npos) interpreter::fail(line, "unsupported: format spec '{" + field + "}'");
      const value* v = nullptr;
      if (field.empty()) {
        v = auto_index < args.positional.size() ? &args.positional[auto_index++] : nullptr;
      } else if (std::isdigit(static_cast<unsigned char>(field[0]))) {
        size_t k = std::stoul(field);
        v = k < args.positional.size() ? &args.positional[k] : nullptr;
      } else {
        v = args.kw(field);
      }
      if (!v) interpreter::fail(line, "format(): missing argument for '{" + field + "}'");
      out += v->str();
      i = close;
    } else {
      out += c;
    }
  }
  return out;
}

int sort_compare(const value& a, const value& b, bool case_sensitive, int line) {
  if (!case_sensitive && a.is_string() && b.is_string()) return compare_values(value::string(ascii_lower(a.as_string())), value::string(ascii_lower(b.as_string())));
  try {
    return compare_values(a, b);
  } catch (const autoglm::error&) {
    interpreter::fail(line, "sort: cannot compare " + a.type_name() + " and " + b.type_name());
  }
}

value kw_or(const call_args& a, size_t pos, const std::string& name, value dflt) {
  const value* v = a.get(pos, name);
  return v ? *v : dflt;
}

}  // namespace

bool is_known_filter(const std::string& name) { return filter_names().count(name) > 0; }
bool is_known_test(const std::string& name) { return test_names().count(name) > 0; }

bool interpreter::apply_test(const std::string& name, const value& v, const call_args& args, int line) {
  auto arg = [&]() -> const value& {
    if (args.positional.empty()) fail(line, "test '" + name + "' needs an argument");
    return args.positional[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number() || v.type() == kind::boolean;
  if (name == "integer") return v.type() == kind::integer;
  if (name == "float") return v.type() == kind::floating;
  if (name == "boolean") return v.type() == kind::boolean;
  if (name == "true") return v.type() == kind::boolean && v.as_bool();
  if (name == "false") return v.type() == kind::boolean && !v.as_bool();
  if (name == "mapping") return v.is_dict() && !v.is_namespace();
  if (name == "sequence") return v.is_string() || v.is_list() || (v.is_dict() && !v.is_namespace());
  if (name == "iterable") return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
  if (name == "callable") return v.is_callable();
  if (name == "escaped") return false;
  if (name == "lower") return v.is_string() && ascii_lower(v.as_string()) == v.as_string();
  if (name == "upper") return v.is_string() && ascii_upper(v.as_string()) == v.as_string();
  if (name == "even" || name == "odd" || name == "divisibleby") {
    if (v.type() != kind::integer) fail(line, "test '" + name + "' needs an integer, got " + v.type_name());
    int64_t d = name == "divisibleby" ? to_int(arg(), 1) : 2;
    if (d == 0) fail(line, "divisibleby 0");
    bool divisible = v.as_int() % d == 0;
    return name == "odd" ? !divisible : divisible;
  }
  if (name == "eq" || name == "equalto" || name == "==") return values_equal(v, arg());
  if (name == "ne" || name == "!=") return !values_equal(v, arg());
  if (name == "sameas") {
    const value& o = arg();
    if (v.type() != o.type()) return false;
    if (v.is_none() || v.is_undefined()) return true;
    if (v.type() == kind::boolean) return v.as_bool() == o.as_bool();
    if (v.is_list()) return &v.as_list() == &o.as_list();
    if (v.is_dict()) return &v.as_dict() == &o.as_dict();
    return values_equal(v, o);
  }
  if (name == "in") {
    const value& c = arg();
    if (c.is_string()) return v.is_string() && c.as_string().find(v.as_string()) != std::string::npos;
    if (c.is_list()) return std::any_of(c.as_list().begin(), c.as_list().end(), [&](const value& x) { return values_equal(x, v); });
    if (c.is_dict()) return v.is_string() && c.as_dict().find(v.as_string());
    return false;
  }
  int c = 0;
  try {
    c = compare_values(v, arg());
  } catch (const autoglm::error&) {
    fail(line, "test '" + name + "': cannot compare " + v.type_name() + " and " + arg().type_name());
  }
  if (name == "lt" || name == "<") return c < 0;
  if (name == "le" || name == "<=") return c <= 0;
  if (name == "gt" || name == ">") return c > 0;
  if (name == "ge" || name == ">=") return c >= 0;
  fail(line, "unsupported test '" + name + "'");
}

value interpreter::apply_filter(const std::string& name, const value& v, const call_args& a, int line, const scope_ptr& s) {
  auto need_string = [&]() -> std::string {
    if (v.is_undefined()) return "";
    return v.str();
  };
  if (name == "default" || name == "d") {
    value dflt = kw_or(a, 0, "default_value", value::string(""));
    bool boolean = kw_or(a, 1, "boolean", value::boolean(false)).truthy();
    if (v.is_undefined() || (boolean && !v.truthy())) return dflt;
    return v;
  }
  if (name == "length" || name == "count") return value::integer(static_cast<int64_t>(length_of(v, line)));
  if (name == "safe") return v;
  if (name == "string") return value::string(v.str());
  if (name == "trim") return value::string(strip_chars(need_string(), a.get(0, "chars"), true, true));
  if (name == "upper") return value::string(ascii_upper(need_string()));
  if (name == "lower") return value::string(ascii_lower(need_string()));
  if (name == "title") return value::string(title_case(need_string()));
  if (name == "capitalize") return value::string(capitalize(need_string()));
  if (name == "e" || name == "escape") return value::string(html_escape(need_string()));
  if (name == "wordcount") {
    int64_t n = 0;
    bool in_word = false;
    for (unsigned char c : need_string()) {
      bool w = std::isalnum(c) || c == '_' || c >= 0x80;
      if (w && !in_word) ++n;
      in_word = w;
    }
    return value::integer(n);
  }
  if (name == "replace") {
    if (a.positional.size() < 2) fail(line, "replace needs (old, new)");
    int64_t count = a.get(2, "count") ? to_int(*a.get(2, "count"), -1) : -1;
    return value::string(replace_all(need_string(), a.positional[0].str(), a.positional[1].str(), count));
  }
  if (name == "format") return value::string(printf_format(need_string(), a.positional, line));
  if (name == "indent") {
    value w = kw_or(a, 0, "width", value::integer(4));
    std::string pad = w.is_string() ? w.as_string() : std::string(static_cast<size_t>(std::max<int64_t>(0, to_int(w, 4))), ' ');
    bool first = kw_or(a, 1, "first", value::boolean(false)).truthy();
    bool blank = kw_or(a, 2, "blank", value::boolean(false)).truthy();
    std::string text = need_string() + "\n";
    std::vector<std::string> lines;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find_first_of("\r\n", pos);
      if (nl == std::string::npos) {
        lines.push_back(text.substr(pos));
        break;
      }
      lines.push_back(text.substr(pos, nl - pos));
      pos = nl + ((text[nl] == '\r' && nl + 1 < text.size() && text[nl + 1] == '\n') ? 2 : 1);
    }
    std::string out;
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i > 0) out += "\n" + ((blank || !lines[i].empty()) ? pad : "");
      out += lines[i];
    }
    return value::string(first ? pad + out : out);
  }
  if (name == "tojson") {
    json_dump_options o;
    value indent = kw_or(a, 0, "indent", value::none());
    o.indent = indent.is_none() || indent.is_undefined() ? -1 : static_cast<int>(to_int(indent, 0));
    o.ensure_ascii = kw_or(a, 1, "ensure_ascii", value::boolean(false)).truthy();
    o.sort_keys = kw_or(a, 2, "sort_keys", value::boolean(false)).truthy();
    o.item_separator = o.indent >= 0 ? "," : ", ";
    o.key_separator = ": ";
    if (const value* sep = a.kw("separators"); sep && sep->is_list() && sep->as_list().size() == 2) {
      o.item_separator = sep->as_list()[0].str();
      o.key_separator = sep->as_list()[1].str();
    }
    return value::string(to_json_text(v, o));
  }
  if (name == "int") return value::integer(to_int(v, to_int(kw_or(a, 0, "default", value::integer(0)), 0)));
  if (name == "float") return value::floating(to_float(v, to_float(kw_or(a, 0, "default", value::floating(0)), 0)));
  if (name == "abs") {
    if (v.type() == kind::integer) return value::integer(v.as_int() < 0 ? -v.as_int() : v.as_int());
    if (v.type() == kind::floating) return value::floating(std::fabs(v.as_double()));
    fail(line, "abs of a " + v.type_name());
  }
  if (name == "round") {
    int64_t precision = to_int(kw_or(a, 0, "precision", value::integer(0)), 0);
    std::string method = kw_or(a, 1, "method", value::string("common")).str();
    double x = to_float(v, 0), m = std::pow(10.0, double(precision));
    // "common" is Python's round(): ties go to the even neighbour.
    double r = method == "ceil" ? std::ceil(x * m) / m : method == "floor" ? std::floor(x * m) / m : std::nearbyint(x * m) / m;
    return value::floating(r);
  }
  if (name == "items") {
    std::vector<value> out;
    if (v.is_dict())
      for (const auto& [k, x] : v.as_dict().items) out.push_back(value::list({value::string(k), x}));
    else if (!v.is_undefined()) fail(line, "items filter needs a mapping, got " + v.type_name());
    return value::list(std::move(out));
  }
  if (name == "dictsort") {
    if (!v.is_dict()) fail(line, "dictsort needs a mapping");
    std::vector<value> out;
    for (const auto& [k, x] : v.as_dict().items) out.push_back(value::list({value::string(k), x}));
    bool by_value = kw_or(a, 1, "by", value::string("key")).str() == "value";
    bool reverse = kw_or(a, 2, "reverse", value::boolean(false)).truthy();
    bool cs = kw_or(a, 0, "case_sensitive", value::boolean(false)).truthy();
    std::stable_sort(out.begin(), out.end(), [&](const value& x, const value& y) {
      int c = sort_compare(x.as_list()[by_value], y.as_list()[by_value], cs, line);
      return reverse ? c > 0 : c < 0;
    });
    return value::list(std::move(out));
  }
  if (name == "list") return value::list(iterate(v, line));
  if (name == "first" || name == "last") {
    std::vector<value> items = iterate(v, line);
    if (items.empty()) return value();
    return name == "first" ? items.front() : items.back();
  }
  if (name == "reverse") {
    if (v.is_string()) {
      auto chars = utf8_chars(v.as_string());
      std::string r;
      for (auto it = chars.rbegin(); it != chars.rend(); ++it) r += *it;
      return value::string(r);
    }
    std::vector<value> items = iterate(v, line);
    std::reverse(items.begin(), items.end());
    return value::list(std::move(items));
  }
  if (name == "join") {
    std::string sep = kw_or(a, 0, "d", value::string("")).str();
    const value* attr = a.get(1, "attribute");
    std::string out;
    bool first = true;
    for (const auto& x : iterate(v, line)) {
      if (!first) out += sep;
      first = false;
      out += (attr ? get_attribute_path(*this, x, attr->str(), line) : x).str();
    }
    return value::string(std::move(out));
  }
  if (name == "attr") return eval_subscript(v, kw_or(a, 0, "name", value()), line);
  if (name == "map") {
    std::vector<value> out;
    const value* attr = a.kw("attribute");
    if (attr) {
      const value* dflt = a.kw("default");
      for (const auto& x : iterate(v, line)) {
        value r = get_attribute_path(*this, x, attr->str(), line);
        out.push_back(r.is_undefined() && dflt ? *dflt : r);
      }
    } else {
      if (a.positional.empty()) fail(line, "map needs a filter name or attribute=");
      std::string fname = a.positional[0].str();
      if (!is_known_filter(fname)) fail(line, "unsupported filter '" + fname + "' in map");
      call_args rest;
      rest.positional.assign(a.positional.begin() + 1, a.positional.end());
      rest.keyword = a.keyword;
      for (const auto& x : iterate(v, line)) out.push_back(apply_filter(fname, x, rest, line, s));
    }
    return value::list(std::move(out));
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
    bool by_attr = name == "selectattr" || name == "rejectattr";
    bool keep_if = name == "select" || name == "selectattr";
    size_t first_arg = 0;
    std::string attr;
    if (by_attr) {
      if (a.positional.empty()) fail(line, name + " needs an attribute name");
      attr = a.positional[0].str();
      first_arg = 1;
    }
    std::string test;
    call_args targs;
    if (a.positional.size() > first_arg) {
      test = a.positional[first_arg].str();
      if (!is_known_test(test)) fail(line, "unsupported test '" + test + "' in " + name);
      targs.positional.assign(a.positional.begin() + static_cast<long>(first_arg) + 1, a.positional.end());
    }
    std::vector<value> out;
    for (const auto& x : iterate(v, line)) {
      value subject = by_attr ? get_attribute_path(*this, x, attr, line) : x;
      bool r = test.empty() ? subject.truthy() : apply_test(test, subject, targs, line);
      if (r == keep_if) out.push_back(x);
    }
    return value::list(std::move(out));
  }
  if (name == "unique") {
    bool cs = kw_or(a, 0, "case_sensitive", value::boolean(false)).truthy();
    const value* attr = a.get(1, "attribute");
    std::vector<value> out, keys;
    for (const auto& x : iterate(v, line)) {
      value k = attr ? get_attribute_path(*this, x, attr->str(), line) : x;
      if (!cs && k.is_string()) k = value::string(ascii_lower(k.as_string()));
      if (std::none_of(keys.begin(), keys.end(), [&](const value& y) { return values_equal(y, k); })) {
        keys.push_back(k);
        out.push_back(x);
      }
    }
    return value::list(std::move(out));
  }
  if (name == "sort" || name == "min" || name == "max") {
    bool reverse = name == "sort" && kw_or(a, 0, "reverse", value::boolean(false)).truthy();
    bool cs = kw_or(a, name == "sort" ? 1 : 0, "case_sensitive", value::boolean(false)).truthy();
    const value* attr = a.get(name == "sort" ? 2 : 1, "attribute");
    std::vector<value> items = iterate(v, line);
    auto key = [&](const value& x) { return attr ? get_attribute_path(*this, x, attr->str(), line) : x; };
    std::stable_sort(items.begin(), items.end(), [&](const value& x, const value& y) {
      int c = sort_compare(key(x), key(y), cs, line);
      return reverse ? c > 0 : c < 0;
    });
    if (name == "sort") return value::list(std::move(items));
    if (items.empty()) return value();
    return name == "min" ? items.front() : items.back();
  }
  if (name == "sum") {
    const value* attr = a.get(0, "attribute");
    value total = kw_or(a, 1, "start", value::integer(0));
    for (const auto& x : iterate(v, line)) {
      value y = attr ? get_attribute_path(*this, x, attr->str(), line) : x;
      if (total.type() == kind::integer && y.type() == kind::integer) total = value::integer(total.as_int() + y.as_int());
      else total = value::floating(to_float(total, 0) + to_float(y, 0));
    }
    return total;
  }
  fail(line, "unsupported filter '" + name + "'");
}

value interpreter::call_method(const value& obj, const std::string& name, const call_args& a, int line, bool* found) {
  *found = true;
  if (obj.is_string()) {
    const std::string& s = obj.as_string();
    if (name == "strip") return value::string(strip_chars(s, a.get(0, "chars"), true, true));
    if (name == "lstrip") return value::string(strip_chars(s, a.get(0, "chars"), true, false));
    if (name == "rstrip") return value::string(strip_chars(s, a.get(0, "chars"), false, true));
    if (name == "upper") return value::string(ascii_upper(s));
    if (name == "lower") return value::string(ascii_lower(s));
    if (name == "title") return value::string(title_case(s));
    if (name == "capitalize") return value::string(capitalize(s));
    if (name == "split") return value::list(split(s, a.get(0, "sep"), to_int(kw_or(a, 1, "maxsplit", value::integer(-1)), -1)));
    if (name == "splitlines") {
      std::vector<value> out;
      size_t pos = 0;
      std::string t = replace_all(s, "\r\n", "\n", -1);
      while (pos < t.size()) {
        size_t nl = t.find('\n', pos);
        if (nl == std::string::npos) nl = t.size();
        out.push_back(value::string(t.substr(pos, nl - pos)));
        pos = nl + 1;
      }
      return value::list(std::move(out));
    }
    if (name == "startswith" || name == "endswith") {
      if (a.positional.empty()) fail(line, name + "() needs an argument");
      std::vector<value> options = a.positional[0].is_list() ? a.positional[0].as_list() : std::vector<value>{a.positional[0]};
      for (const auto& o : options) {
        if (!o.is_string()) fail(line, name + "() argument must be a string");
        const std::string& p = o.as_string();
        bool hit = p.size() <= s.size() && (name == "startswith" ? s.compare(0, p.size(), p) == 0 : s.compare(s.size() - p.size(), p.size(), p) == 0);
        if (hit) return value::boolean(true);
      }
      return value::boolean(false);
    }
    if (name == "replace") {
      if (a.positional.size() < 2) fail(line, "replace() needs (old, new)");
      int64_t count = a.get(2, "count") ? to_int(*a.get(2, "count"), -1) : -1;
      return value::string(replace_all(s, a.positional[0].str(), a.positional[1].str(), count));
    }
    if (name == "find" || name == "rfind" || name == "count" || name == "index") {
      if (a.positional.empty() || !a.positional[0].is_string()) fail(line, name + "() needs a string argument");
      const std::string& sub = a.positional[0].as_string();
      if (name == "count") {
        if (sub.empty()) return value::integer(static_cast<int64_t>(utf8_length(s) + 1));
        int64_t n = 0;
        for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
        return value::integer(n);
      }
      size_t p = name == "rfind" ? s.rfind(sub) : s.find(sub);
      if (p == std::string::npos) {
        if (name == "index") fail(line, "substring not found");
        return value::integer(-1);
      }
      return value::integer(static_cast<int64_t>(utf8_length(s.substr(0, p))));
    }
    if (name == "join") {
      if (a.positional.empty()) fail(line, "join() needs an iterable");
      std::string out;
      bool first = true;
      for (const auto& x : iterate(a.positional[0], line)) {
        if (!x.is_string()) fail(line, "join() items must be strings, got " + x.type_name());
        if (!first) out += s;
        first = false;
        out += x.as_string();
      }
      return value::string(std::move(out));
    }
    if (name == "format") return value::string(str_format(s, a, line));
    if (name == "isdigit" || name == "isalpha" || name == "isspace" || name == "isalnum") {
      if (s.empty()) return value::boolean(false);
      auto pred = [&](unsigned char c) {
        if (name == "isdigit") return std::isdigit(c) != 0;
        if (name == "isalpha") return std::isalpha(c) != 0;
        if (name == "isalnum") return std::isalnum(c) != 0;
        return is_ws(static_cast<char>(c));
      };
      return value::boolean(std::all_of(s.begin(), s.end(), pred));
    }
  } else if (obj.is_dict()) {
    const dict_data& d = obj.as_dict();
    if (name == "get") {
      if (a.positional.empty()) fail(line, "get() needs a key");
      const value* v = a.positional[0].is_string() ? d.find(a.positional[0].as_string()) : nullptr;
      return v ? *v : (a.positional.size() > 1 ? a.positional[1] : value::none());
    }
    if (name == "items" || name == "keys" || name == "values") {
      std::vector<value> out;
      for (const auto& [k, v] : d.items) {
        if (name == "items") out.push_back(value::list({value::string(k), v}));
        else out.push_back(name == "keys" ? value::string(k) : v);
      }
      return value::list(std::move(out));
    }
  } else if (obj.is_list()) {
    if (name == "index" || name == "count") {
      if (a.positional.empty()) fail(line, name + "() needs an argument");
      int64_t n = 0;
      const auto& items = obj.as_list();
      for (size_t i = 0; i < items.size(); ++i) {
        if (!values_equal(items[i], a.positional[0])) continue;
        if (name == "index") return value::integer(static_cast<int64_t>(i));
        ++n;
      }
      if (name == "index") fail(line, "index(): value not in list");
      return value::integer(n);
    }
    if (name == "append" || name == "pop" || name == "extend" || name == "insert" || name == "remove" || name == "clear")
      fail(line, "unsupported: list." + name + "() (lists are immutable in HF's sandboxed jinja)");
  }
  *found = false;
  return value();
}

void interpreter::install_globals(scope& root) {
  root.set("range", value::callable(
                        [](const call_args& a) {
                          if (a.positional.empty() || a.positional.size() > 3) throw autoglm::error("chat template: range() takes 1 to 3 arguments");
                          int64_t start = 0, stop, step = 1;
                          if (a.positional.size() == 1) {
                            stop = to_int(a.positional[0], 0);
                          } else {
                            start = to_int(a.positional[0], 0);
                            stop = to_int(a.positional[1], 0);
                            if (a.positional.size() == 3) step = to_int(a.positional[2], 1);
                          }
                          if (step == 0) throw autoglm::error("chat template: range() step must not be zero");
                          std::vector<value> out;
                          for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
                            out.push_back(value::integer(i));
                            if (out.size() > 1000000) throw autoglm::error("chat template: range() too large");
                          }
                          return value::list(std::move(out));
                        },
                        "range"));
  root.set("namespace", value::callable(
                            [this](const call_args& a) {
                              value ns = value::namespace_object();
                              namespaces_.push_back(ns.dict_handle());  // emptied at the end of the render
                              for (const auto& p : a.positional)
                                if (p.is_dict())
                                  for (const auto& [k, v] : p.as_dict().items) ns.as_dict().set(k, v);
                              for (const auto& [k, v] : a.keyword) ns.as_dict().set(k, v);
                              return ns;
                            },
                            "namespace"));
  root.set("dict", value::callable(
                       [](const call_args& a) {
                         value d = value::dict();
                         for (const auto& p : a.positional)
                           if (p.is_dict())
                             for (const auto& [k, v] : p.as_dict().items) d.as_dict().set(k, v);
                         for (const auto& [k, v] : a.keyword) d.as_dict().set(k, v);
                         return d;
                       },
                       "dict"));
  root.set("raise_exception", value::callable(
                                  [](const call_args& a) -> value {
                                    throw autoglm::error(a.positional.empty() ? std::string("chat template raised an exception")
                                                                              : a.positional[0].str());
                                  },
                                  "raise_exception"));
  root.set("strftime_now", value::callable(
                               [](const call_args& a) {
                                 std::time_t t = std::time(nullptr);
                                 std::tm tm{};
                                 localtime_r(&t, &tm);
                                 char buf[256];
                                 std::string fmt = a.positional.empty() ? "%Y-%m-%d" : a.positional[0].str();
                                 size_t n = std::strftime(buf, sizeof(buf), fmt.c_str(), &tm);
                                 return value::string(std::string(buf, n));
                               },
                               "strftime_now"));
}

}  // namespace autoglm::jinja

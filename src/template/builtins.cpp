// template/builtins.cpp: filters, tests, str/dict methods and globals (range, namespace, dict, raise_exception,
// strftime_now) of the Jinja subset, following jinja2 3.x and HF transformers' tojson.
#include <algorithm>
#include <charconv>
#include <cctype>
#include <climits>
#include <cmath>
#include <ctime>
#include <set>

#include "core/error.h"
#include "template/interpreter.h"
#include "template/parser.h"
#include "template/strings.h"

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

// Dotted attribute lookup used by map/sort/selectattr/... ("function.name", or "0" for an index).
value get_attribute_path(const value& v, const std::string& path) {
  value cur = v;
  size_t pos = 0;
  while (true) {
    size_t dot = path.find('.', pos);
    std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    size_t index = 0;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), index);
    bool numeric = !part.empty() && ec == std::errc() && end == part.data() + part.size();
    if (cur.is_dict()) {
      const value* f = cur.as_dict().find(part);
      cur = f ? *f : value();
    } else if (cur.is_list() && numeric) {
      cur = index < cur.as_list().size() ? cur.as_list()[index] : value();
    } else {
      cur = value();
    }
    if (dot == std::string::npos) return cur;
    pos = dot + 1;
  }
}

value kw_or(const call_args& a, size_t pos, const std::string& name, value dflt) {
  const value* v = a.get(pos, name);
  return v ? *v : dflt;
}

// An optional string argument (strip's chars, split's sep): absent / None -> nullptr.
const std::string* optional_string(const value* v, const std::string& what, int line) {
  if (!v || v->is_none() || v->is_undefined()) return nullptr;
  if (!v->is_string()) interpreter::fail(line, what + " must be a string or None, got " + v->type_name());
  return &v->as_string();
}

}  // namespace

bool is_known_filter(const std::string& name) { return filter_names().count(name) > 0; }
bool is_known_test(const std::string& name) { return test_names().count(name) > 0; }

bool interpreter::apply_test(const std::string& name, const value& v, const call_args& args, int line) {
  depth_guard guard(*this, line);
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
  if (name == "lower" || name == "upper") {
    if (!v.is_string()) return false;
    budget_.scan(v.as_string().size());
    return (name == "lower" ? ascii_lower(v.as_string()) : ascii_upper(v.as_string())) == v.as_string();
  }
  if (name == "even" || name == "odd" || name == "divisibleby") {
    if (v.type() != kind::integer) fail(line, "test '" + name + "' needs an integer, got " + v.type_name());
    int64_t d = name == "divisibleby" ? to_int(arg(), 1) : 2;
    if (d == 0) fail(line, "divisibleby 0");
    bool divisible = d == -1 || v.as_int() % d == 0;  // INT64_MIN % -1 traps
    return name == "odd" ? !divisible : divisible;
  }
  if (name == "eq" || name == "equalto" || name == "==") return equal(v, arg());
  if (name == "ne" || name == "!=") return !equal(v, arg());
  if (name == "sameas") {
    const value& o = arg();
    if (v.type() != o.type()) return false;
    if (v.is_none() || v.is_undefined()) return true;
    if (v.type() == kind::boolean) return v.as_bool() == o.as_bool();
    if (v.is_list()) return &v.as_list() == &o.as_list();
    if (v.is_dict()) return &v.as_dict() == &o.as_dict();
    return equal(v, o);
  }
  if (name == "in") {
    const value& c = arg();
    if (c.is_string()) return v.is_string() && contains(c, v, line);
    if (c.is_list()) return contains(c, v, line);
    if (c.is_dict()) return v.is_string() && c.as_dict().find(v.as_string());
    return false;
  }
  std::optional<int> c = compare_values(v, arg(), budget_);
  if (!c) fail(line, "test '" + name + "': cannot compare " + v.type_name() + " and " + arg().type_name());
  if (name == "lt" || name == "<") return *c < 0;
  if (name == "le" || name == "<=") return *c <= 0;
  if (name == "gt" || name == ">") return *c > 0;
  if (name == "ge" || name == ">=") return *c >= 0;
  fail(line, "unsupported test '" + name + "'");
}

value interpreter::apply_filter(const std::string& name, const value& v, const call_args& a, int line, const scope_ptr& s) {
  depth_guard guard(*this, line);
  auto need_string = [&]() -> std::string {
    if (v.is_undefined()) return "";
    return str(v);
  };
  // Sorting keys: the attribute path (if any), lower-cased strings unless case-sensitive.
  auto sort_key = [&](const value& x, const value* attr, bool case_sensitive) {
    value k = attr ? get_attribute_path(x, str(*attr)) : x;
    if (!case_sensitive && k.is_string()) {
      budget_.scan(k.as_string().size());
      k = value::string(ascii_lower(k.as_string()));
    }
    return k;
  };
  auto order = [&](const value& x, const value& y) {
    std::optional<int> c = compare_values(x, y, budget_);
    if (!c) fail(line, name + ": cannot compare " + x.type_name() + " and " + y.type_name());
    return *c;
  };
  if (name == "default" || name == "d") {
    value dflt = kw_or(a, 0, "default_value", value::string(""));
    bool boolean = kw_or(a, 1, "boolean", value::boolean(false)).truthy();
    if (v.is_undefined() || (boolean && !v.truthy())) return dflt;
    return v;
  }
  if (name == "length" || name == "count") return value::integer(static_cast<int64_t>(length_of(v, line)));
  if (name == "safe") return v;
  if (name == "string") return v.is_string() ? v : make_string(str(v));
  if (name == "trim") return make_string(strip_chars(need_string(), optional_string(a.get(0, "chars"), "trim chars", line), true, true, budget_));
  if (name == "upper") return make_string(ascii_upper(need_string()));
  if (name == "lower") return make_string(ascii_lower(need_string()));
  if (name == "title") return make_string(title_case(need_string()));
  if (name == "capitalize") return make_string(capitalize(need_string()));
  if (name == "e" || name == "escape") return make_string(html_escape(need_string(), budget_));
  if (name == "wordcount") {
    int64_t n = 0;
    bool in_word = false;
    std::string text = need_string();
    budget_.scan(text.size());
    for (unsigned char c : text) {
      bool w = std::isalnum(c) || c == '_' || c >= 0x80;
      if (w && !in_word) ++n;
      in_word = w;
    }
    return value::integer(n);
  }
  if (name == "replace") {
    if (a.positional.size() < 2) fail(line, "replace needs (old, new)");
    int64_t count = a.get(2, "count") ? to_int(*a.get(2, "count"), -1) : -1;
    return make_string(replace_all(need_string(), str(a.positional[0]), str(a.positional[1]), count, budget_));
  }
  if (name == "format") return make_string(printf_format(need_string(), a.positional, budget_));
  if (name == "indent") {
    value w = kw_or(a, 0, "width", value::integer(4));
    std::string pad;
    if (w.is_string()) {
      pad = w.as_string();
    } else {
      int64_t width = std::max<int64_t>(0, to_int(w, 4));
      budget_.check_string(static_cast<uint64_t>(width) > SIZE_MAX / 2 ? SIZE_MAX : static_cast<size_t>(width));
      pad.assign(static_cast<size_t>(width), ' ');
    }
    bool first = kw_or(a, 1, "first", value::boolean(false)).truthy();
    bool blank = kw_or(a, 2, "blank", value::boolean(false)).truthy();
    return make_string(indent_lines(need_string(), pad, first, blank, budget_));
  }
  if (name == "tojson") {
    json_dump_options o;
    value indent = kw_or(a, 0, "indent", value::none());
    o.indent = indent.is_none() || indent.is_undefined() ? -1 : to_int(indent, 0);
    o.ensure_ascii = kw_or(a, 1, "ensure_ascii", value::boolean(false)).truthy();
    o.sort_keys = kw_or(a, 2, "sort_keys", value::boolean(false)).truthy();
    o.item_separator = o.indent >= 0 ? "," : ", ";
    o.key_separator = ": ";
    if (const value* sep = a.kw("separators"); sep && sep->is_list() && sep->as_list().size() == 2) {
      o.item_separator = str(sep->as_list()[0]);
      o.key_separator = str(sep->as_list()[1]);
    }
    return make_string(to_json_text(v, o, budget_));
  }
  if (name == "int") return value::integer(to_int(v, to_int(kw_or(a, 0, "default", value::integer(0)), 0)));
  if (name == "float") return value::floating(to_float(v, to_float(kw_or(a, 0, "default", value::floating(0)), 0)));
  if (name == "abs") {
    if (v.type() == kind::integer) {
      if (v.as_int() == INT64_MIN) fail(line, "integer overflow in abs");
      return value::integer(v.as_int() < 0 ? -v.as_int() : v.as_int());
    }
    if (v.type() == kind::floating) return value::floating(std::fabs(v.as_double()));
    fail(line, "abs of a " + v.type_name());
  }
  if (name == "round") {
    int64_t precision = to_int(kw_or(a, 0, "precision", value::integer(0)), 0);
    std::string method = str(kw_or(a, 1, "method", value::string("common")));
    double x = to_float(v, 0), m = std::pow(10.0, double(precision));
    // "common" is Python's round(): ties go to the even neighbour.
    double r = method == "ceil" ? std::ceil(x * m) / m : method == "floor" ? std::floor(x * m) / m : std::nearbyint(x * m) / m;
    return value::floating(r);
  }
  if (name == "items" || name == "dictsort") {
    std::vector<value> out;
    if (v.is_dict()) {
      budget_.new_items(v.as_dict().items.size());
      for (const auto& [k, x] : v.as_dict().items.entries()) out.push_back(value::list({value::string(k), x}));
    } else if (name == "dictsort") {
      fail(line, "dictsort needs a mapping");
    } else if (!v.is_undefined()) {
      fail(line, "items filter needs a mapping, got " + v.type_name());
    }
    if (name == "dictsort") {
      size_t by_value = str(kw_or(a, 1, "by", value::string("key"))) == "value";
      bool reverse = kw_or(a, 2, "reverse", value::boolean(false)).truthy();
      bool cs = kw_or(a, 0, "case_sensitive", value::boolean(false)).truthy();
      std::stable_sort(out.begin(), out.end(), [&](const value& x, const value& y) {
        int c = order(sort_key(x.as_list()[by_value], nullptr, cs), sort_key(y.as_list()[by_value], nullptr, cs));
        return reverse ? c > 0 : c < 0;
      });
    }
    return make_list(std::move(out));
  }
  if (name == "list") return make_list(iterate(v, line));
  if (name == "first" || name == "last") {
    if (v.is_list()) {
      if (v.as_list().empty()) return value();
      return name == "first" ? v.as_list().front() : v.as_list().back();
    }
    std::vector<value> items = iterate(v, line);
    if (items.empty()) return value();
    return name == "first" ? items.front() : items.back();
  }
  if (name == "reverse") {
    if (v.is_string()) return make_string(reverse_chars(v.as_string(), budget_));
    std::vector<value> items = iterate(v, line);
    std::reverse(items.begin(), items.end());
    return make_list(std::move(items));
  }
  if (name == "join") {
    std::string sep = str(kw_or(a, 0, "d", value::string("")));
    const value* attr = a.get(1, "attribute");
    std::string path = attr ? str(*attr) : "";
    std::string out;
    bool first = true;
    for (const auto& x : iterate(v, line)) {
      if (!first) out += sep;
      first = false;
      out += str(attr ? get_attribute_path(x, path) : x);
      budget_.check_string(out.size());
    }
    return make_string(std::move(out));
  }
  if (name == "attr") return eval_subscript(v, kw_or(a, 0, "name", value()), line);
  if (name == "map") {
    std::vector<value> out;
    const value* attr = a.kw("attribute");
    if (attr) {
      const value* dflt = a.kw("default");
      std::string path = str(*attr);
      for (const auto& x : iterate(v, line)) {
        value r = get_attribute_path(x, path);
        out.push_back(r.is_undefined() && dflt ? *dflt : r);
      }
    } else {
      if (a.positional.empty()) fail(line, "map needs a filter name or attribute=");
      std::string fname = str(a.positional[0]);
      if (!is_known_filter(fname)) fail(line, "unsupported filter '" + fname + "' in map");
      call_args rest;
      budget_.step(static_cast<int64_t>(a.positional.size() + a.keyword.size()));  // copied per nested map level
      rest.positional.assign(a.positional.begin() + 1, a.positional.end());
      rest.keyword = a.keyword;
      for (const auto& x : iterate(v, line)) out.push_back(apply_filter(fname, x, rest, line, s));
    }
    return make_list(std::move(out));
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
    bool by_attr = name == "selectattr" || name == "rejectattr";
    bool keep_if = name == "select" || name == "selectattr";
    size_t first_arg = 0;
    std::string attr;
    if (by_attr) {
      if (a.positional.empty()) fail(line, name + " needs an attribute name");
      attr = str(a.positional[0]);
      first_arg = 1;
    }
    std::string test;
    call_args targs;
    if (a.positional.size() > first_arg) {
      test = str(a.positional[first_arg]);
      if (!is_known_test(test)) fail(line, "unsupported test '" + test + "' in " + name);
      targs.positional.assign(a.positional.begin() + static_cast<long>(first_arg) + 1, a.positional.end());
    }
    std::vector<value> out;
    for (const auto& x : iterate(v, line)) {
      value subject = by_attr ? get_attribute_path(x, attr) : x;
      bool r = test.empty() ? subject.truthy() : apply_test(test, subject, targs, line);
      if (r == keep_if) out.push_back(x);
    }
    return make_list(std::move(out));
  }
  if (name == "unique") {
    bool cs = kw_or(a, 0, "case_sensitive", value::boolean(false)).truthy();
    const value* attr = a.get(1, "attribute");
    std::vector<value> out, keys;
    for (const auto& x : iterate(v, line)) {
      value k = sort_key(x, attr, cs);
      // Quadratic in the worst case, but every comparison is a step, so the step limit bounds it.
      if (std::none_of(keys.begin(), keys.end(), [&](const value& y) { return equal(y, k); })) {
        keys.push_back(k);
        out.push_back(x);
      }
    }
    return make_list(std::move(out));
  }
  if (name == "sort" || name == "min" || name == "max") {
    bool reverse = name == "sort" && kw_or(a, 0, "reverse", value::boolean(false)).truthy();
    bool cs = kw_or(a, name == "sort" ? 1 : 0, "case_sensitive", value::boolean(false)).truthy();
    const value* attr = a.get(name == "sort" ? 2 : 1, "attribute");
    std::vector<value> items = iterate(v, line);
    std::stable_sort(items.begin(), items.end(), [&](const value& x, const value& y) {
      int c = order(sort_key(x, attr, cs), sort_key(y, attr, cs));
      return reverse ? c > 0 : c < 0;
    });
    if (name == "sort") return make_list(std::move(items));
    if (items.empty()) return value();
    return name == "min" ? items.front() : items.back();
  }
  if (name == "sum") {
    const value* attr = a.get(0, "attribute");
    std::string path = attr ? str(*attr) : "";
    value total = kw_or(a, 1, "start", value::integer(0));
    for (const auto& x : iterate(v, line)) {
      value y = attr ? get_attribute_path(x, path) : x;
      int64_t r = 0;
      if (total.type() == kind::integer && y.type() == kind::integer && !__builtin_add_overflow(total.as_int(), y.as_int(), &r))
        total = value::integer(r);
      else
        total = value::floating(to_float(total, 0) + to_float(y, 0));
    }
    return total;
  }
  fail(line, "unsupported filter '" + name + "'");
}

value interpreter::call_method(const value& obj, const std::string& name, const call_args& a, int line, bool* found) {
  depth_guard guard(*this, line);
  *found = true;
  if (obj.is_string()) {
    const std::string& s = obj.as_string();
    if (name == "strip") return make_string(strip_chars(s, optional_string(a.get(0, "chars"), "strip() chars", line), true, true, budget_));
    if (name == "lstrip") return make_string(strip_chars(s, optional_string(a.get(0, "chars"), "lstrip() chars", line), true, false, budget_));
    if (name == "rstrip") return make_string(strip_chars(s, optional_string(a.get(0, "chars"), "rstrip() chars", line), false, true, budget_));
    if (name == "upper") return make_string(ascii_upper(s));
    if (name == "lower") return make_string(ascii_lower(s));
    if (name == "title") return make_string(title_case(s));
    if (name == "capitalize") return make_string(capitalize(s));
    if (name == "split")
      return make_list(split(s, optional_string(a.get(0, "sep"), "split() separator", line), to_int(kw_or(a, 1, "maxsplit", value::integer(-1)), -1), budget_));
    if (name == "splitlines") return make_list(split_lines(s, budget_));
    if (name == "startswith" || name == "endswith") {
      if (a.positional.empty()) fail(line, name + "() needs an argument");
      std::vector<value> options = a.positional[0].is_list() ? a.positional[0].as_list() : std::vector<value>{a.positional[0]};
      for (const auto& o : options) {
        if (!o.is_string()) fail(line, name + "() argument must be a string");
        const std::string& p = o.as_string();
        budget_.scan(p.size());
        bool hit = p.size() <= s.size() && (name == "startswith" ? s.compare(0, p.size(), p) == 0 : s.compare(s.size() - p.size(), p.size(), p) == 0);
        if (hit) return value::boolean(true);
      }
      return value::boolean(false);
    }
    if (name == "replace") {
      if (a.positional.size() < 2) fail(line, "replace() needs (old, new)");
      int64_t count = a.get(2, "count") ? to_int(*a.get(2, "count"), -1) : -1;
      return make_string(replace_all(s, str(a.positional[0]), str(a.positional[1]), count, budget_));
    }
    if (name == "find" || name == "rfind" || name == "count" || name == "index") {
      if (a.positional.empty() || !a.positional[0].is_string()) fail(line, name + "() needs a string argument");
      const std::string& sub = a.positional[0].as_string();
      budget_.scan(s.size() + sub.size());
      if (name == "count") {
        if (sub.empty()) return value::integer(static_cast<int64_t>(utf8_length(s) + 1));
        substring_finder finder(sub);
        int64_t n = 0;
        for (size_t p = finder.find(s); p != std::string::npos; p = finder.find(s, p + sub.size())) ++n;
        return value::integer(n);
      }
      substring_finder finder(sub);
      size_t p = name == "rfind" ? finder.rfind(s) : finder.find(s);
      if (p == std::string::npos) {
        if (name == "index") fail(line, "substring not found");
        return value::integer(-1);
      }
      return value::integer(static_cast<int64_t>(utf8_length(std::string_view(s).substr(0, p))));
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
        budget_.check_string(out.size());
      }
      budget_.scan(out.size());
      return make_string(std::move(out));
    }
    if (name == "format") return make_string(str_format(s, a, budget_));
    if (name == "isdigit" || name == "isalpha" || name == "isspace" || name == "isalnum") {
      if (s.empty()) return value::boolean(false);
      budget_.scan(s.size());
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
      for (const auto& [k, v] : d.items.entries()) {
        if (name == "items") out.push_back(value::list({value::string(k), v}));
        else out.push_back(name == "keys" ? value::string(k) : v);
      }
      return make_list(std::move(out));
    }
  } else if (obj.is_list()) {
    if (name == "index" || name == "count") {
      if (a.positional.empty()) fail(line, name + "() needs an argument");
      int64_t n = 0;
      const auto& items = obj.as_list();
      for (size_t i = 0; i < items.size(); ++i) {
        if (!equal(items[i], a.positional[0])) continue;
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
                        [this](const call_args& a) {
                          if (a.positional.empty() || a.positional.size() > 3) budget_.fail("range() takes 1 to 3 arguments");
                          int64_t start = 0, stop, step = 1;
                          if (a.positional.size() == 1) {
                            stop = to_int(a.positional[0], 0);
                          } else {
                            start = to_int(a.positional[0], 0);
                            stop = to_int(a.positional[1], 0);
                            if (a.positional.size() == 3) step = to_int(a.positional[2], 1);
                          }
                          if (step == 0) budget_.fail("range() step must not be zero");
                          // Count first (unsigned: stop - start can exceed int64), so range(10**12) fails at once.
                          uint64_t magnitude = step > 0 ? static_cast<uint64_t>(step) : static_cast<uint64_t>(-(step + 1)) + 1;
                          uint64_t count = 0;
                          if (step > 0 && start < stop) count = (static_cast<uint64_t>(stop) - static_cast<uint64_t>(start) - 1) / magnitude + 1;
                          if (step < 0 && start > stop) count = (static_cast<uint64_t>(start) - static_cast<uint64_t>(stop) - 1) / magnitude + 1;
                          budget_.check_items(count > SIZE_MAX / 2 ? SIZE_MAX / 2 : static_cast<size_t>(count));
                          std::vector<value> out;
                          out.reserve(static_cast<size_t>(count));
                          for (uint64_t k = 0; k < count; ++k) {
                            uint64_t offset = k * magnitude;  // < |stop - start|: start +/- offset stays in int64
                            out.push_back(value::integer(step > 0 ? static_cast<int64_t>(static_cast<uint64_t>(start) + offset)
                                                                  : static_cast<int64_t>(static_cast<uint64_t>(start) - offset)));
                          }
                          return make_list(std::move(out));
                        },
                        "range"));
  root.set("namespace", value::callable(
                            [this](const call_args& a) {
                              value ns = value::namespace_object();
                              namespaces_.push_back(ns.dict_handle());  // kept alive and emptied when the render ends
                              for (const auto& p : a.positional)
                                if (p.is_dict())
                                  for (const auto& [k, v] : p.as_dict().items.entries()) ns.as_dict().set(k, v);
                              for (const auto& [k, v] : a.keyword) ns.as_dict().set(k, v);
                              budget_.new_items(ns.as_dict().items.size() + 1);
                              return ns;
                            },
                            "namespace"));
  root.set("dict", value::callable(
                       [this](const call_args& a) {
                         value d = value::dict();
                         for (const auto& p : a.positional)
                           if (p.is_dict())
                             for (const auto& [k, v] : p.as_dict().items.entries()) d.as_dict().set(k, v);
                         for (const auto& [k, v] : a.keyword) d.as_dict().set(k, v);
                         budget_.new_items(d.as_dict().items.size());
                         return d;
                       },
                       "dict"));
  root.set("raise_exception", value::callable(
                                  [this](const call_args& a) -> value {
                                    throw autoglm::error(a.positional.empty() ? std::string("chat template raised an exception")
                                                                              : str(a.positional[0]));
                                  },
                                  "raise_exception"));
  root.set("strftime_now", value::callable(
                               [this](const call_args& a) {
                                 std::time_t t = std::time(nullptr);
                                 std::tm tm{};
                                 localtime_r(&t, &tm);
                                 char buf[256];
                                 std::string fmt = a.positional.empty() ? "%Y-%m-%d" : str(a.positional[0]);
                                 size_t n = std::strftime(buf, sizeof(buf), fmt.c_str(), &tm);
                                 return value::string(std::string(buf, n));
                               },
                               "strftime_now"));
}

}  // namespace autoglm::jinja

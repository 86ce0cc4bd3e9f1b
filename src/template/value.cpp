// template/value.cpp: construction, truthiness, str/repr, equality/ordering and json.dumps of Jinja values (the
// walks spend the render budget and stop at max_nesting), the ordered key table and linear-time substring search.
#include "template/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <optional>

#include "core/error.h"

namespace autoglm::jinja {

const value* call_args::kw(const std::string& name) const {
  for (const auto& [k, v] : keyword)
    if (k == name) return &v;
  return nullptr;
}

const value* call_args::get(size_t pos, const std::string& name) const {
  if (pos < positional.size()) return &positional[pos];
  return kw(name);
}

value* ordered_table::find(const std::string& key) {
  return const_cast<value*>(static_cast<const ordered_table*>(this)->find(key));
}

const value* ordered_table::find(const std::string& key) const {
  if (entries_.size() < index_from) {
    for (const auto& [k, v] : entries_)
      if (k == key) return &v;
    return nullptr;
  }
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

void ordered_table::set(const std::string& key, value v) {
  if (value* slot = find(key)) {
    *slot = std::move(v);
    return;
  }
  entries_.emplace_back(key, std::move(v));
  if (entries_.size() == index_from) {
    for (size_t i = 0; i < entries_.size(); ++i) index_.emplace(entries_[i].first, i);
  } else if (entries_.size() > index_from) {
    index_.emplace(key, entries_.size() - 1);
  }
}

std::vector<ordered_table::entry> ordered_table::take() {
  index_.clear();
  return std::exchange(entries_, {});
}

void dict_data::set(const std::string& key, value v) {
  depth = std::max(depth, v.depth() + 1);
  items.set(key, std::move(v));
}

value value::none() {
  value v;
  v.kind_ = kind::none;
  return v;
}

value value::boolean(bool b) {
  value v;
  v.kind_ = kind::boolean;
  v.b_ = b;
  return v;
}

value value::integer(int64_t i) {
  value v;
  v.kind_ = kind::integer;
  v.i_ = i;
  return v;
}

value value::floating(double d) {
  value v;
  v.kind_ = kind::floating;
  v.d_ = d;
  return v;
}

value value::string(std::string s) {
  value v;
  v.kind_ = kind::string;
  v.s_ = std::make_shared<const std::string>(std::move(s));
  return v;
}

value value::list(std::vector<value> items) {
  value v;
  v.kind_ = kind::list;
  v.depth_ = 1;
  for (const auto& x : items) v.depth_ = std::max(v.depth_, x.depth() + 1);
  v.list_ = std::make_shared<const std::vector<value>>(std::move(items));
  return v;
}

value value::dict() {
  value v;
  v.kind_ = kind::dict;
  v.dict_ = std::make_shared<dict_data>();
  return v;
}

value value::namespace_object() {
  value v = dict();
  v.namespace_ = true;
  return v;
}

namespace detail {
std::atomic<int64_t> n_live[n_live_kinds];
}  // namespace detail

live_objects count_live_objects() {
  live_objects n;
  n.scopes = detail::n_live[detail::live_scope].load();
  n.dicts = detail::n_live[detail::live_dict].load();
  n.callables = detail::n_live[detail::live_callable].load();
  return n;
}

namespace {
struct counted_fn {
  native_fn fn;
  detail::live_counter<detail::live_callable> counted_;
};
}  // namespace

value value::callable(native_fn fn, std::string name) {
  value v;
  v.kind_ = kind::callable;
  // Aliasing constructor: fn_ points at the function inside a counted holder that it keeps alive.
  auto holder = std::make_shared<counted_fn>(counted_fn{std::move(fn), {}});
  v.fn_ = std::shared_ptr<native_fn>(holder, &holder->fn);
  v.s_ = std::make_shared<const std::string>(std::move(name));
  return v;
}

int32_t value::depth() const {
  if (kind_ == kind::list) return depth_;
  if (kind_ == kind::dict) return namespace_ ? 1 : dict_->depth;
  return 0;
}

template <class J>
static value convert_json(const J& j, int32_t depth, int32_t max_depth) {
  if (depth > max_depth && (j.is_array() || j.is_object()))
    throw autoglm::error("chat template context: JSON nested deeper than " + std::to_string(max_depth) + " levels");
  switch (j.type()) {
    case J::value_t::null: return value::none();
    case J::value_t::boolean: return value::boolean(j.template get<bool>());
    case J::value_t::number_integer: return value::integer(j.template get<int64_t>());
    case J::value_t::number_unsigned: return value::integer(static_cast<int64_t>(j.template get<uint64_t>()));
    case J::value_t::number_float: return value::floating(j.template get<double>());
    case J::value_t::string: return value::string(j.template get<std::string>());
    case J::value_t::array: {
      std::vector<value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(convert_json(e, depth + 1, max_depth));
      return value::list(std::move(items));
    }
    case J::value_t::object: {
      value d = value::dict();
      for (auto it = j.begin(); it != j.end(); ++it) d.as_dict().set(it.key(), convert_json(it.value(), depth + 1, max_depth));
      return d;
    }
    default: throw autoglm::error("chat template context: unsupported JSON value (binary/discarded)");
  }
}

value value::from_json(const nlohmann::json& j, int32_t max_depth) { return convert_json(j, 1, max_depth); }
value value::from_json(const nlohmann::ordered_json& j, int32_t max_depth) { return convert_json(j, 1, max_depth); }

bool value::truthy() const {
  switch (kind_) {
    case kind::undefined:
    case kind::none: return false;
    case kind::boolean: return b_;
    case kind::integer: return i_ != 0;
    case kind::floating: return d_ != 0.0;
    case kind::string: return !s_->empty();
    case kind::list: return !list_->empty();
    case kind::dict: return namespace_ || dict_->items.size() > 0;
    case kind::callable: return true;
  }
  return false;
}

std::string python_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then Python's repr layout: fixed for 1e-4 <= |d| < 1e16, else d.ddde+XX.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  size_t e_pos = sci.find('e');
  std::string mant = sci.substr(0, e_pos);
  int exp10 = std::stoi(sci.substr(e_pos + 1));
  bool neg = mant[0] == '-';
  if (neg) mant.erase(0, 1);
  std::string digits;
  for (char c : mant)
    if (c != '.') digits += c;
  std::string out = neg ? "-" : "";
  if (exp10 >= -4 && exp10 < 16) {
    if (exp10 < 0) {
      out += "0." + std::string(static_cast<size_t>(-exp10 - 1), '0') + digits;
    } else if (static_cast<int>(digits.size()) <= exp10 + 1) {
      out += digits + std::string(static_cast<size_t>(exp10 + 1) - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(exp10 + 1)) + "." + digits.substr(static_cast<size_t>(exp10 + 1));
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char ebuf[16];
  std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
  return out + ebuf;
}

static void python_string_repr(std::string& out, const std::string& s) {
  char quote = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
  out += quote;
  for (unsigned char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == static_cast<unsigned char>(quote)) out += std::string("\\") + quote;
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += quote;
}

// Appends repr(v). Each visited value is a step and each string's bytes are scanned; the text is checked
// against the string limit as it grows (a list can hold the same large string a million times).
static void repr_into(std::string& out, const value& v, budget& b, int64_t depth) {
  b.check_depth(depth);
  b.step();
  switch (v.type()) {
    case kind::undefined: break;
    case kind::none: out += "None"; break;
    case kind::boolean: out += v.as_bool() ? "True" : "False"; break;
    case kind::integer: out += std::to_string(v.as_int()); break;
    case kind::floating: out += python_float_repr(v.as_double()); break;
    case kind::string:
      b.check_string(out.size() + v.as_string().size());
      b.scan(v.as_string().size());
      python_string_repr(out, v.as_string());
      break;
    case kind::list: {
      out += "[";
      const auto& items = v.as_list();
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        repr_into(out, items[i], b, depth + 1);
        b.check_string(out.size());
      }
      out += "]";
      break;
    }
    case kind::dict: {
      out += v.is_namespace() ? "<Namespace {" : "{";
      const auto& items = v.as_dict().items.entries();
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        python_string_repr(out, items[i].first);
        out += ": ";
        repr_into(out, items[i].second, b, depth + 1);
        b.check_string(out.size());
      }
      out += v.is_namespace() ? "}>" : "}";
      break;
    }
    case kind::callable: out += "<function " + v.callable_name() + ">"; break;
  }
  b.check_string(out.size());
}

std::string value::str(budget& b) const {
  switch (kind_) {
    case kind::undefined: return "";
    case kind::string: b.scan(s_->size()); return *s_;
    default: return repr(b);
  }
}

std::string value::repr(budget& b) const {
  std::string out;
  repr_into(out, *this, b, 0);
  return out;
}

std::string value::type_name() const {
  switch (kind_) {
    case kind::undefined: return "undefined";
    case kind::none: return "none";
    case kind::boolean: return "boolean";
    case kind::integer: return "integer";
    case kind::floating: return "float";
    case kind::string: return "string";
    case kind::list: return "list";
    case kind::dict: return namespace_ ? "namespace" : "dict";
    case kind::callable: return "callable";
  }
  return "?";
}

static bool numeric_like(const value& v) {
  return v.type() == kind::integer || v.type() == kind::floating || v.type() == kind::boolean;
}

static double numeric(const value& v) {
  if (v.type() == kind::boolean) return v.as_bool() ? 1.0 : 0.0;
  return v.as_double();
}

static bool equal_at(const value& a, const value& b, budget& spend, int64_t depth) {
  spend.check_depth(depth);
  spend.step();
  if (numeric_like(a) && numeric_like(b)) {
    if (a.type() == kind::integer && b.type() == kind::integer) return a.as_int() == b.as_int();
    return numeric(a) == numeric(b);
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case kind::undefined:
    case kind::none: return true;
    case kind::string:
      spend.scan(std::min(a.as_string().size(), b.as_string().size()));
      return a.as_string() == b.as_string();
    case kind::list: {
      const auto& x = a.as_list();
      const auto& y = b.as_list();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i)
        if (!equal_at(x[i], y[i], spend, depth + 1)) return false;
      return true;
    }
    case kind::dict: {
      const auto& x = a.as_dict().items;
      const auto& y = b.as_dict();
      if (x.size() != y.items.size()) return false;
      for (const auto& [k, v] : x.entries()) {
        const value* o = y.find(k);
        if (!o || !equal_at(v, *o, spend, depth + 1)) return false;
      }
      return true;
    }
    case kind::callable: return &a.as_callable() == &b.as_callable();
    default: return false;
  }
}

bool values_equal(const value& a, const value& b, budget& spend) { return equal_at(a, b, spend, 0); }

static std::optional<int> compare_at(const value& a, const value& b, budget& spend, int64_t depth) {
  spend.check_depth(depth);
  spend.step();
  if (numeric_like(a) && numeric_like(b)) {
    if (a.type() == kind::integer && b.type() == kind::integer)
      return a.as_int() < b.as_int() ? -1 : (a.as_int() > b.as_int() ? 1 : 0);
    double x = numeric(a), y = numeric(b);
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    spend.scan(std::min(a.as_string().size(), b.as_string().size()));
    int c = a.as_string().compare(b.as_string());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_list() && b.is_list()) {
    const auto& x = a.as_list();
    const auto& y = b.as_list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      std::optional<int> c = compare_at(x[i], y[i], spend, depth + 1);
      if (!c || *c != 0) return c;
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  return std::nullopt;
}

std::optional<int> compare_values(const value& a, const value& b, budget& spend) { return compare_at(a, b, spend, 0); }

static void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else if (c >= 0x80 && ensure_ascii) {
          // Decode one UTF-8 sequence, emit \uXXXX (surrogate pairs above the BMP), as json.dumps does.
          uint32_t cp = 0;
          int extra = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
          cp = c & (0x3f >> extra);
          for (int k = 0; k < extra && i + 1 < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[++i]) & 0x3f);
          char buf[16];
          if (cp >= 0x10000) {
            cp -= 0x10000;
            std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
          } else {
            std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
          }
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

// Appends json.dumps(v); spends like repr_into.
static void json_dump(std::string& out, const value& v, const json_dump_options& o, budget& b, int64_t depth) {
  b.check_depth(depth);
  b.step();
  auto newline = [&](int64_t d) {
    // indent * d spaces: check before building (tojson(indent=10**12) must fail, not allocate).
    uint64_t pad = static_cast<uint64_t>(std::min<int64_t>(o.indent, INT32_MAX)) * static_cast<uint64_t>(d);
    b.check_string(out.size() + 1 + static_cast<size_t>(std::min<uint64_t>(pad, SIZE_MAX / 2)));
    out += '\n';
    out.append(static_cast<size_t>(pad), ' ');
  };
  switch (v.type()) {
    case kind::undefined:
    case kind::none: out += "null"; return;
    case kind::boolean: out += v.as_bool() ? "true" : "false"; return;
    case kind::integer: out += std::to_string(v.as_int()); return;
    case kind::floating: {
      double d = v.as_double();
      if (std::isnan(d)) out += "NaN";
      else if (std::isinf(d)) out += d > 0 ? "Infinity" : "-Infinity";
      else out += python_float_repr(d);
      return;
    }
    case kind::string:
      // \uXXXX escapes can make the text six times its input.
      b.check_string(out.size() + v.as_string().size());
      b.scan(v.as_string().size());
      json_string(out, v.as_string(), o.ensure_ascii);
      b.check_string(out.size());
      return;
    case kind::list: {
      const auto& items = v.as_list();
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += o.item_separator;
        if (o.indent >= 0) newline(depth + 1);
        json_dump(out, items[i], o, b, depth + 1);
        b.check_string(out.size());
      }
      if (o.indent >= 0 && !items.empty()) newline(depth);
      out += ']';
      return;
    }
    case kind::dict: {
      std::vector<const ordered_table::entry*> items;
      for (const auto& kv : v.as_dict().items.entries()) items.push_back(&kv);
      if (o.sort_keys) {
        b.step(static_cast<int64_t>(items.size()));
        std::stable_sort(items.begin(), items.end(), [&](auto* x, auto* y) {
          b.scan(std::min(x->first.size(), y->first.size()));
          return x->first < y->first;
        });
      }
      out += '{';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += o.item_separator;
        if (o.indent >= 0) newline(depth + 1);
        json_string(out, items[i]->first, o.ensure_ascii);
        out += o.key_separator;
        json_dump(out, items[i]->second, o, b, depth + 1);
        b.check_string(out.size());
      }
      if (o.indent >= 0 && !items.empty()) newline(depth);
      out += '}';
      return;
    }
    case kind::callable: throw autoglm::error("chat template: tojson cannot serialize a function");
  }
}

std::string to_json_text(const value& v, const json_dump_options& opts, budget& spend) {
  std::string out;
  json_dump(out, v, opts, spend, 0);
  return out;
}

size_t utf8_next(std::string_view s, size_t pos) {
  unsigned char c = static_cast<unsigned char>(s[pos]);
  size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
  return std::min(pos + n, s.size());
}

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); i = utf8_next(s, i)) ++n;
  return n;
}

substring_finder::substring_finder(std::string_view needle) : needle_(needle) {
  if (needle_.size() <= short_needle) return;
  border_.assign(needle_.size(), 0);
  for (size_t i = 1, k = 0; i < needle_.size(); ++i) {
    while (k > 0 && needle_[i] != needle_[k]) k = border_[k - 1];
    if (needle_[i] == needle_[k]) ++k;
    border_[i] = k;
  }
}

size_t substring_finder::find(std::string_view hay, size_t from) const {
  if (needle_.size() <= short_needle) return hay.find(needle_, from);
  const size_t m = needle_.size();
  for (size_t i = from, k = 0; i < hay.size(); ++i) {
    while (k > 0 && hay[i] != needle_[k]) k = border_[k - 1];
    if (hay[i] == needle_[k]) ++k;
    if (k == m) return i + 1 - m;
  }
  return std::string::npos;
}

size_t substring_finder::rfind(std::string_view hay) const {
  if (needle_.size() <= short_needle) return hay.rfind(needle_);
  // The last match, overlapping ones included, in one forward pass.
  const size_t m = needle_.size();
  size_t last = std::string::npos;
  for (size_t i = 0, k = 0; i < hay.size(); ++i) {
    while (k > 0 && hay[i] != needle_[k]) k = border_[k - 1];
    if (hay[i] == needle_[k]) ++k;
    if (k == m) {
      last = i + 1 - m;
      k = border_[k - 1];
    }
  }
  return last;
}

}  // namespace autoglm::jinja

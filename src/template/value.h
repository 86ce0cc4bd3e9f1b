// template/value.h: the runtime value of the Jinja subset (Python semantics, as jinja2 under HF transformers):
// undefined, none, bool, int, float, string, list, dict (insertion ordered), namespace, callable.
// Lists and dicts are shared by reference like Python objects, so namespace() attribute assignment
// and aliasing behave as in jinja2. Lists and dicts are immutable once built; namespaces are the only
// mutable containers.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "template/limits.h"

namespace autoglm::jinja {

class value;
struct dict_data;

// Positional and keyword arguments of a call, already evaluated.
struct call_args {
  std::vector<value> positional;
  std::vector<std::pair<std::string, value>> keyword;
  const value* kw(const std::string& name) const;
  // The argument at position `pos`, else keyword `name`, else nullptr.
  const value* get(size_t pos, const std::string& name) const;
};

using native_fn = std::function<value(const call_args&)>;

// Process-wide counts of the heap objects that can take part in reference cycles (a macro's closure owns its
// defining scope, which owns the macro; a namespace attribute can hold the namespace). Tests compare them
// before and after rendering to prove that a render retains nothing.
struct live_objects {
  int64_t scopes = 0, dicts = 0, callables = 0;
};
live_objects count_live_objects();

namespace detail {
enum live_kind { live_scope, live_dict, live_callable, n_live_kinds };
extern std::atomic<int64_t> n_live[n_live_kinds];
// A member that counts its owner's instances.
template <live_kind K>
struct live_counter {
  live_counter() { n_live[K].fetch_add(1, std::memory_order_relaxed); }
  live_counter(const live_counter&) : live_counter() {}
  live_counter& operator=(const live_counter&) { return *this; }
  ~live_counter() { n_live[K].fetch_sub(1, std::memory_order_relaxed); }
};
}  // namespace detail

enum class kind { undefined, none, boolean, integer, floating, string, list, dict, callable };

class value {
 public:
  value() = default;  // undefined
  static value none();
  static value boolean(bool b);
  static value integer(int64_t i);
  static value floating(double d);
  static value string(std::string s);
  static value list(std::vector<value> items = {});
  static value dict();
  static value namespace_object();
  static value callable(native_fn fn, std::string name);
  // Throws autoglm::error when the JSON is nested deeper than max_depth (checked on the way down, so a deep
  // document costs no stack).
  static value from_json(const nlohmann::json& j, int32_t max_depth);
  static value from_json(const nlohmann::ordered_json& j, int32_t max_depth);

  kind type() const { return kind_; }
  bool is_undefined() const { return kind_ == kind::undefined; }
  bool is_none() const { return kind_ == kind::none; }
  bool is_string() const { return kind_ == kind::string; }
  bool is_list() const { return kind_ == kind::list; }
  bool is_dict() const { return kind_ == kind::dict; }
  bool is_number() const { return kind_ == kind::integer || kind_ == kind::floating; }
  bool is_namespace() const { return kind_ == kind::dict && namespace_; }
  bool is_callable() const { return kind_ == kind::callable; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return i_; }
  double as_double() const { return kind_ == kind::floating ? d_ : static_cast<double>(i_); }
  const std::string& as_string() const { return *s_; }
  const std::vector<value>& as_list() const { return *list_; }
  dict_data& as_dict() const { return *dict_; }
  const native_fn& as_callable() const { return *fn_; }
  const std::string& callable_name() const { return *s_; }
  // A handle on a dict's storage, so the interpreter can keep namespaces alive and empty them when a render ends.
  std::shared_ptr<dict_data> dict_handle() const { return dict_; }

  // Nesting: 0 for scalars, 1 + the deepest item for lists and dicts. A namespace counts 1: it can change after
  // it was stored elsewhere, so its depth is not known to its holders; the interpreter keeps every namespace
  // alive until the render ends, so freeing a value never recurses into one, and the walks below stop at
  // max_nesting whatever the shape (a namespace can even hold itself).
  int32_t depth() const;

  bool truthy() const;
  // str(): what {{ x }} prints (Python str; undefined prints nothing). repr(): Python repr, used for items
  // inside printed lists/dicts. Both spend `b` (their size and nesting are bounded by its limits).
  std::string str(budget& b) const;
  std::string repr(budget& b) const;
  std::string type_name() const;

 private:
  kind kind_ = kind::undefined;
  bool b_ = false;
  bool namespace_ = false;
  int32_t depth_ = 0;  // lists: see depth()
  int64_t i_ = 0;
  double d_ = 0;
  std::shared_ptr<const std::string> s_;
  std::shared_ptr<const std::vector<value>> list_;
  std::shared_ptr<dict_data> dict_;
  std::shared_ptr<native_fn> fn_;
};

// An insertion-ordered string -> value table (dict items, scope variables). Past a few entries it keeps a hash
// index, so a lookup stays O(1) however many keys a client puts in a message or in chat_template_kwargs.
class ordered_table {
 public:
  using entry = std::pair<std::string, value>;
  value* find(const std::string& key);
  const value* find(const std::string& key) const;
  // Replaces the value of an existing key in place, else appends.
  void set(const std::string& key, value v);
  const std::vector<entry>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  // Moves every entry out, leaving the table empty (the interpreter breaks reference cycles this way).
  std::vector<entry> take();

 private:
  static constexpr size_t index_from = 16;  // a for loop's `loop` dict has 12 entries: it stays a plain scan
  std::vector<entry> entries_;
  std::unordered_map<std::string, size_t> index_;  // key -> position in entries_; empty below index_from
};

struct dict_data {
  ordered_table items;
  int32_t depth = 1;  // 1 + the deepest value set (see value::depth)
  detail::live_counter<detail::live_dict> counted_;
  value* find(const std::string& key) { return items.find(key); }
  const value* find(const std::string& key) const { return items.find(key); }
  void set(const std::string& key, value v);
};

// Python ==, and ordering (-1, 0, 1) for numbers, strings and lists (nullopt for types that do not order). Both
// spend by the items and bytes they compare; budget errors propagate as autoglm::error.
bool values_equal(const value& a, const value& b, budget& spend);
std::optional<int> compare_values(const value& a, const value& b, budget& spend);

struct json_dump_options {
  int64_t indent = -1;  // < 0: single line
  std::string item_separator;
  std::string key_separator;
  bool ensure_ascii = false;
  bool sort_keys = false;
};
// Python json.dumps (HF's tojson): separators ", " / ": " (indent: "," / ": "), ensure_ascii=False by default.
std::string to_json_text(const value& v, const json_dump_options& opts, budget& spend);
std::string python_float_repr(double d);

// UTF-8 helpers: Python strings index code points. A code point here is a lead byte and the continuation bytes
// its value announces (clamped to the end of the string), so invalid UTF-8 still splits deterministically.
size_t utf8_next(std::string_view s, size_t pos);  // byte offset of the code point after the one at pos
size_t utf8_length(std::string_view s);

// Substring search in O(|hay| + |needle|): std::string::find is O(|hay| * |needle|) on inputs such as
// "aaa...ab" in "aaaa...", where one call on two large strings could run for hours. Keeps a view of `needle`.
class substring_finder {
 public:
  explicit substring_finder(std::string_view needle);
  size_t find(std::string_view hay, size_t from = 0) const;  // std::string::npos when absent
  size_t rfind(std::string_view hay) const;

 private:
  static constexpr size_t short_needle = 16;  // up to this, the library search (at most 16 compares a byte)
  std::string_view needle_;
  std::vector<size_t> border_;  // KMP: length of the longest proper border of needle_[0..i]
};

}  // namespace autoglm::jinja

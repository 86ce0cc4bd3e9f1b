// jinja/value.h: the runtime value of the Jinja subset (Python semantics, as jinja2 under HF transformers):
// undefined, none, bool, int, float, string, list, dict (insertion ordered), namespace, callable.
// Lists and dicts are shared by reference like Python objects, so namespace() attribute assignment
// and aliasing behave as in jinja2.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace autoglm::jinja {

class value;

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

struct dict_data {
  std::vector<std::pair<std::string, value>> items;
  detail::live_counter<detail::live_dict> counted_;
  value* find(const std::string& key);
  const value* find(const std::string& key) const;
  void set(const std::string& key, value v);
};

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
  static value from_json(const nlohmann::json& j);
  static value from_json(const nlohmann::ordered_json& j);

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
  std::vector<value>& as_list() const { return *list_; }
  dict_data& as_dict() const { return *dict_; }
  const native_fn& as_callable() const { return *fn_; }
  const std::string& callable_name() const { return *s_; }
  // A non-owning handle on a dict's storage, so the interpreter can empty namespaces at the end of a render.
  std::weak_ptr<dict_data> dict_handle() const { return dict_; }

  bool truthy() const;
  // str(): what {{ x }} prints (Python str; undefined prints nothing).
  std::string str() const;
  // repr(): Python repr, used for items inside printed lists/dicts.
  std::string repr() const;
  std::string type_name() const;

 private:
  kind kind_ = kind::undefined;
  bool b_ = false;
  bool namespace_ = false;
  int64_t i_ = 0;
  double d_ = 0;
  std::shared_ptr<const std::string> s_;
  std::shared_ptr<std::vector<value>> list_;
  std::shared_ptr<dict_data> dict_;
  std::shared_ptr<native_fn> fn_;
};

bool values_equal(const value& a, const value& b);
// Python ordering for numbers, strings and lists; throws autoglm::error for other types.
int compare_values(const value& a, const value& b);

struct json_dump_options {
  int indent = -1;  // < 0: single line
  std::string item_separator;
  std::string key_separator;
  bool ensure_ascii = false;
  bool sort_keys = false;
};
// Python json.dumps (HF's tojson): separators ", " / ": " (indent: "," / ": "), ensure_ascii=False by default.
std::string to_json_text(const value& v, const json_dump_options& opts);
std::string python_float_repr(double d);

// UTF-8 helpers: Python strings index code points.
std::vector<std::string> utf8_chars(const std::string& s);
size_t utf8_length(const std::string& s);

}  // namespace autoglm::jinja

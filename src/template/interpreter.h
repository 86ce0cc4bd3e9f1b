// template/interpreter.h: walks the statement tree against a context, producing the rendered text.
// Internal to the jinja folder; the public entry point is chat_template.h.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "template/ast.h"

namespace autoglm::jinja {

// A variable scope. For-loop iterations and macro calls get a child scope (so their `set`s stay local,
// as in jinja2); if-blocks write to the enclosing one.
struct scope {
  std::shared_ptr<scope> parent;
  ordered_table vars;
  detail::live_counter<detail::live_scope> counted_;
  const value* lookup(const std::string& name) const;
  void set(const std::string& name, value v) { vars.set(name, std::move(v)); }
};
using scope_ptr = std::shared_ptr<scope>;

// One render. Closures capture scopes (a macro its defining scope, caller() the call site's) and are stored in
// scopes, and namespace attributes can hold any value, so a render builds reference cycles of shared_ptrs
// (the root scope owns each top-level macro, which owns the root scope). The interpreter records every
// scope a closure captures and keeps every namespace it creates alive, and render() empties them when it
// returns or throws: nothing made by a render is reachable afterwards (it returns a string), so this frees all
// of it. Every step spends the render's budget (limits.h); the limits are the caller's and must outlive it.
class interpreter {
 public:
  explicit interpreter(const template_limits& limits) : budget_(limits) {}

  // Renders `body` with `root` as the top-level scope (context variables and install_globals already set).
  std::string render(const block& body, scope_ptr root);

  // Shared with builtins.cpp.
  value eval(const expr& e, const scope_ptr& s);
  value apply_filter(const std::string& name, const value& operand, const call_args& args, int line, const scope_ptr& s);
  bool apply_test(const std::string& name, const value& operand, const call_args& args, int line);
  value call_method(const value& object, const std::string& name, const call_args& args, int line, bool* found);
  value call_value(const value& callee, const call_args& args, int line, const std::string& what);
  value eval_subscript(const value& obj, const value& key, int line);
  void install_globals(scope& root);

  // Values built by the template go through these, which check them against the limits and spend the budget.
  budget& spend() { return budget_; }
  value make_string(std::string s);
  value make_list(std::vector<value> items);
  std::string str(const value& v) { return v.str(budget_); }
  bool equal(const value& a, const value& b) { return values_equal(a, b, budget_); }
  std::vector<value> iterate(const value& v, int line);
  size_t length_of(const value& v, int line);
  value slice_of(const value& v, const value& start, const value& stop, const value& step, int line);

  [[noreturn]] static void fail(int line, const std::string& msg);

 private:
  // One level of C++ recursion (statement, expression, filter, call), counted against max_render_depth.
  class depth_guard {
   public:
    depth_guard(interpreter& in, int line);
    ~depth_guard() { --in_.render_depth_; }
    depth_guard(const depth_guard&) = delete;
    depth_guard& operator=(const depth_guard&) = delete;

   private:
    interpreter& in_;
  };

  // One macro or caller() call, counted against max_call_depth.
  class call_guard {
   public:
    call_guard(interpreter& in, int line);
    ~call_guard() { --in_.call_depth_; }
    call_guard(const call_guard&) = delete;
    call_guard& operator=(const call_guard&) = delete;

   private:
    interpreter& in_;
  };

  enum class flow { normal, break_, continue_ };
  flow exec_block(const block& b, const scope_ptr& s, std::string& out);
  flow exec(const stmt& st, const scope_ptr& s, std::string& out);
  flow exec_for(const stmt& st, const scope_ptr& s, std::string& out);
  void exec_set(const stmt& st, const scope_ptr& s, value v);
  void bind_targets(const std::vector<std::string>& targets, const value& v, scope& s, int line);
  // Appends rendered text, bounded by max_output_bytes.
  void emit(std::string& out, std::string_view text);
  value make_macro(const stmt& st, const scope_ptr& defining);
  call_args eval_args(const expr& e, size_t first, const scope_ptr& s);
  value eval_attr(const value& obj, const std::string& name, int line);
  value eval_binary(const expr& e, const scope_ptr& s);
  bool contains(const value& container, const value& item, int line);
  value eval_node(const expr& e, const scope_ptr& s);
  // The scope `s` as a closure captures it, recorded for release_cycles().
  const scope_ptr& capture(const scope_ptr& s);
  void release_cycles();

  budget budget_;
  int render_depth_ = 0;
  int call_depth_ = 0;
  std::vector<std::weak_ptr<scope>> captured_scopes_;
  // Strong: a namespace is freed only by release_cycles, after it was emptied, so freeing a value never
  // recurses through a chain of namespaces (whose depth no value records, see value::depth).
  std::vector<std::shared_ptr<dict_data>> namespaces_;
};

}  // namespace autoglm::jinja

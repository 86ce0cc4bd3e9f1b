// jinja/interpreter.h: walks the statement tree against a context, producing the rendered text.
// Internal to the jinja folder; the public entry point is chat_template.h.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja/ast.h"

namespace autoglm::jinja {

// A variable scope. For-loop iterations and macro calls get a child scope (so their `set`s stay local,
// as in jinja2); if-blocks write to the enclosing one.
struct scope {
  std::shared_ptr<scope> parent;
  std::vector<std::pair<std::string, value>> vars;
  detail::live_counter<detail::live_scope> counted_;
  const value* lookup(const std::string& name) const;
  void set(const std::string& name, value v);
};
using scope_ptr = std::shared_ptr<scope>;

// One render. Closures capture scopes (a macro its defining scope, caller() the call site's) and are stored in
// scopes, and namespace attributes can hold any value, so a render builds reference cycles of shared_ptrs
// (the root scope owns each top-level macro, which owns the root scope). The interpreter records every
// scope a closure captures and every namespace it creates, and render() empties them when it returns or
// throws: nothing made by a render is reachable afterwards (it returns a string), so this frees all of it.
class interpreter {
 public:
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

  [[noreturn]] static void fail(int line, const std::string& msg);

 private:
  enum class flow { normal, break_, continue_ };
  flow exec_block(const block& b, const scope_ptr& s, std::string& out);
  flow exec(const stmt& st, const scope_ptr& s, std::string& out);
  flow exec_for(const stmt& st, const scope_ptr& s, std::string& out);
  void exec_set(const stmt& st, const scope_ptr& s, value v);
  value make_macro(const stmt& st, const scope_ptr& defining);
  call_args eval_args(const expr& e, size_t first, const scope_ptr& s);
  value eval_attr(const value& obj, const std::string& name, int line);
  value eval_binary(const expr& e, const scope_ptr& s);
  // The scope `s` as a closure captures it, recorded for release_cycles().
  const scope_ptr& capture(const scope_ptr& s);
  void release_cycles();

  int depth_ = 0;
  std::vector<std::weak_ptr<scope>> captured_scopes_;
  std::vector<std::weak_ptr<dict_data>> namespaces_;
};

// Helpers used by both interpreter.cpp and builtins.cpp.
std::vector<value> iterate(const value& v, int line);
size_t length_of(const value& v, int line);
value slice_of(const value& v, const value& start, const value& stop, const value& step, int line);

}  // namespace autoglm::jinja

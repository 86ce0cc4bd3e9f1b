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
  const value* lookup(const std::string& name) const;
  void set(const std::string& name, value v);
};
using scope_ptr = std::shared_ptr<scope>;

class interpreter {
 public:
  // Renders `body` with `root` as the top-level scope (context variables and globals already set).
  std::string render(const block& body, scope_ptr root);

  // Shared with builtins.cpp.
  value eval(const expr& e, const scope_ptr& s);
  value apply_filter(const std::string& name, const value& operand, const call_args& args, int line, const scope_ptr& s);
  bool apply_test(const std::string& name, const value& operand, const call_args& args, int line);
  value call_method(const value& object, const std::string& name, const call_args& args, int line, bool* found);
  value call_value(const value& callee, const call_args& args, int line, const std::string& what);
  value eval_subscript(const value& obj, const value& key, int line);
  static void install_globals(scope& root);

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

  int depth_ = 0;
};

// Helpers used by both interpreter.cpp and builtins.cpp.
std::vector<value> iterate(const value& v, int line);
size_t length_of(const value& v, int line);
value slice_of(const value& v, const value& start, const value& stop, const value& step, int line);

}  // namespace autoglm::jinja

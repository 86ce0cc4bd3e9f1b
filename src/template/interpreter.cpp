// template/interpreter.cpp: statement execution and expression evaluation (jinja2 semantics with the default
// Undefined: undefined names print empty, are falsy and iterate as empty; attribute access on them is undefined).
// Every statement, expression, iteration and value built spends the render's budget (limits.h).
#include "template/interpreter.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <optional>

#include "core/error.h"

namespace autoglm::jinja {

// Steps charged for the allocations behind a loop iteration (a scope), its `loop` object (a 12-entry dict and a
// callable) and a macro call (a scope, varargs, kwargs), so that a step costs roughly the same time whatever
// the template does (20-70 ns of CPU per step for loops, expressions, calls and methods alike).
constexpr int64_t iteration_steps = 4;
constexpr int64_t loop_object_steps = 12;
constexpr int64_t call_steps = 4;

const value* scope::lookup(const std::string& name) const {
  for (const scope* s = this; s; s = s->parent.get())
    if (const value* v = s->vars.find(name)) return v;
  return nullptr;
}

void interpreter::fail(int line, const std::string& msg) {
  throw autoglm::error("chat template line " + std::to_string(line) + ": " + msg);
}

interpreter::depth_guard::depth_guard(interpreter& in, int line) : in_(in) {
  in.budget_.set_line(line);
  if (++in.render_depth_ > in.budget_.limits().max_render_depth) {
    // The destructor does not run for a throwing constructor.
    --in.render_depth_;
    in.budget_.fail("rendering nested deeper than " + std::to_string(in.budget_.limits().max_render_depth) + " levels");
  }
}

value interpreter::make_string(std::string s) {
  budget_.new_string(s.size());
  return value::string(std::move(s));
}

value interpreter::make_list(std::vector<value> items) {
  budget_.new_items(items.size());
  return value::list(std::move(items));
}

std::vector<value> interpreter::iterate(const value& v, int line) {
  switch (v.type()) {
    case kind::undefined: return {};
    case kind::list: budget_.step(static_cast<int64_t>(v.as_list().size())); return v.as_list();
    case kind::dict: {
      const auto& entries = v.as_dict().items.entries();
      budget_.new_items(entries.size());
      std::vector<value> keys;
      keys.reserve(entries.size());
      for (const auto& kv : entries) keys.push_back(value::string(kv.first));
      return keys;
    }
    case kind::string: {
      const std::string& s = v.as_string();
      budget_.scan(s.size());
      budget_.new_items(utf8_length(s));
      std::vector<value> chars;
      for (size_t i = 0; i < s.size();) {
        size_t next = utf8_next(s, i);
        chars.push_back(value::string(s.substr(i, next - i)));
        i = next;
      }
      return chars;
    }
    default: fail(line, "'" + v.type_name() + "' object is not iterable");
  }
}

size_t interpreter::length_of(const value& v, int line) {
  switch (v.type()) {
    case kind::undefined: return 0;
    case kind::list: return v.as_list().size();
    case kind::dict: return v.as_dict().items.size();
    case kind::string: budget_.scan(v.as_string().size()); return utf8_length(v.as_string());
    default: fail(line, "object of type '" + v.type_name() + "' has no length");
  }
}

// Python slice semantics (negative indices and steps, clamping) over list items or code points.
value interpreter::slice_of(const value& v, const value& start, const value& stop, const value& step, int line) {
  auto as_index = [&](const value& x, const char* what) -> std::optional<int64_t> {
    if (x.is_undefined() || x.is_none()) return std::nullopt;
    if (x.type() != kind::integer) fail(line, std::string("slice ") + what + " must be an integer");
    return x.as_int();
  };
  int64_t n;
  if (v.is_string()) {
    budget_.scan(v.as_string().size());
    n = static_cast<int64_t>(utf8_length(v.as_string()));
  } else if (v.is_list()) {
    n = static_cast<int64_t>(v.as_list().size());
  } else if (v.is_undefined()) {
    return value();
  } else {
    fail(line, "cannot slice a " + v.type_name());
  }
  int64_t st = as_index(step, "step").value_or(1);
  if (st == 0) fail(line, "slice step cannot be zero");
  auto clamp = [&](std::optional<int64_t> x, int64_t dflt) {
    if (!x) return dflt;
    int64_t i = *x < 0 ? (*x < -n ? -1 : *x + n) : *x;
    if (st > 0) return std::clamp<int64_t>(i, 0, n);
    return std::clamp<int64_t>(i, -1, n - 1);
  };
  int64_t b = clamp(as_index(start, "start"), st > 0 ? 0 : n - 1);
  int64_t e = clamp(as_index(stop, "stop"), st > 0 ? n : -1);
  // The selected positions are b, b + st, ... while before e: `count` of them (no index arithmetic can overflow).
  const uint64_t magnitude = st > 0 ? static_cast<uint64_t>(st) : static_cast<uint64_t>(-(st + 1)) + 1;
  uint64_t count = 0;
  if (st > 0 && b < e) count = static_cast<uint64_t>(e - b - 1) / magnitude + 1;
  if (st < 0 && b > e) count = static_cast<uint64_t>(b - e - 1) / magnitude + 1;
  auto position = [&](uint64_t k) {
    int64_t offset = static_cast<int64_t>(k * magnitude);
    return st > 0 ? b + offset : b - offset;
  };
  if (v.is_list()) {
    budget_.check_items(count);
    std::vector<value> items;
    items.reserve(count);
    for (uint64_t k = 0; k < count; ++k) items.push_back(v.as_list()[static_cast<size_t>(position(k))]);
    return make_list(std::move(items));
  }
  // Strings: one forward walk over the code points, keeping the byte offsets of the selected ones in order.
  const std::string& s = v.as_string();
  const int64_t lowest = count ? std::min(position(0), position(count - 1)) : 0;
  std::vector<size_t> starts;
  starts.reserve(count);
  size_t pos = 0;
  for (int64_t i = 0; i < n && starts.size() < count; ++i, pos = utf8_next(s, pos))
    if (i >= lowest && static_cast<uint64_t>(i - lowest) % magnitude == 0) starts.push_back(pos);
  if (st < 0) std::reverse(starts.begin(), starts.end());
  std::string out;
  for (size_t p : starts) out.append(s, p, utf8_next(s, p) - p);
  return make_string(std::move(out));
}

std::string interpreter::render(const block& body, scope_ptr root) {
  struct release_guard {
    interpreter& in;
    ~release_guard() { in.release_cycles(); }
  } guard{*this};
  capture(root);  // its globals and context are freed with it even if only a cycle holds it
  std::string out;
  if (exec_block(body, root, out) != flow::normal) fail(0, "'break'/'continue' outside a for loop");
  return out;
}

const scope_ptr& interpreter::capture(const scope_ptr& s) {
  // A scope defining several macros in a row is recorded once.
  if (captured_scopes_.empty() || captured_scopes_.back().lock() != s) captured_scopes_.push_back(s);
  return s;
}

void interpreter::release_cycles() {
  // Hold everything first: emptying one scope may destroy closures that own other recorded scopes, and while
  // every namespace is held, freeing a value stops at the first namespace it reaches (no deep recursion).
  std::vector<scope_ptr> scopes;
  for (auto& w : captured_scopes_)
    if (auto s = w.lock()) scopes.push_back(std::move(s));
  std::vector<std::shared_ptr<dict_data>> spaces = std::move(namespaces_);
  captured_scopes_.clear();
  namespaces_.clear();
  std::vector<ordered_table::entry> dropped;
  for (auto& s : scopes) {
    for (auto& kv : s->vars.take()) dropped.push_back(std::move(kv));
    s->parent.reset();
  }
  for (auto& d : spaces)
    for (auto& kv : d->items.take()) dropped.push_back(std::move(kv));
  dropped.clear();
}

void interpreter::emit(std::string& out, std::string_view text) {
  budget_.scan(text.size());
  if (text.size() > budget_.limits().max_output_bytes - std::min(out.size(), budget_.limits().max_output_bytes))
    budget_.fail("rendered text exceeds the limit of " + std::to_string(budget_.limits().max_output_bytes) + " bytes");
  out += text;
}

interpreter::flow interpreter::exec_block(const block& b, const scope_ptr& s, std::string& out) {
  for (const auto& st : b) {
    flow f = exec(*st, s, out);
    if (f != flow::normal) return f;
  }
  return flow::normal;
}

interpreter::flow interpreter::exec(const stmt& st, const scope_ptr& s, std::string& out) {
  depth_guard guard(*this, st.line);
  budget_.step();
  switch (st.type) {
    case st::text: emit(out, st.text); return flow::normal;
    case st::output: emit(out, str(eval(*st.value, s))); return flow::normal;
    case st::if_:
      for (size_t i = 0; i < st.conditions.size(); ++i)
        if (eval(*st.conditions[i], s).truthy()) return exec_block(st.bodies[i], s, out);
      if (st.bodies.size() > st.conditions.size()) return exec_block(st.bodies.back(), s, out);
      return flow::normal;
    case st::for_: return exec_for(st, s, out);
    case st::set: exec_set(st, s, eval(*st.value, s)); return flow::normal;
    case st::set_block: {
      std::string body;
      if (exec_block(st.bodies[0], s, body) != flow::normal) fail(st.line, "'break'/'continue' inside a set block");
      value v = make_string(std::move(body));
      if (st.value) {
        auto inner = std::make_shared<scope>();
        inner->parent = s;
        inner->set("\x01" "body", v);
        v = eval(*st.value, inner);
      }
      s->set(st.targets[0], std::move(v));
      return flow::normal;
    }
    case st::macro: s->set(st.text, make_macro(st, s)); return flow::normal;
    case st::call_block: {
      // caller() renders the call block's body; it is passed to the macro as the `caller` variable.
      const expr& call = *st.value;
      value callee = eval(*call.args[0], s);
      const stmt* body_owner = &st;
      value caller = value::callable(
          [this, body_owner, s = capture(s)](const call_args& args) -> value {
            call_guard calls(*this, body_owner->line);
            auto inner = std::make_shared<scope>();
            inner->parent = s;
            for (size_t i = 0; i < body_owner->params.size(); ++i) {
              const value* a = args.get(i, body_owner->params[i].name);
              value v = a ? *a : (body_owner->params[i].default_value ? eval(*body_owner->params[i].default_value, inner) : value());
              inner->set(body_owner->params[i].name, std::move(v));
            }
            std::string text;
            exec_block(body_owner->bodies[0], inner, text);
            return make_string(std::move(text));
          },
          "caller");
      call_args args = eval_args(call, 1, s);
      args.keyword.emplace_back("\x01" "caller", caller);
      emit(out, str(call_value(callee, args, st.line, "call block")));
      return flow::normal;
    }
    case st::filter_block: {
      std::string body;
      if (exec_block(st.bodies[0], s, body) != flow::normal) fail(st.line, "'break'/'continue' inside a filter block");
      auto inner = std::make_shared<scope>();
      inner->parent = s;
      inner->set("\x01" "body", make_string(std::move(body)));
      emit(out, str(eval(*st.value, inner)));
      return flow::normal;
    }
    case st::break_: return flow::break_;
    case st::continue_: return flow::continue_;
  }
  return flow::normal;
}

void interpreter::bind_targets(const std::vector<std::string>& targets, const value& v, scope& s, int line) {
  if (targets.size() == 1) {
    s.set(targets[0], v);
    return;
  }
  std::vector<value> parts = iterate(v, line);
  if (parts.size() != targets.size())
    fail(line, "cannot unpack " + std::to_string(parts.size()) + " values into " + std::to_string(targets.size()) + " names");
  for (size_t i = 0; i < targets.size(); ++i) s.set(targets[i], parts[i]);
}

interpreter::flow interpreter::exec_for(const stmt& st, const scope_ptr& s, std::string& out) {
  value seq = eval(*st.value, s);
  std::vector<value> items = iterate(seq, st.line);
  if (!st.conditions.empty()) {
    std::vector<value> kept;
    for (auto& item : items) {
      auto probe = std::make_shared<scope>();
      probe->parent = s;
      bind_targets(st.targets, item, *probe, st.line);
      if (eval(*st.conditions[0], probe).truthy()) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    if (st.bodies.size() > 1) return exec_block(st.bodies[1], s, out);
    return flow::normal;
  }
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    budget_.set_line(st.line);
    // An iteration allocates a scope (and the loop object): it costs as much as several expression steps.
    budget_.step(iteration_steps);
    auto inner = std::make_shared<scope>();
    inner->parent = s;
    if (st.uses_loop) {
      budget_.step(loop_object_steps);
      value loop = value::dict();
      auto& d = loop.as_dict();
      d.set("index", value::integer(i + 1));
      d.set("index0", value::integer(i));
      d.set("revindex", value::integer(n - i));
      d.set("revindex0", value::integer(n - i - 1));
      d.set("first", value::boolean(i == 0));
      d.set("last", value::boolean(i == n - 1));
      d.set("length", value::integer(n));
      d.set("depth", value::integer(1));
      d.set("depth0", value::integer(0));
      d.set("previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : value());
      d.set("nextitem", i + 1 < n ? items[static_cast<size_t>(i + 1)] : value());
      d.set("cycle", value::callable(
                         [i, line = st.line](const call_args& a) -> value {
                           if (a.positional.empty()) fail(line, "loop.cycle() needs at least one argument");
                           return a.positional[static_cast<size_t>(i) % a.positional.size()];
                         },
                         "loop.cycle"));
      inner->set("loop", loop);
    }
    bind_targets(st.targets, items[static_cast<size_t>(i)], *inner, st.line);
    flow f = exec_block(st.bodies[0], inner, out);
    if (f == flow::break_) break;
  }
  return flow::normal;
}

void interpreter::exec_set(const stmt& st, const scope_ptr& s, value v) {
  if (!st.text.empty()) {
    const value* target = s->lookup(st.targets[0]);
    if (!target || !target->is_namespace())
      fail(st.line, "cannot assign attribute '" + st.text + "' on '" + st.targets[0] + "': not a namespace()");
    target->as_dict().set(st.text, std::move(v));
    return;
  }
  bind_targets(st.targets, v, *s, st.line);
}

interpreter::call_guard::call_guard(interpreter& in, int line) : in_(in) {
  in.budget_.set_line(line);
  if (++in.call_depth_ > in.budget_.limits().max_call_depth) {
    --in.call_depth_;
    in.budget_.fail("macro calls nested deeper than " + std::to_string(in.budget_.limits().max_call_depth) + " levels (recursion?)");
  }
}

value interpreter::make_macro(const stmt& st, const scope_ptr& defining) {
  const stmt* m = &st;
  return value::callable(
      [this, m, defining = capture(defining)](const call_args& args) -> value {
        call_guard calls(*this, m->line);
        budget_.step(call_steps);
        auto inner = std::make_shared<scope>();
        inner->parent = defining;
        std::vector<value> varargs;
        for (size_t i = 0; i < args.positional.size(); ++i) {
          if (i < m->params.size()) inner->set(m->params[i].name, args.positional[i]);
          else varargs.push_back(args.positional[i]);
        }
        value kwargs = value::dict();
        for (const auto& [k, v] : args.keyword) {
          if (k == "\x01" "caller") {
            inner->set("caller", v);
            continue;
          }
          bool is_param = false;
          for (const auto& p : m->params) is_param |= p.name == k;
          if (is_param) inner->set(k, v);
          else kwargs.as_dict().set(k, v);
        }
        for (size_t i = args.positional.size(); i < m->params.size(); ++i) {
          const auto& p = m->params[i];
          if (!inner->vars.find(p.name)) inner->set(p.name, p.default_value ? eval(*p.default_value, inner) : value());
        }
        inner->set("varargs", value::list(std::move(varargs)));
        inner->set("kwargs", kwargs);
        std::string text;
        exec_block(m->bodies[0], inner, text);
        return make_string(std::move(text));
      },
      st.text);
}

call_args interpreter::eval_args(const expr& e, size_t first, const scope_ptr& s) {
  call_args a;
  size_t n_kw = e.kwnames.size();
  size_t n_pos = e.args.size() - first - n_kw;
  for (size_t i = 0; i < n_pos; ++i) a.positional.push_back(eval(*e.args[first + i], s));
  for (size_t i = 0; i < n_kw; ++i) a.keyword.emplace_back(e.kwnames[i], eval(*e.args[first + n_pos + i], s));
  return a;
}

value interpreter::call_value(const value& callee, const call_args& args, int line, const std::string& what) {
  if (callee.is_undefined()) fail(line, "'" + what + "' is undefined");
  if (!callee.is_callable()) fail(line, "'" + what + "' (a " + callee.type_name() + ") is not callable");
  depth_guard guard(*this, line);
  return callee.as_callable()(args);
}

static bool is_dict_method(const std::string& n) {
  return n == "items" || n == "keys" || n == "values" || n == "get";
}

value interpreter::eval_attr(const value& obj, const std::string& name, int line) {
  if (obj.is_dict()) {
    // As jinja2's getattr: dict methods win over keys of the same name (d.items is the method).
    if (!obj.is_namespace() && is_dict_method(name)) {
      value self = obj;
      return value::callable(
          [this, self, name, line](const call_args& a) {
            bool found = false;
            return call_method(self, name, a, line, &found);
          },
          name);
    }
    const value* v = obj.as_dict().find(name);
    return v ? *v : value();
  }
  if (obj.is_string() || obj.is_list()) {
    value self = obj;
    return value::callable(
        [this, self, name, line](const call_args& a) {
          bool found = false;
          value r = call_method(self, name, a, line, &found);
          if (!found) fail(line, "unsupported method '" + name + "' on " + self.type_name());
          return r;
        },
        name);
  }
  return value();
}

value interpreter::eval_subscript(const value& obj, const value& key, int line) {
  if (obj.is_dict()) {
    if (key.is_string()) {
      const value* v = obj.as_dict().find(key.as_string());
      if (v) return *v;
      return is_dict_method(key.as_string()) ? eval_attr(obj, key.as_string(), line) : value();
    }
    return value();
  }
  if (obj.is_list() || obj.is_string()) {
    if (key.type() == kind::integer || key.type() == kind::boolean) {
      int64_t i = key.type() == kind::boolean ? key.as_bool() : key.as_int();
      if (obj.is_list()) {
        int64_t n = static_cast<int64_t>(obj.as_list().size());
        if (i < 0) i += n;
        return (i >= 0 && i < n) ? obj.as_list()[static_cast<size_t>(i)] : value();
      }
      const std::string& s = obj.as_string();
      if (i < 0) i += static_cast<int64_t>(length_of(obj, line));
      if (i < 0) return value();
      // Walk to code point i (a string is not split into a list of characters to index it).
      size_t pos = 0;
      for (int64_t k = 0; k < i && pos < s.size(); ++k) pos = utf8_next(s, pos);
      budget_.scan(pos);
      if (pos >= s.size()) return value();
      return value::string(s.substr(pos, utf8_next(s, pos) - pos));
    }
    if (key.is_string()) return eval_attr(obj, key.as_string(), line);
    return value();
  }
  return value();
}

value interpreter::eval(const expr& e, const scope_ptr& s) {
  depth_guard guard(*this, e.line);
  budget_.step();
  value v = eval_node(e, s);
  // Every value the template can hold passes here: its nesting bounds how deep freeing or printing it recurses.
  budget_.check_depth(v.depth());
  return v;
}

value interpreter::eval_node(const expr& e, const scope_ptr& s) {
  switch (e.type) {
    case ex::literal: return e.lit;
    case ex::name: {
      const value* v = s->lookup(e.name);
      return v ? *v : value();
    }
    case ex::list: {
      std::vector<value> items;
      for (const auto& a : e.args) items.push_back(eval(*a, s));
      return make_list(std::move(items));
    }
    case ex::dict: {
      value d = value::dict();
      for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
        value k = eval(*e.args[i], s);
        if (!k.is_string()) fail(e.line, "unsupported: dict literal key of type " + k.type_name() + " (only strings)");
        d.as_dict().set(k.as_string(), eval(*e.args[i + 1], s));
      }
      budget_.new_items(d.as_dict().items.size());
      return d;
    }
    case ex::attr: return eval_attr(eval(*e.args[0], s), e.name, e.line);
    case ex::subscript: return eval_subscript(eval(*e.args[0], s), eval(*e.args[1], s), e.line);
    case ex::slice: {
      auto part = [&](size_t i) { return e.args[i] ? eval(*e.args[i], s) : value(); };
      return slice_of(eval(*e.args[0], s), part(1), part(2), part(3), e.line);
    }
    case ex::call: {
      const expr& callee = *e.args[0];
      call_args args = eval_args(e, 1, s);
      if (callee.type == ex::attr) {
        value obj = eval(*callee.args[0], s);
        if (obj.is_string() || obj.is_list() || (obj.is_dict() && !obj.is_namespace() && is_dict_method(callee.name))) {
          bool found = false;
          value r = call_method(obj, callee.name, args, e.line, &found);
          if (found) return r;
          fail(e.line, "unsupported method '" + callee.name + "' on " + obj.type_name());
        }
        return call_value(eval_attr(obj, callee.name, e.line), args, e.line, callee.name);
      }
      std::string what = callee.type == ex::name ? callee.name : "expression";
      return call_value(eval(callee, s), args, e.line, what);
    }
    case ex::filter: {
      value operand = eval(*e.args[0], s);
      return apply_filter(e.name, operand, eval_args(e, 1, s), e.line, s);
    }
    case ex::test: {
      bool r = apply_test(e.name, eval(*e.args[0], s), eval_args(e, 1, s), e.line);
      return value::boolean(e.negated ? !r : r);
    }
    case ex::unary: {
      value v = eval(*e.args[0], s);
      if (e.name == "not") return value::boolean(!v.truthy());
      if (v.type() == kind::integer) {
        if (e.name == "-" && v.as_int() == INT64_MIN) fail(e.line, "integer overflow in unary '-'");
        return value::integer(e.name == "-" ? -v.as_int() : v.as_int());
      }
      if (v.type() == kind::floating) return value::floating(e.name == "-" ? -v.as_double() : v.as_double());
      if (v.type() == kind::boolean) return value::integer(e.name == "-" ? -int64_t{v.as_bool()} : v.as_bool());
      fail(e.line, "bad operand type for unary " + e.name + ": " + v.type_name());
    }
    case ex::binary: return eval_binary(e, s);
    case ex::ternary:
      if (eval(*e.args[0], s).truthy()) return eval(*e.args[1], s);
      return e.args[2] ? eval(*e.args[2], s) : value();
  }
  return value();
}

bool interpreter::contains(const value& container, const value& item, int line) {
  switch (container.type()) {
    case kind::undefined: return false;
    case kind::string:
      if (!item.is_string()) fail(line, "'in <string>' requires a string on the left, got " + item.type_name());
      budget_.scan(container.as_string().size() + item.as_string().size());
      return substring_finder(item.as_string()).find(container.as_string()) != std::string::npos;
    case kind::list:
      for (const auto& x : container.as_list())
        if (equal(x, item)) return true;
      return false;
    case kind::dict: return item.is_string() && container.as_dict().find(item.as_string()) != nullptr;
    default: fail(line, "argument of type '" + container.type_name() + "' is not iterable");
  }
}

// Checked int64 arithmetic: Python integers do not overflow, ours fail instead of wrapping (or trapping, as
// INT64_MIN // -1 does).
static void check_overflow(bool overflowed, const std::string& op, int line) {
  if (overflowed) interpreter::fail(line, "integer overflow in '" + op + "'");
}

static value int_arith(const std::string& op, int64_t x, int64_t y, int line) {
  int64_t r = 0;
  if (op == "+" || op == "-" || op == "*") {
    bool overflowed = op == "+" ? __builtin_add_overflow(x, y, &r) : op == "-" ? __builtin_sub_overflow(x, y, &r) : __builtin_mul_overflow(x, y, &r);
    check_overflow(overflowed, op, line);
    return value::integer(r);
  }
  if (op == "//" || op == "%") {
    if (y == 0) interpreter::fail(line, "division by zero");
    if (x == INT64_MIN && y == -1) {
      if (op == "%") return value::integer(0);
      interpreter::fail(line, "integer overflow in '//'");
    }
    int64_t q = x / y;
    if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
    return value::integer(op == "//" ? q : x - q * y);  // |x - q*y| < |y|: no overflow
  }
  if (op == "**") {
    if (y < 0) return value::floating(std::pow(double(x), double(y)));
    // Square-and-multiply: at most 63 rounds whatever y is (a loop of y multiplications never ended on 2 ** 10**12).
    int64_t result = 1, base = x;
    for (int64_t e = y; e > 0; e >>= 1) {
      if (e & 1) check_overflow(__builtin_mul_overflow(result, base, &result), op, line);
      if (e > 1) check_overflow(__builtin_mul_overflow(base, base, &base), op, line);
    }
    return value::integer(result);
  }
  interpreter::fail(line, "unknown operator '" + op + "'");
}

value interpreter::eval_binary(const expr& e, const scope_ptr& s) {
  const std::string& op = e.name;
  if (op == "and") {
    value a = eval(*e.args[0], s);
    return a.truthy() ? eval(*e.args[1], s) : a;
  }
  if (op == "or") {
    value a = eval(*e.args[0], s);
    return a.truthy() ? a : eval(*e.args[1], s);
  }
  value a = eval(*e.args[0], s);
  value b = eval(*e.args[1], s);
  budget_.set_line(e.line);
  auto concat = [&](const std::string& x, const std::string& y) {
    budget_.check_string(x.size() + y.size());
    return make_string(x + y);
  };
  if (op == "~") return concat(str(a), str(b));
  if (op == "==") return value::boolean(equal(a, b));
  if (op == "!=") return value::boolean(!equal(a, b));
  if (op == "in") return value::boolean(contains(b, a, e.line));
  if (op == "not in") return value::boolean(!contains(b, a, e.line));
  if (op == "<" || op == ">" || op == "<=" || op == ">=") {
    std::optional<int> c = compare_values(a, b, budget_);
    if (!c) fail(e.line, "'" + op + "' not supported between " + a.type_name() + " and " + b.type_name());
    bool r = op == "<" ? *c < 0 : op == ">" ? *c > 0 : op == "<=" ? *c <= 0 : *c >= 0;
    return value::boolean(r);
  }
  if (a.is_undefined() || b.is_undefined()) fail(e.line, "undefined value in '" + op + "' expression");
  if (op == "+") {
    if (a.is_string() && b.is_string()) return concat(a.as_string(), b.as_string());
    if (a.is_list() && b.is_list()) {
      budget_.check_items(a.as_list().size() + b.as_list().size());
      std::vector<value> items = a.as_list();
      items.insert(items.end(), b.as_list().begin(), b.as_list().end());
      return make_list(std::move(items));
    }
  }
  if (op == "*") {
    const value* str = a.is_string() ? &a : b.is_string() ? &b : nullptr;
    const value* cnt = a.type() == kind::integer ? &a : b.type() == kind::integer ? &b : nullptr;
    if (str && cnt) {
      const std::string& unit = str->as_string();
      int64_t n = std::max<int64_t>(cnt->as_int(), 0);
      // Size first: 'x' * 10**9 fails here instead of allocating gigabytes.
      if (!unit.empty()) budget_.check_string(static_cast<uint64_t>(n) > SIZE_MAX / unit.size() ? SIZE_MAX : unit.size() * static_cast<size_t>(n));
      std::string r;
      if (!unit.empty()) r.reserve(unit.size() * static_cast<size_t>(n));
      for (int64_t i = 0; !unit.empty() && i < n; ++i) r += unit;
      return make_string(std::move(r));
    }
  }
  auto numeric = [](const value& v) { return v.is_number() || v.type() == kind::boolean; };
  if (!numeric(a) || !numeric(b)) {
    if (op == "%" && a.is_string()) fail(e.line, "unsupported: printf-style '%' string formatting");
    fail(e.line, "unsupported operand types for " + op + ": " + a.type_name() + " and " + b.type_name());
  }
  auto as_i = [](const value& v) { return v.type() == kind::boolean ? int64_t{v.as_bool()} : v.as_int(); };
  auto as_d = [](const value& v) { return v.type() == kind::boolean ? double(v.as_bool()) : v.as_double(); };
  bool ints = a.type() != kind::floating && b.type() != kind::floating;
  if (op == "/") {
    if (as_d(b) == 0) fail(e.line, "division by zero");
    return value::floating(as_d(a) / as_d(b));
  }
  if (ints) return int_arith(op, as_i(a), as_i(b), e.line);
  double x = as_d(a), y = as_d(b);
  if (op == "+") return value::floating(x + y);
  if (op == "-") return value::floating(x - y);
  if (op == "*") return value::floating(x * y);
  if (op == "//" || op == "%") {
    if (y == 0) fail(e.line, "division by zero");
    double q = std::floor(x / y);
    return value::floating(op == "//" ? q : x - q * y);
  }
  if (op == "**") return value::floating(std::pow(x, y));
  fail(e.line, "unknown operator '" + op + "'");
}

}  // namespace autoglm::jinja

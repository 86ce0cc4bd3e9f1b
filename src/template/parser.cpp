// template/parser.cpp: parses the supported statement set (if/for/set/macro/call/filter/break/continue,
// generation) and jinja2 expressions. Anything else is rejected with the construct's name and line.
#include "template/parser.h"

#include <algorithm>
#include <cstdlib>
#include <initializer_list>

#include "core/error.h"

namespace autoglm::jinja {

namespace {

class parser {
 public:
  parser(const std::vector<token>& t, int32_t max_nesting) : t_(t), max_nesting_(max_nesting) {}

  block parse_template() {
    block b = subparse({});
    if (peek().type != tok::eof) fail(peek().line, "unexpected tag");
    return b;
  }

 private:
  [[noreturn]] static void fail(int line, const std::string& msg) {
    throw autoglm::error("chat template line " + std::to_string(line) + ": " + msg);
  }

  [[noreturn]] void too_deep(int line) const {
    throw autoglm::error("chat template: nesting deeper than " + std::to_string(max_nesting_) + " levels at line " +
                         std::to_string(line));
  }

  // One level of parser recursion: an expression (every bracket opens one), a unary operator's operand, a
  // statement body. Recursive descent uses about a dozen C++ frames per bracket, so 100,000 nested "(" needs
  // this bound to fail cleanly instead of overflowing the stack.
  class nest_guard {
   public:
    explicit nest_guard(parser& p) : p_(p) {
      if (++p_.depth_ > p_.max_nesting_) p_.too_deep(p_.peek().line);
    }
    ~nest_guard() { --p_.depth_; }
    nest_guard(const nest_guard&) = delete;
    nest_guard& operator=(const nest_guard&) = delete;

   private:
    parser& p_;
  };

  // Records e's height once its arguments are in place. Operator, filter and attribute chains are built by loops
  // (a + b + c..., x|f|g..., a.b.c...), so a long chain costs no parser recursion but makes a tall tree that
  // evaluating and freeing recurse through: its height is bounded as it grows.
  expr_ptr finish(expr_ptr e) {
    int h = 0;
    for (const auto& a : e->args)
      if (a) h = std::max(h, a->height);
    e->height = h + 1;
    if (e->height > max_nesting_) too_deep(e->line);
    return e;
  }

  const token& peek(size_t k = 0) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  const token& next() {
    const token& t = t_[i_];
    if (i_ + 1 < t_.size()) ++i_;
    return t;
  }
  bool is_op(const char* s, size_t k = 0) const { return peek(k).type == tok::op && peek(k).text == s; }
  bool is_name(const char* s, size_t k = 0) const { return peek(k).type == tok::name && peek(k).text == s; }
  bool accept_op(const char* s) {
    if (!is_op(s)) return false;
    next();
    return true;
  }
  bool accept_name(const char* s) {
    if (!is_name(s)) return false;
    next();
    return true;
  }
  static std::string describe(const token& t) {
    switch (t.type) {
      case tok::eof: return "end of template";
      case tok::block_end: return "'%}'";
      case tok::var_end: return "'}}'";
      case tok::text: return "template text";
      case tok::string: return "string literal";
      default: return "'" + t.text + "'";
    }
  }
  void expect_op(const char* s) {
    if (!accept_op(s)) fail(peek().line, std::string("expected '") + s + "', got " + describe(peek()));
  }
  std::string expect_name() {
    if (peek().type != tok::name) fail(peek().line, "expected a name, got " + describe(peek()));
    return next().text;
  }
  void expect_block_end() {
    if (peek().type != tok::block_end) fail(peek().line, "expected '%}', got " + describe(peek()));
    next();
  }

  static expr_ptr make(ex type, int line) {
    auto e = std::make_unique<expr>();
    e->type = type;
    e->line = line;
    return e;
  }
  static stmt_ptr make_stmt(st type, int line) {
    auto s = std::make_unique<stmt>();
    s->type = type;
    s->line = line;
    return s;
  }

  // Parses until a block tag whose keyword is in `ends` (left unconsumed, positioned at its name) or eof.
  block subparse(std::initializer_list<const char*> ends) {
    nest_guard nested(*this);
    block out;
    while (true) {
      const token& t = peek();
      if (t.type == tok::eof) {
        if (ends.size()) fail(t.line, std::string("missing '{% ") + *(ends.end() - 1) + " %}' before end of template");
        return out;
      }
      if (t.type == tok::text) {
        auto s = make_stmt(st::text, t.line);
        s->text = next().text;
        out.push_back(std::move(s));
      } else if (t.type == tok::var_begin) {
        next();
        auto s = make_stmt(st::output, t.line);
        s->value = parse_tuple(true);
        if (peek().type != tok::var_end) fail(peek().line, "expected '}}', got " + describe(peek()));
        next();
        out.push_back(std::move(s));
      } else if (t.type == tok::block_begin) {
        const token& kw = peek(1);
        if (kw.type == tok::name)
          for (const char* e : ends)
            if (kw.text == e) {
              next();
              return out;
            }
        next();
        parse_statement(out);
      } else {
        fail(t.line, "unexpected " + describe(t));
      }
    }
  }

  void parse_statement(block& out) {
    const token& kw = peek();
    if (kw.type != tok::name) fail(kw.line, "expected a statement keyword, got " + describe(kw));
    const std::string k = kw.text;
    int line = kw.line;
    if (k == "if") return out.push_back(parse_if());
    if (k == "for") return out.push_back(parse_for());
    if (k == "set") return out.push_back(parse_set());
    if (k == "macro") return out.push_back(parse_macro());
    if (k == "call") return out.push_back(parse_call_block());
    if (k == "filter") return out.push_back(parse_filter_block());
    if (k == "break" || k == "continue") {
      if (loop_depth_ == 0) fail(line, "'{% " + k + " %}' outside a for loop");
      next();
      expect_block_end();
      return out.push_back(make_stmt(k == "break" ? st::break_ : st::continue_, line));
    }
    if (k == "generation") {
      // HF's assistant-mask marker: renders its body unchanged.
      next();
      expect_block_end();
      block body = subparse({"endgeneration"});
      next();
      expect_block_end();
      for (auto& s : body) out.push_back(std::move(s));
      return;
    }
    static const char* unsupported[] = {"extends", "block", "include", "import", "from", "with", "autoescape", "do", "trans"};
    for (const char* u : unsupported)
      if (k == u) fail(line, "unsupported statement '{% " + k + " %}'");
    fail(line, "unknown statement '{% " + k + " %}'");
  }

  stmt_ptr parse_if() {
    auto s = make_stmt(st::if_, next().line);
    s->conditions.push_back(parse_expression(true));
    expect_block_end();
    while (true) {
      s->bodies.push_back(subparse({"elif", "else", "endif"}));
      std::string k = next().text;
      if (k == "elif") {
        s->conditions.push_back(parse_expression(true));
        expect_block_end();
        continue;
      }
      expect_block_end();
      if (k == "else") {
        s->bodies.push_back(subparse({"endif"}));
        next();
        expect_block_end();
      }
      return s;
    }
  }

  std::vector<std::string> parse_targets() {
    std::vector<std::string> names;
    bool paren = accept_op("(");
    names.push_back(expect_name());
    while (accept_op(",")) {
      if (peek().type != tok::name || is_name("in")) break;
      names.push_back(expect_name());
    }
    if (paren) expect_op(")");
    return names;
  }

  stmt_ptr parse_for() {
    auto s = make_stmt(st::for_, next().line);
    s->targets = parse_targets();
    if (!accept_name("in")) fail(peek().line, "expected 'in' in for loop, got " + describe(peek()));
    s->value = parse_tuple(false);
    if (accept_name("if")) s->conditions.push_back(parse_expression(true));
    if (is_name("recursive")) fail(peek().line, "unsupported: recursive for loops");
    expect_block_end();
    ++loop_depth_;
    const int64_t loop_refs_before = n_loop_refs_;
    s->bodies.push_back(subparse({"else", "endfor"}));
    s->uses_loop = n_loop_refs_ > loop_refs_before;
    --loop_depth_;
    if (next().text == "else") {
      expect_block_end();
      s->bodies.push_back(subparse({"endfor"}));
      next();
    }
    expect_block_end();
    return s;
  }

  stmt_ptr parse_set() {
    int line = next().line;
    std::vector<std::string> targets;
    std::string attr;
    targets.push_back(expect_name());
    if (accept_op(".")) {
      attr = expect_name();
    } else {
      while (accept_op(",")) targets.push_back(expect_name());
    }
    if (accept_op("=")) {
      auto s = make_stmt(st::set, line);
      s->targets = std::move(targets);
      s->text = attr;
      s->value = parse_tuple(true);
      expect_block_end();
      return s;
    }
    if (!attr.empty() || targets.size() != 1) fail(line, "block set needs a single plain name");
    auto s = make_stmt(st::set_block, line);
    s->targets = std::move(targets);
    if (accept_op("|")) s->value = parse_filter_chain(line);
    expect_block_end();
    s->bodies.push_back(subparse({"endset"}));
    next();
    expect_block_end();
    return s;
  }

  std::vector<macro_param> parse_params() {
    std::vector<macro_param> params;
    expect_op("(");
    while (!is_op(")")) {
      macro_param p;
      p.name = expect_name();
      if (accept_op("=")) p.default_value = parse_expression(true);
      params.push_back(std::move(p));
      if (!accept_op(",")) break;
    }
    expect_op(")");
    return params;
  }

  stmt_ptr parse_macro() {
    auto s = make_stmt(st::macro, next().line);
    s->text = expect_name();
    s->params = parse_params();
    expect_block_end();
    int saved_depth = loop_depth_;
    loop_depth_ = 0;
    s->bodies.push_back(subparse({"endmacro"}));
    loop_depth_ = saved_depth;
    next();
    expect_block_end();
    return s;
  }

  stmt_ptr parse_call_block() {
    auto s = make_stmt(st::call_block, next().line);
    if (is_op("(")) s->params = parse_params();
    s->value = parse_expression(true);
    if (s->value->type != ex::call) fail(s->line, "'{% call %}' needs a macro call");
    expect_block_end();
    s->bodies.push_back(subparse({"endcall"}));
    next();
    expect_block_end();
    return s;
  }

  // A filter chain applied to the placeholder name "\x01" "body" (the rendered body of a filter/set block).
  expr_ptr parse_filter_chain(int line) {
    auto operand = make(ex::name, line);
    operand->name = "\x01" "body";
    expr_ptr e = parse_filter(std::move(operand));
    while (accept_op("|")) e = parse_filter(std::move(e));
    return e;
  }

  stmt_ptr parse_filter_block() {
    auto s = make_stmt(st::filter_block, next().line);
    s->value = parse_filter_chain(s->line);
    expect_block_end();
    s->bodies.push_back(subparse({"endfilter"}));
    next();
    expect_block_end();
    return s;
  }

  // ---- expressions ----
  expr_ptr parse_tuple(bool with_condexpr) {
    int line = peek().line;
    expr_ptr first = parse_expression(with_condexpr);
    if (!is_op(",")) return first;
    auto list = make(ex::list, line);
    list->args.push_back(std::move(first));
    while (accept_op(",")) {
      if (peek().type == tok::block_end || peek().type == tok::var_end || is_op(")") || is_name("if")) break;
      list->args.push_back(parse_expression(with_condexpr));
    }
    return finish(std::move(list));
  }

  expr_ptr parse_expression(bool with_condexpr) {
    nest_guard nested(*this);
    expr_ptr e = parse_or();
    if (!with_condexpr) return e;
    while (is_name("if")) {
      int line = next().line;
      auto t = make(ex::ternary, line);
      t->args.push_back(parse_or());
      t->args.push_back(std::move(e));
      t->args.push_back(accept_name("else") ? parse_expression(true) : nullptr);
      e = finish(std::move(t));
    }
    return e;
  }

  expr_ptr binary(const std::string& op, expr_ptr a, expr_ptr b, int line) {
    auto e = make(ex::binary, line);
    e->name = op;
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return finish(std::move(e));
  }

  expr_ptr parse_or() {
    expr_ptr e = parse_and();
    while (is_name("or")) {
      int line = next().line;
      e = binary("or", std::move(e), parse_and(), line);
    }
    return e;
  }

  expr_ptr parse_and() {
    expr_ptr e = parse_not();
    while (is_name("and")) {
      int line = next().line;
      e = binary("and", std::move(e), parse_not(), line);
    }
    return e;
  }

  expr_ptr parse_not() {
    if (is_name("not")) {
      nest_guard nested(*this);
      auto e = make(ex::unary, next().line);
      e->name = "not";
      e->args.push_back(parse_not());
      return finish(std::move(e));
    }
    return parse_compare();
  }

  expr_ptr parse_compare() {
    expr_ptr e = parse_math1();
    int n_ops = 0;
    while (true) {
      std::string op;
      int line = peek().line;
      if (peek().type == tok::op && (peek().text == "==" || peek().text == "!=" || peek().text == "<" ||
                                     peek().text == ">" || peek().text == "<=" || peek().text == ">=")) {
        op = next().text;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        next();
        next();
        op = "not in";
      } else {
        return e;
      }
      if (++n_ops > 1) fail(line, "unsupported: chained comparison ('a < b < c')");
      e = binary(op, std::move(e), parse_math1(), line);
    }
  }

  expr_ptr parse_math1() {
    expr_ptr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      const token& t = next();
      e = binary(t.text, std::move(e), parse_concat(), t.line);
    }
    return e;
  }

  expr_ptr parse_concat() {
    expr_ptr e = parse_math2();
    while (is_op("~")) {
      int line = next().line;
      e = binary("~", std::move(e), parse_math2(), line);
    }
    return e;
  }

  expr_ptr parse_math2() {
    expr_ptr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const token& t = next();
      e = binary(t.text, std::move(e), parse_pow(), t.line);
    }
    return e;
  }

  expr_ptr parse_pow() {
    expr_ptr e = parse_unary(true);
    while (is_op("**")) {
      int line = next().line;
      e = binary("**", std::move(e), parse_unary(true), line);
    }
    return e;
  }

  expr_ptr parse_unary(bool with_filter) {
    expr_ptr e;
    if (is_op("-") || is_op("+")) {
      nest_guard nested(*this);
      const token& t = next();
      e = make(ex::unary, t.line);
      e->name = t.text;
      e->args.push_back(parse_unary(false));
      e = finish(std::move(e));
    } else {
      e = parse_postfix(parse_primary());
    }
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  expr_ptr parse_primary() {
    const token& t = peek();
    switch (t.type) {
      case tok::name: {
        next();
        auto e = make(ex::literal, t.line);
        if (t.text == "true" || t.text == "True") e->lit = value::boolean(true);
        else if (t.text == "false" || t.text == "False") e->lit = value::boolean(false);
        else if (t.text == "none" || t.text == "None") e->lit = value::none();
        else {
          e->type = ex::name;
          e->name = t.text;
          if (t.text == "loop") ++n_loop_refs_;
        }
        return e;
      }
      case tok::string: {
        std::string s = next().text;
        while (peek().type == tok::string) s += next().text;
        auto e = make(ex::literal, t.line);
        e->lit = value::string(std::move(s));
        return e;
      }
      case tok::integer: {
        next();
        auto e = make(ex::literal, t.line);
        try {
          e->lit = value::integer(std::stoll(t.text));
        } catch (const std::exception&) {
          fail(t.line, "integer literal out of range: " + t.text);
        }
        return e;
      }
      case tok::floating: {
        next();
        auto e = make(ex::literal, t.line);
        // strtod, not stod: 1e400 is inf as in Python (stod throws out_of_range).
        e->lit = value::floating(std::strtod(t.text.c_str(), nullptr));
        return e;
      }
      case tok::op:
        if (t.text == "(") {
          next();
          if (accept_op(")")) return make(ex::list, t.line);
          expr_ptr e = parse_tuple(true);
          expect_op(")");
          return e;
        }
        if (t.text == "[") {
          next();
          auto e = make(ex::list, t.line);
          while (!is_op("]")) {
            e->args.push_back(parse_expression(true));
            if (!accept_op(",")) break;
          }
          expect_op("]");
          return finish(std::move(e));
        }
        if (t.text == "{") {
          next();
          auto e = make(ex::dict, t.line);
          while (!is_op("}")) {
            e->args.push_back(parse_expression(true));
            expect_op(":");
            e->args.push_back(parse_expression(true));
            if (!accept_op(",")) break;
          }
          expect_op("}");
          return finish(std::move(e));
        }
        break;
      default: break;
    }
    fail(t.line, "unexpected " + describe(t) + " in expression");
  }

  void parse_call_args(expr& e) {
    expect_op("(");
    bool seen_kw = false;
    while (!is_op(")")) {
      if (is_op("*") || is_op("**")) fail(peek().line, "unsupported: *args / **kwargs in calls");
      if (peek().type == tok::name && is_op("=", 1)) {
        e.kwnames.push_back(next().text);
        next();
        e.args.push_back(parse_expression(true));
        seen_kw = true;
      } else {
        if (seen_kw) fail(peek().line, "positional argument after keyword argument");
        e.args.push_back(parse_expression(true));
      }
      if (!accept_op(",")) break;
    }
    expect_op(")");
  }

  expr_ptr parse_postfix(expr_ptr e) {
    while (true) {
      if (is_op(".")) {
        int line = next().line;
        if (peek().type == tok::integer) {
          auto s = make(ex::subscript, line);
          auto idx = make(ex::literal, line);
          const std::string& digits = next().text;
          try {
            idx->lit = value::integer(std::stoll(digits));
          } catch (const std::exception&) {
            fail(line, "integer index out of range: " + digits);
          }
          s->args.push_back(std::move(e));
          s->args.push_back(std::move(idx));
          e = finish(std::move(s));
        } else {
          auto a = make(ex::attr, line);
          a->name = expect_name();
          a->args.push_back(std::move(e));
          e = finish(std::move(a));
        }
      } else if (is_op("[")) {
        int line = next().line;
        expr_ptr parts[3];
        bool is_slice = false;
        for (int k = 0; k < 3; ++k) {
          if (!is_op(":") && !is_op("]")) parts[k] = parse_expression(true);
          if (k < 2 && accept_op(":")) {
            is_slice = true;
          } else {
            break;
          }
        }
        expect_op("]");
        auto s = make(is_slice ? ex::slice : ex::subscript, line);
        s->args.push_back(std::move(e));
        if (is_slice) {
          for (auto& p : parts) s->args.push_back(std::move(p));
        } else {
          if (!parts[0]) fail(line, "empty subscript '[]'");
          s->args.push_back(std::move(parts[0]));
        }
        e = finish(std::move(s));
      } else if (is_op("(")) {
        auto c = make(ex::call, peek().line);
        c->args.push_back(std::move(e));
        parse_call_args(*c);
        e = finish(std::move(c));
      } else {
        return e;
      }
    }
  }

  expr_ptr parse_filter(expr_ptr operand) {
    int line = peek().line;
    std::string name = expect_name();
    if (!is_known_filter(name)) fail(line, "unsupported filter '" + name + "'");
    auto f = make(ex::filter, line);
    f->name = name;
    f->args.push_back(std::move(operand));
    if (is_op("(")) parse_call_args(*f);
    return finish(std::move(f));
  }

  expr_ptr parse_filter_expr(expr_ptr e) {
    while (true) {
      if (accept_op("|")) {
        e = parse_filter(std::move(e));
      } else if (is_name("is")) {
        int line = next().line;
        auto t = make(ex::test, line);
        t->negated = accept_name("not");
        t->name = expect_name();
        if (!is_known_test(t->name)) fail(line, "unsupported test '" + t->name + "'");
        t->args.push_back(std::move(e));
        if (is_op("(")) {
          parse_call_args(*t);
        } else {
          const token& a = peek();
          bool arg_start = a.type == tok::string || a.type == tok::integer || a.type == tok::floating ||
                           (a.type == tok::name && a.text != "else" && a.text != "or" && a.text != "and" &&
                            a.text != "if" && a.text != "in" && a.text != "not" && a.text != "is") ||
                           (a.type == tok::op && (a.text == "[" || a.text == "{"));
          if (arg_start) t->args.push_back(parse_postfix(parse_primary()));
        }
        e = finish(std::move(t));
      } else if (is_op("(")) {
        auto c = make(ex::call, peek().line);
        c->args.push_back(std::move(e));
        parse_call_args(*c);
        e = finish(std::move(c));
      } else {
        return e;
      }
    }
  }

  const std::vector<token>& t_;
  const int32_t max_nesting_;
  int32_t depth_ = 0;  // active nest_guards
  size_t i_ = 0;
  int loop_depth_ = 0;     // break/continue are only valid inside a for body
  int64_t n_loop_refs_ = 0;  // names `loop` parsed so far (a for body without one needs no loop object)
};

}  // namespace

block parse(const std::vector<token>& tokens, int32_t max_nesting) { return parser(tokens, max_nesting).parse_template(); }

}  // namespace autoglm::jinja

// template/ast.h: expression and statement trees produced by the parser and walked by the interpreter.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "template/value.h"

namespace autoglm::jinja {

enum class ex {
  literal,    // lit
  name,       // name
  list,       // args = items (tuples are lists)
  dict,       // args = key0, value0, key1, value1, ...
  attr,       // args[0] . name
  subscript,  // args[0] [ args[1] ]
  slice,      // args[0] [ args[1] : args[2] : args[3] ] (missing parts are null)
  call,       // args[0] ( args[1..] ), the last kwnames.size() args are keyword arguments
  filter,     // args[0] | name ( args[1..] ), kwnames as for call
  test,       // args[0] is [not] name ( args[1..] ), negated
  unary,      // name in {"not", "-", "+"}, args[0]
  binary,     // name is the operator ("and", "or", "+", "in", "not in", "==", ...), args[0], args[1]
  ternary,    // args[1] if args[0] else args[2] (args[2] null: undefined)
};

struct expr {
  ex type;
  int line = 0;
  int height = 1;  // 1 + the tallest argument: the parser bounds it, so walking or freeing the tree recurses little
  std::string name;
  value lit;
  std::vector<std::unique_ptr<expr>> args;
  std::vector<std::string> kwnames;
  bool negated = false;
};
using expr_ptr = std::unique_ptr<expr>;

struct stmt;
using stmt_ptr = std::unique_ptr<stmt>;
using block = std::vector<stmt_ptr>;

enum class st { text, output, if_, for_, set, set_block, macro, call_block, filter_block, break_, continue_ };

struct macro_param {
  std::string name;
  expr_ptr default_value;  // may be null
};

struct stmt {
  st type;
  int line = 0;
  std::string text;                  // text: the literal; set: attribute name when assigning ns.attr; macro: name
  expr_ptr value;                    // output / set value / for iterable / call_block call / filter_block: filter chain
  std::vector<std::string> targets;  // set / for / set_block target names (several: tuple unpacking)
  std::vector<expr_ptr> conditions;  // if: one per branch; for: optional inline "if" filter at [0]
  std::vector<block> bodies;         // if: one per branch (+1 for else); for: body, else; others: body
  std::vector<macro_param> params;   // macro / call_block caller parameters
  bool uses_loop = true;             // for: the body names `loop` (else each iteration skips building it)
};

}  // namespace autoglm::jinja

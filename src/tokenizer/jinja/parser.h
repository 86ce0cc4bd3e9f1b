// jinja/parser.h: recursive-descent parser from lexer tokens to the statement tree (jinja2 precedence).
#pragma once

#include <vector>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/lexer.h"

namespace autoglm::jinja {

// Throws autoglm::error naming the line on syntax errors and on constructs outside the supported subset.
block parse(const std::vector<token>& tokens);

// Names of filters and tests the interpreter implements; the parser rejects others up front.
bool is_known_filter(const std::string& name);
bool is_known_test(const std::string& name);

}  // namespace autoglm::jinja

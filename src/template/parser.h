// template/parser.h: recursive-descent parser from lexer tokens to the statement tree (jinja2 precedence).
#pragma once

#include <cstdint>
#include <vector>

#include "template/ast.h"
#include "template/lexer.h"

namespace autoglm::jinja {

// Throws autoglm::error naming the line on syntax errors, on constructs outside the supported subset, and on
// nesting deeper than max_nesting levels (brackets, operators, filter chains, statements).
block parse(const std::vector<token>& tokens, int32_t max_nesting);

// Names of filters and tests the interpreter implements; the parser rejects others up front.
bool is_known_filter(const std::string& name);
bool is_known_test(const std::string& name);

}  // namespace autoglm::jinja

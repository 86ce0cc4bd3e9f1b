// template/lexer.h: splits template source into text and tag tokens, applying jinja2's whitespace rules
// (trim_blocks, lstrip_blocks, "-"/"+" modifiers, dropping one trailing newline as keep_trailing_newline=False).
#pragma once

#include <string>
#include <vector>

namespace autoglm::jinja {

enum class tok { text, var_begin, var_end, block_begin, block_end, name, string, integer, floating, op, eof };

struct token {
  tok type;
  std::string text;  // text content, identifier, decoded string literal, number spelling or operator
  int line;
};

struct lex_options {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
};

// Throws autoglm::error("chat template line N: ...") on malformed input.
std::vector<token> lex(const std::string& source, const lex_options& opts);

}  // namespace autoglm::jinja

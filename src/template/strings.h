// template/strings.h: the Python str operations behind the filters and str methods (strip, case, replace, split,
// format, indent, reverse, int/float conversion). Those that build text of a size the template chooses check it
// against the render's budget before or while building it, and every one spends by the bytes it scans.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "template/value.h"

namespace autoglm::jinja {

bool is_ws(char c);

// Python str.strip/lstrip/rstrip; `chars` null strips whitespace.
std::string strip_chars(const std::string& s, const std::string* chars, bool left, bool right, budget& b);
std::string ascii_upper(std::string s);
std::string ascii_lower(std::string s);
// Python str.title() and str.capitalize() over ASCII letters.
std::string title_case(std::string s);
std::string capitalize(std::string s);
std::string html_escape(const std::string& s, budget& b);
// Python str.replace(from, to, count); count < 0 replaces all.
std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count, budget& b);
// Python str.split(sep, maxsplit); `sep` null splits on whitespace runs. Fails on an empty separator.
std::vector<value> split(const std::string& s, const std::string* sep, int64_t maxsplit, budget& b);
std::vector<value> split_lines(const std::string& s, budget& b);
// The code points of s in reverse order.
std::string reverse_chars(const std::string& s, budget& b);
// jinja2's indent filter: `pad` before every line but the first (unless `first`), blank lines only with `blank`.
std::string indent_lines(const std::string& s, const std::string& pad, bool first, bool blank, budget& b);
// printf-style formatting for the `format` filter: %s, %d, %i, %r, %%.
std::string printf_format(const std::string& fmt, const std::vector<value>& args, budget& b);
// Python str.format with "{}" / "{0}" / "{name}" fields (no format specs).
std::string str_format(const std::string& fmt, const call_args& args, budget& b);

// jinja2's int / float filters: numbers convert (floats truncate), numeric strings parse, anything else (and a
// float outside int64) gives dflt.
int64_t to_int(const value& v, int64_t dflt);
double to_float(const value& v, double dflt);

}  // namespace autoglm::jinja

// template/limits.h: the bounds on parsing and rendering one chat template, and the per-render budget that the
// interpreter and the value walks (str, repr, tojson, ==, ordering) spend against them.
//
// A template is code from a model directory and the data it renders comes from clients: without bounds, 100,000
// nested brackets overflow the parser's stack, nested range() loops run for minutes and 'x' * 10**9 allocates
// gigabytes. Every bound fails the parse or the render with an autoglm::error naming the line and the limit
// (the chat layer answers a failed render with 400). The defaults sit far above what real templates need: six
// real templates rendering 200-message agent sessions spend under 1% of the steps, bytes and output, nest at
// most 12 levels and recurse at most 13 (tests/npm/chat_template.test.mjs "headroom" and
// tests/template/limits_test.cpp check it). A step is 20-70 ns of CPU, so max_steps is well under a second.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace autoglm {

struct template_limits {
  // Parsing. Real templates are 1-40 KB and nest statements and expressions fewer than 15 levels.
  size_t max_source_bytes = 1u << 20;  // template source
  int32_t max_nesting = 128;  // nested brackets, operators, filter chains and statements; also the depth of any value

  // Rendering, per render() call.
  int64_t max_steps = 10'000'000;        // expression evaluations, statements, loop iterations, items visited by
                                         // filters and comparisons, plus one per 64 bytes scanned or copied
  size_t max_output_bytes = 32u << 20;   // the rendered text, and the text any block renders (macro, set, filter)
  size_t max_string_bytes = 32u << 20;   // any one string value
  size_t max_items = 1'000'000;          // any one list, dict, range() or split() result
  size_t max_total_bytes = 256u << 20;   // all strings and list/dict items the render builds (its memory allowance)
  int32_t max_call_depth = 64;           // macro (and caller()) calls active at once: recursion
  int32_t max_render_depth = 1000;       // statements, expressions, filters and calls active at once (the C++ stack)
};

namespace jinja {

// One render's spending. Steps and built bytes only grow (nothing is refunded when a value is freed), so a
// render's CPU time and allocations are both bounded by the limits above, whatever the template does.
class budget {
 public:
  static constexpr size_t bytes_per_step = 64;

  explicit budget(const template_limits& limits) : limits_(limits) {}
  const template_limits& limits() const { return limits_; }

  // The template line being evaluated, for error messages.
  void set_line(int line) { line_ = line; }
  int line() const { return line_; }

  void step(int64_t n = 1) {
    steps_ += n;
    if (steps_ > limits_.max_steps) exceeded_steps();
  }
  // n bytes read or copied (search, comparison, counting, copying into the output).
  void scan(size_t n) { step(1 + static_cast<int64_t>(n / bytes_per_step)); }
  // Throws unless a string of n bytes may still be built (checked before and while building one).
  void check_string(size_t n) const;
  // A string of n bytes was built: checks it and charges it.
  void new_string(size_t n);
  // Throws unless a list/dict of n items may be built.
  void check_items(size_t n) const;
  // A list or dict of n items was built: checks it and charges it.
  void new_items(size_t n);
  // Throws when a value (or a walk over one) is nested deeper than max_nesting.
  void check_depth(int64_t depth) const;

  int64_t steps_used() const { return steps_; }
  size_t bytes_used() const { return bytes_; }

  [[noreturn]] void fail(const std::string& msg) const;

 private:
  [[noreturn]] void exceeded_steps() const;

  const template_limits& limits_;
  int line_ = 0;
  int64_t steps_ = 0;
  size_t bytes_ = 0;
};

}  // namespace jinja
}  // namespace autoglm

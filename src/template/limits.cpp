// template/limits.cpp: the budget's checks and its error messages (see limits.h).
#include "template/limits.h"

#include <algorithm>

#include "core/error.h"

namespace autoglm::jinja {

void budget::fail(const std::string& msg) const {
  throw autoglm::error("chat template line " + std::to_string(line_) + ": " + msg);
}

void budget::exceeded_steps() const {
  fail("exceeded its limit of " + std::to_string(limits_.max_steps) + " steps");
}

void budget::check_string(size_t n) const {
  if (n > limits_.max_string_bytes)
    fail("a string of " + std::to_string(n) + " bytes exceeds the limit of " + std::to_string(limits_.max_string_bytes) + " bytes");
  if (n > limits_.max_total_bytes - std::min(bytes_, limits_.max_total_bytes))
    fail("the strings and lists built exceed the render's limit of " + std::to_string(limits_.max_total_bytes) + " bytes");
}

void budget::new_string(size_t n) {
  check_string(n);
  bytes_ += n;
  step(static_cast<int64_t>(n / bytes_per_step));
}

void budget::check_items(size_t n) const {
  if (n > limits_.max_items)
    fail("a list of " + std::to_string(n) + " items exceeds the limit of " + std::to_string(limits_.max_items) + " items");
}

void budget::new_items(size_t n) {
  check_items(n);
  // An item is a value (about 100 bytes with its control block); count it against the memory allowance.
  size_t item_bytes = n * 96;
  if (item_bytes > limits_.max_total_bytes - std::min(bytes_, limits_.max_total_bytes))
    fail("the strings and lists built exceed the render's limit of " + std::to_string(limits_.max_total_bytes) + " bytes");
  bytes_ += item_bytes;
  step(static_cast<int64_t>(n));
}

void budget::check_depth(int64_t depth) const {
  if (depth > limits_.max_nesting) fail("value nested deeper than " + std::to_string(limits_.max_nesting) + " levels");
}

}  // namespace autoglm::jinja

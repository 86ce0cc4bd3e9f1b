// formats/json_limits.cpp: see json_limits.h. Built on nlohmann's callback parser, which keeps its own stack
// (no recursion) and reports the depth of every event.
#include "formats/json_limits.h"

#include "core/file_io.h"

namespace autoglm {

namespace {

template <class Json>
Json parse_bounded(std::string_view text, const json_limits& limits) {
  int64_t n_values = 0;
  // Thrown from inside the callback to stop the parse at once; the partial DOM is freed iteratively.
  struct stop {
    std::string why;
  };
  auto cb = [&](int depth, typename Json::parse_event_t event, Json&) -> bool {
    using ev = typename Json::parse_event_t;
    if (event == ev::object_start || event == ev::array_start) {
      // `depth` is the depth of the container that opens here, counting from 0 for the top level.
      if (depth + 1 > limits.max_depth)
        throw stop{"nesting deeper than " + std::to_string(limits.max_depth) + " levels"};
      if (++n_values > limits.max_values)
        throw stop{"more than " + std::to_string(limits.max_values) + " values"};
    } else if (event == ev::value) {
      if (++n_values > limits.max_values)
        throw stop{"more than " + std::to_string(limits.max_values) + " values"};
    }
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const stop& s) {
    throw json_parse_error("JSON exceeds the parser's limits: " + s.why, true);
  } catch (const nlohmann::json::out_of_range& e) {
    // 406: a number that does not fit a double, e.g. 1e400.
    throw json_parse_error(std::string("JSON number out of range: ") + e.what(), false);
  } catch (const nlohmann::json::exception& e) {
    throw json_parse_error(e.what(), false);
  }
}

}  // namespace

nlohmann::json parse_json(std::string_view text, const json_limits& limits) {
  return parse_bounded<nlohmann::json>(text, limits);
}

nlohmann::ordered_json parse_ordered_json(std::string_view text, const json_limits& limits) {
  return parse_bounded<nlohmann::ordered_json>(text, limits);
}

nlohmann::json read_json_file_bounded(const std::string& path, uint64_t max_bytes, const json_limits& limits) {
  std::string text = read_regular_file(path, max_bytes);
  try {
    return parse_json(text, limits);
  } catch (const json_parse_error& e) {
    throw error(path + ": not valid JSON: " + e.what());
  }
}

}  // namespace autoglm

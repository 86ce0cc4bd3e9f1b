// formats/json_limits.cpp: see json_limits.h. parse_json is built on nlohmann's callback parser, which keeps its
// own stack (no recursion) and reports the depth of every event; parse_ordered_json on its SAX interface (see
// ordered_builder for why).
#include "formats/json_limits.h"

#include <memory>
#include <unordered_map>
#include <vector>

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

namespace {

// Builds an ordered_json from SAX events, with the same limits as parse_bounded. nlohmann's own DOM builders
// insert every key through ordered_map's linear duplicate search: quadratic in an object's key count (an object
// of 100,000 keys, a 1 MB request body, took 113 s). This builder looks keys up in a hash index once an object
// has more than a few. Duplicate keys behave as in nlohmann: the last value wins, at the first one's position.
class ordered_builder {
 public:
  using json = nlohmann::ordered_json;
  explicit ordered_builder(const json_limits& limits) : limits_(limits) {}

  bool null() { return add(json(nullptr)); }
  bool boolean(bool v) { return add(json(v)); }
  bool number_integer(json::number_integer_t v) { return add(json(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return add(json(v)); }
  bool number_float(json::number_float_t v, const json::string_t&) { return add(json(v)); }
  bool string(json::string_t& v) { return add(json(std::move(v))); }
  bool binary(json::binary_t& v) { return add(json::binary(std::move(v))); }
  bool start_object(std::size_t) { return open(json::object()); }
  bool start_array(std::size_t) { return open(json::array()); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(json::string_t& k) {
    key_ = std::move(k);
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    // 406: a number that does not fit a double, e.g. 1e400.
    if (e.id == 406) throw json_parse_error(std::string("JSON number out of range: ") + e.what(), false);
    throw json_parse_error(e.what(), false);
  }

  json take() { return std::move(root_); }

 private:
  struct frame {
    json* node;
    std::unique_ptr<std::unordered_map<std::string, size_t>> index;  // key -> position, for large objects
  };
  static constexpr size_t linear_keys = 16;  // below this, a linear scan is cheaper than hashing

  void count() {
    if (++n_values_ > limits_.max_values)
      throw json_parse_error("JSON exceeds the parser's limits: more than " + std::to_string(limits_.max_values) +
                                 " values",
                             true);
  }
  bool add(json&& v) {
    count();
    place(std::move(v));
    return true;
  }
  bool open(json&& container) {
    if (int64_t(stack_.size()) + 1 > limits_.max_depth)
      throw json_parse_error("JSON exceeds the parser's limits: nesting deeper than " +
                                 std::to_string(limits_.max_depth) + " levels",
                             true);
    count();
    // The open container is an element of its parent, which is not modified until the container closes.
    stack_.push_back({place(std::move(container)), nullptr});
    return true;
  }
  bool close() {
    stack_.pop_back();
    return true;
  }
  json* place(json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    frame& f = stack_.back();
    if (f.node->is_array()) {
      json::array_t& a = f.node->get_ref<json::array_t&>();
      a.push_back(std::move(v));
      return &a.back();
    }
    // ordered_map's operator[] takes keys: positions go through the vector it derives from.
    json::object_t& obj = f.node->get_ref<json::object_t&>();
    auto& entries = static_cast<json::object_t::Container&>(obj);
    if (f.index) {
      auto [it, inserted] = f.index->try_emplace(key_, entries.size());
      if (!inserted) return &(entries[it->second].second = std::move(v));
    } else {
      for (auto& kv : entries)
        if (kv.first == key_) return &(kv.second = std::move(v));
      if (entries.size() + 1 > linear_keys) {
        f.index = std::make_unique<std::unordered_map<std::string, size_t>>();
        for (size_t i = 0; i < entries.size(); ++i) f.index->emplace(entries[i].first, i);
        f.index->emplace(key_, entries.size());
      }
    }
    // Appends without ordered_map's linear search: the key is known to be new.
    entries.emplace_back(std::move(key_), std::move(v));
    return &entries.back().second;
  }

  const json_limits& limits_;
  json root_;
  std::vector<frame> stack_;
  std::string key_;
  int64_t n_values_ = 0;
};

}  // namespace

nlohmann::ordered_json parse_ordered_json(std::string_view text, const json_limits& limits) {
  ordered_builder b(limits);
  nlohmann::ordered_json::sax_parse(text.begin(), text.end(), &b);
  return b.take();
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

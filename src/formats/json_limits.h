// formats/json_limits.h: JSON parsing with bounds, for anything a user or client sends us (request bodies,
// config files, tokenizer and template files).
//
// A plain nlohmann parse accepts any nesting, and copying or walking a 150,000-deep value recurses until the
// stack overflows; it also builds a DOM of any size (50 MB of "[[[" took 11 s and 3.8 GB). These parsers count
// nesting depth and values while parsing and stop at the first value past a limit, so a hostile document costs
// at most the bytes read so far. Numbers that overflow a double (1e400) are a parse error, not a crash or a 500.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace autoglm {

struct json_limits {
  int32_t max_depth = 64;          // nesting of arrays and objects (the top-level value is depth 1)
  int64_t max_values = 1'000'000;  // values of any kind, keys not counted
};

// A document that is not JSON, or that exceeds the limits. `limit_exceeded()` tells the two apart (a server
// answers both with 400; a limit error says which limit).
class json_parse_error : public error {
 public:
  json_parse_error(const std::string& msg, bool limit) : error(msg), limit_(limit) {}
  bool limit_exceeded() const { return limit_; }

 private:
  bool limit_;
};

// Throws json_parse_error with a message that names the byte offset ("nesting deeper than 64 levels at byte
// 65"). The ordered form keeps object keys in document order (request bodies: see server/protocol.h).
nlohmann::json parse_json(std::string_view text, const json_limits& limits = {});
nlohmann::ordered_json parse_ordered_json(std::string_view text, const json_limits& limits = {});

// Reads and parses a JSON file of at most max_bytes (regular files only, see core/file_io.h). Errors are
// autoglm::error naming the file.
nlohmann::json read_json_file_bounded(const std::string& path, uint64_t max_bytes, const json_limits& limits = {});

}  // namespace autoglm

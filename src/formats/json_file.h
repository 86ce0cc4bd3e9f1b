// formats/json_file.h: reading the JSON files of a model directory (config.json, generation_config.json, the
// shard index) with bounds, and typed, range-checked field lookups whose errors name the file and the key.
//
// Every number in these files sizes memory or indexes a table somewhere, so none is taken on trust: a lookup
// states the range it accepts and an error reads "<file>: text_config.max_position_embeddings must be between
// 1 and 16777216, got 0". Files are opened as regular files only (a FIFO is refused at once, never waited on)
// and read up to a size limit.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace autoglm {

// config.json and generation_config.json are a few KB in every released checkpoint; 1 MiB is generous and
// keeps a hostile file from costing more than that.
constexpr uint64_t k_max_model_config_bytes = uint64_t(1) << 20;
// model.safetensors.index.json lists one line per tensor: ~80 KB for GLM-4.1V-9B (~900 tensors); the largest
// public checkpoints (thousands of experts' tensors) stay under 10 MB.
constexpr uint64_t k_max_shard_index_bytes = uint64_t(64) << 20;

// Parses a JSON file of at most max_bytes (regular files only, bounded nesting). Throws autoglm::error naming
// the file on a missing, unreadable, non-regular, oversized or malformed file.
nlohmann::json read_json_file(const std::string& path, uint64_t max_bytes = k_max_model_config_bytes);
// Same, but returns nullopt when nothing exists at `path` (anything that exists but is not a regular file is
// an error, not "absent").
std::optional<nlohmann::json> read_json_file_if_exists(const std::string& path,
                                                       uint64_t max_bytes = k_max_model_config_bytes);

// Typed lookups in one JSON object. `prefix` is the object's path inside the file ("text_config."), so errors
// name the key as a user finds it: "<file>: text_config.hidden_size must be an integer".
class json_fields {
 public:
  json_fields(const nlohmann::json& obj, std::string file, std::string prefix = "");

  const nlohmann::json& value() const { return obj_; }
  const std::string& file() const { return file_; }
  std::string key_name(const std::string& key) const { return prefix_ + key; }
  // Present and not null.
  bool has(const std::string& key) const;
  // Throws autoglm::error "<file>: <prefix><key> <what>".
  [[noreturn]] void fail(const std::string& key, const std::string& what) const;

  // Integers in [lo, hi]; a missing key is an error for `integer`, the fallback for `integer_or` (the fallback is
  // not range-checked: the caller chose it).
  int64_t integer(const std::string& key, int64_t lo, int64_t hi) const;
  int64_t integer_or(const std::string& key, int64_t fallback, int64_t lo, int64_t hi) const;
  // Finite numbers in [lo, hi].
  double number_or(const std::string& key, double fallback, double lo, double hi) const;
  bool boolean_or(const std::string& key, bool fallback) const;
  std::string string_or(const std::string& key, const std::string& fallback) const;
  // A nested object (required), or nullopt when absent for `object_if_present`; anything else is an error.
  json_fields object(const std::string& key) const;
  std::optional<json_fields> object_if_present(const std::string& key) const;

 private:
  const nlohmann::json& obj_;
  std::string file_;
  std::string prefix_;
};

// Checks that `v` is an integer in [lo, hi] and returns it; `what` names it in the error ("<what> must be ...").
int64_t json_integer_in(const nlohmann::json& v, int64_t lo, int64_t hi, const std::string& what);

}  // namespace autoglm

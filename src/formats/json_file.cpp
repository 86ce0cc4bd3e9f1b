// formats/json_file.cpp: see json_file.h.
#include "formats/json_file.h"

#include <sys/stat.h>

#include <cmath>
#include <limits>
#include <sstream>

#include "core/error.h"
#include "formats/json_limits.h"

namespace autoglm {

namespace {

// A model's JSON files are flat (config.json nests 3 levels); 32 leaves room for any real file.
constexpr json_limits k_model_json_limits{32, 1'000'000};

// A short rendering of a value for an error message (a hostile value may be megabytes long).
std::string preview(const nlohmann::json& v) {
  std::string s = v.dump();
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

std::string number_text(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

}  // namespace

nlohmann::json read_json_file(const std::string& path, uint64_t max_bytes) {
  return read_json_file_bounded(path, max_bytes, k_model_json_limits);
}

std::optional<nlohmann::json> read_json_file_if_exists(const std::string& path, uint64_t max_bytes) {
  // lstat: a dangling symlink counts as present (and then fails to open with a clear error), a FIFO or
  // directory is present and refused by read_json_file, never waited on.
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return std::nullopt;
  return read_json_file(path, max_bytes);
}

int64_t json_integer_in(const nlohmann::json& v, int64_t lo, int64_t hi, const std::string& what) {
  if (!v.is_number_integer()) throw error(what + " must be an integer, got " + preview(v));
  // An unsigned value above INT64_MAX would wrap to a negative int64: report it as it was written.
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
    throw error(what + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " + v.dump());
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi)
    throw error(what + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " +
                std::to_string(x));
  return x;
}

json_fields::json_fields(const nlohmann::json& obj, std::string file, std::string prefix)
    : obj_(obj), file_(std::move(file)), prefix_(std::move(prefix)) {
  if (!obj_.is_object()) {
    if (prefix_.empty()) throw error(file_ + ": must hold a JSON object, got " + preview(obj_));
    throw error(file_ + ": " + prefix_.substr(0, prefix_.size() - 1) + " must be an object, got " + preview(obj_));
  }
}

bool json_fields::has(const std::string& key) const {
  auto it = obj_.find(key);
  return it != obj_.end() && !it->is_null();
}

void json_fields::fail(const std::string& key, const std::string& what) const {
  throw error(file_ + ": " + prefix_ + key + " " + what);
}

int64_t json_fields::integer(const std::string& key, int64_t lo, int64_t hi) const {
  if (!has(key)) fail(key, "is missing (an integer between " + std::to_string(lo) + " and " + std::to_string(hi) + ")");
  return json_integer_in(obj_.at(key), lo, hi, file_ + ": " + prefix_ + key);
}

int64_t json_fields::integer_or(const std::string& key, int64_t fallback, int64_t lo, int64_t hi) const {
  if (!has(key)) return fallback;
  return json_integer_in(obj_.at(key), lo, hi, file_ + ": " + prefix_ + key);
}

double json_fields::number_or(const std::string& key, double fallback, double lo, double hi) const {
  if (!has(key)) return fallback;
  const nlohmann::json& v = obj_.at(key);
  if (!v.is_number()) fail(key, "must be a number, got " + preview(v));
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi)
    fail(key, "must be between " + number_text(lo) + " and " + number_text(hi) + ", got " + preview(v));
  return x;
}

bool json_fields::boolean_or(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const nlohmann::json& v = obj_.at(key);
  if (!v.is_boolean()) fail(key, "must be true or false, got " + preview(v));
  return v.get<bool>();
}

std::string json_fields::string_or(const std::string& key, const std::string& fallback) const {
  if (!has(key)) return fallback;
  const nlohmann::json& v = obj_.at(key);
  if (!v.is_string()) fail(key, "must be a string, got " + preview(v));
  return v.get<std::string>();
}

json_fields json_fields::object(const std::string& key) const {
  if (!has(key)) fail(key, "is missing (an object)");
  return json_fields(obj_.at(key), file_, prefix_ + key + ".");
}

std::optional<json_fields> json_fields::object_if_present(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return json_fields(obj_.at(key), file_, prefix_ + key + ".");
}

}  // namespace autoglm

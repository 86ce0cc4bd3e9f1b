#include "formats/json_file.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace autoglm {

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw error(path + ": cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw error(path + ": not valid JSON: " + e.what());
  }
}

std::optional<nlohmann::json> read_json_file_if_exists(const std::string& path) {
  if (!std::filesystem::exists(path)) return std::nullopt;
  return read_json_file(path);
}

int64_t json_int(const nlohmann::json& j, const char* key, const std::string& file) {
  if (!j.contains(key)) throw error(file + ": missing '" + key + "'");
  const auto& v = j[key];
  if (!v.is_number_integer()) throw error(file + ": '" + key + "' must be an integer");
  return v.get<int64_t>();
}

int64_t json_int_or(const nlohmann::json& j, const char* key, int64_t fallback, const std::string& file) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  return json_int(j, key, file);
}

double json_number_or(const nlohmann::json& j, const char* key, double fallback, const std::string& file) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number()) throw error(file + ": '" + key + "' must be a number");
  return j[key].get<double>();
}

}  // namespace autoglm

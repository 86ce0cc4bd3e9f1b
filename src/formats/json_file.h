// formats/json_file.h: reading JSON files of a model directory with errors that name the file and the key.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace autoglm {

// Parses a JSON file; throws autoglm::error naming the file on a missing file or bad JSON.
nlohmann::json read_json_file(const std::string& path);
// Same, but returns nullopt when the file does not exist.
std::optional<nlohmann::json> read_json_file_if_exists(const std::string& path);

// Typed lookups that throw "<file>: '<key>' must be ..." on a wrong type.
int64_t json_int(const nlohmann::json& j, const char* key, const std::string& file);
int64_t json_int_or(const nlohmann::json& j, const char* key, int64_t fallback, const std::string& file);
double json_number_or(const nlohmann::json& j, const char* key, double fallback, const std::string& file);

}  // namespace autoglm

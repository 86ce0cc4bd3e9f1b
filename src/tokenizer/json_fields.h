// tokenizer/json_fields.h: typed reads of tokenizer.json components with errors that name where they are.
#pragma once

#include <exception>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace autoglm::tok {

// The "type" of a component object ("Split", "ByteLevel", ...); throws when missing.
inline std::string type_of(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    throw error(where + ": expected an object with a string \"type\"");
  return j["type"].get<std::string>();
}

// j[key] as T, `fallback` when absent or null; a wrong type throws naming where.key.
template <class T>
T field(const nlohmann::json& j, const char* key, const std::string& where, T fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  try {
    return j[key].get<T>();
  } catch (const std::exception& e) {
    throw error(where + "." + key + ": " + e.what());
  }
}

}  // namespace autoglm::tok

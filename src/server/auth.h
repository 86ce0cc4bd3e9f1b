// server/auth.h: API-key check (Authorization: Bearer <key>, or x-api-key) with a constant-time comparison.
#pragma once

#include <string_view>

namespace autoglm::server {

// Compares without an early exit on the first differing byte, so response time does not reveal the prefix.
bool constant_time_equal(std::string_view a, std::string_view b);

// True when `authorization` is "Bearer <expected>" (scheme case-insensitive) or `x_api_key` equals expected.
bool api_key_matches(std::string_view authorization, std::string_view x_api_key, std::string_view expected);

}  // namespace autoglm::server

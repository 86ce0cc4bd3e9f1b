// server/auth.cpp: constant-time API-key comparison.
#include "server/auth.h"

#include <cctype>
#include <cstdint>

namespace autoglm::server {

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Walk the expected length (b) whatever a's length is; the length difference is folded into the result.
  volatile uint8_t diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < b.size(); ++i) {
    uint8_t x = i < a.size() ? uint8_t(a[i]) : 0;
    diff = diff | uint8_t(x ^ uint8_t(b[i]));
  }
  return diff == 0;
}

bool api_key_matches(std::string_view authorization, std::string_view x_api_key, std::string_view expected) {
  constexpr std::string_view scheme = "bearer ";
  bool ok = false;
  if (authorization.size() >= scheme.size()) {
    bool is_bearer = true;
    for (size_t i = 0; i < scheme.size(); ++i)
      if (std::tolower(uint8_t(authorization[i])) != scheme[i]) is_bearer = false;
    if (is_bearer) {
      std::string_view token = authorization.substr(scheme.size());
      while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
      ok = constant_time_equal(token, expected);
    }
  }
  if (!ok && !x_api_key.empty()) ok = constant_time_equal(x_api_key, expected);
  return ok;
}

}  // namespace autoglm::server

// server/api_error.h: an HTTP failure in OpenAI's error shape {"error":{"message","type","param","code"}}.
// Handlers throw api_error (or autoglm::invalid_request, mapped to 400); the router turns it into the response.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace autoglm::server {

class api_error : public std::exception {
 public:
  api_error(int status, std::string message, std::string type = {}, std::string param = {}, std::string code = {});
  const char* what() const noexcept override { return message_.c_str(); }

  int status() const { return status_; }
  const std::string& message() const { return message_; }
  const std::string& type() const { return type_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }
  nlohmann::json to_json() const;

 private:
  int status_;
  std::string message_, type_, param_, code_;
};

// The OpenAI error type for a status: 400 invalid_request_error, 401 authentication_error, 404 not_found_error, ...
const char* error_type_for_status(int status);

// Convenience constructors for the common cases.
inline api_error bad_request(std::string message, std::string param = {}) {
  return api_error(400, std::move(message), "invalid_request_error", std::move(param));
}

}  // namespace autoglm::server

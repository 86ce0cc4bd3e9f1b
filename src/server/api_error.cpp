// server/api_error.cpp: OpenAI error JSON.
#include "server/api_error.h"

namespace autoglm::server {

const char* error_type_for_status(int status) {
  switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 405: return "invalid_request_error";
    case 408: return "timeout_error";
    case 413: return "invalid_request_error";
    case 429: return "rate_limit_error";
    case 503: return "service_unavailable_error";
    default: return status >= 500 ? "internal_server_error" : "invalid_request_error";
  }
}

api_error::api_error(int status, std::string message, std::string type, std::string param, std::string code)
    : status_(status), message_(std::move(message)), type_(std::move(type)), param_(std::move(param)),
      code_(std::move(code)) {
  if (type_.empty()) type_ = error_type_for_status(status_);
}

nlohmann::json api_error::to_json() const {
  nlohmann::json e = {{"message", message_}, {"type", type_}};
  e["param"] = param_.empty() ? nlohmann::json(nullptr) : nlohmann::json(param_);
  e["code"] = code_.empty() ? nlohmann::json(status_) : nlohmann::json(code_);
  return {{"error", e}};
}

}  // namespace autoglm::server

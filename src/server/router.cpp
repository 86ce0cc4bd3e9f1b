// server/router.cpp: method + path → handler; API-key check, CORS preflight, JSON body parsing, and the one
// place where exceptions become OpenAI error responses.
#include <random>

#include "core/error.h"
#include "core/log.h"
#include "server/api_error.h"
#include "server/app.h"
#include "server/auth.h"

namespace autoglm::server {

using nlohmann::json;

std::string app::make_id(const char* prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%s-%016llx%08llx", prefix, (unsigned long long)rng(),
                (unsigned long long)(rng() & 0xffffffffu));
  return buf;
}

void check_model_name(const app& a, const std::string& model) {
  if (!model.empty() && model != a.options.served_model_name)
    throw api_error(404, "The model `" + model + "` does not exist. This server serves `" +
                             a.options.served_model_name + "`.",
                    "invalid_request_error", "model", "model_not_found");
}

namespace {

// ordered_json: keeps the client's key order for the chat template (protocol.h).
nlohmann::ordered_json parse_body(const http_request& req) {
  if (req.body().empty()) throw api_error(400, "the request body is empty; expected a JSON object", "", "", "");
  try {
    return nlohmann::ordered_json::parse(req.body());
  } catch (const nlohmann::ordered_json::parse_error& e) {
    throw api_error(400, std::string("invalid JSON body: ") + e.what(), "invalid_request_error", "", "invalid_json");
  }
}

void require_ready(const app& a) {
  if (a.draining.load()) throw api_error(503, "the server is shutting down", "service_unavailable_error");
  if (a.state.load() != app_state::READY)
    throw api_error(503, "the model is still loading; retry shortly", "service_unavailable_error", "",
                    "model_loading");
}

struct route {
  const char* path;
  http::verb method;
};

constexpr route routes[] = {
    {"/health", http::verb::get},          {"/v1/models", http::verb::get},
    {"/v1/chat/completions", http::verb::post}, {"/v1/completions", http::verb::post},
    {"/tokenize", http::verb::post},       {"/detokenize", http::verb::post},
    {"/metrics", http::verb::get},         {"/v1/health", http::verb::get},
};

void dispatch(app& a, const std::shared_ptr<connection>& conn, http_request& req, const std::string& path) {
  const http::verb m = req.method();
  const bool get = m == http::verb::get || m == http::verb::head;

  if (path == "/health" || path == "/v1/health") {
    if (!get) throw api_error(405, "use GET " + path);
    return handle_health(a, conn);
  }
  if (!a.options.api_key.empty()) {
    auto auth = req[http::field::authorization];
    auto key = req["x-api-key"];
    if (!api_key_matches(std::string_view(auth.data(), auth.size()), std::string_view(key.data(), key.size()),
                         a.options.api_key))
      throw api_error(401, "invalid or missing API key: send 'Authorization: Bearer <key>'", "authentication_error",
                      "", "invalid_api_key");
  }
  if (path == "/metrics" && get) return handle_metrics(a, conn);
  if (path == "/v1/models" && get) {
    require_ready(a);
    return handle_models(a, conn, "");
  }
  if (path.rfind("/v1/models/", 0) == 0 && get) {
    require_ready(a);
    return handle_models(a, conn, path.substr(11));
  }
  if (m == http::verb::post) {
    if (path == "/v1/chat/completions") {
      require_ready(a);
      return handle_chat_completions(a, conn, parse_body(req));
    }
    if (path == "/v1/completions") {
      require_ready(a);
      return handle_completions(a, conn, parse_body(req));
    }
    if (path == "/tokenize" || path == "/v1/tokenize") {
      require_ready(a);
      return handle_tokenize(a, conn, parse_body(req));
    }
    if (path == "/detokenize" || path == "/v1/detokenize") {
      require_ready(a);
      return handle_detokenize(a, conn, parse_body(req));
    }
  }
  for (const route& r : routes)
    if (path == r.path) throw api_error(405, std::string("method not allowed; use ") +
                                                 std::string(http::to_string(r.method)) + " " + path);
  if (path.rfind("/v1/models/", 0) == 0) throw api_error(405, "method not allowed; use GET " + path);
  throw api_error(404, "no route for " + std::string(req.method_string()) + " " + path, "not_found_error", "",
                  "not_found");
}

}  // namespace

void route_request(app& a, std::shared_ptr<connection> conn, http_request&& req) {
  std::string target(req.target());
  std::string path = target.substr(0, target.find('?'));
  while (path.size() > 1 && path.back() == '/') path.pop_back();

  if (req.method() == http::verb::options) {
    // CORS preflight: answered without auth (browsers never send credentials on a preflight).
    header_list h = {{"Allow", "GET, POST, OPTIONS"}};
    if (!a.options.cors_origin.empty()) {
      h.push_back({"Access-Control-Allow-Methods", "GET, POST, OPTIONS"});
      auto requested = req[http::field::access_control_request_headers];
      h.push_back({"Access-Control-Allow-Headers",
                   requested.empty() ? std::string("Authorization, Content-Type")
                                     : std::string(requested.data(), requested.size())});
      h.push_back({"Access-Control-Max-Age", "86400"});
    }
    conn->send(204, "", "", h);
    return;
  }

  try {
    dispatch(a, conn, req, path);
  } catch (const api_error& e) {
    header_list h;
    if (e.status() == 503) h.push_back({"Retry-After", "1"});
    if (e.status() == 401) h.push_back({"WWW-Authenticate", "Bearer"});
    if (e.status() == 405) h.push_back({"Allow", "GET, POST, OPTIONS"});
    conn->send_error(e, h);
  } catch (const invalid_request& e) {
    conn->send_error(api_error(400, e.what(), "invalid_request_error", e.param()));
  } catch (const autoglm::error& e) {
    conn->send_error(api_error(400, e.what(), "invalid_request_error"));
  } catch (const std::exception& e) {
    AG_LOG_ERROR("{} {}: {}", std::string(req.method_string()), path, e.what());
    conn->send_error(api_error(500, std::string("internal error: ") + e.what(), "internal_server_error"));
  }
}

}  // namespace autoglm::server

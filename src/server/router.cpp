// server/router.cpp: method + path → handler; API-key check, CORS preflight, the hand-off of request bodies to
// the CPU pool (parsed there with bounded depth and size), the one place where exceptions become OpenAI error
// responses, and returning freed memory to the OS after large bodies.
#include <random>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "core/error.h"
#include "core/log.h"
#include "formats/json_limits.h"
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

api_error current_api_error(const char* context) {
  try {
    throw;
  } catch (const api_error& e) {
    return e;
  } catch (const invalid_request& e) {
    return api_error(400, e.what(), "invalid_request_error", e.param());
  } catch (const autoglm::error& e) {
    return api_error(400, e.what(), "invalid_request_error");
  } catch (const std::exception& e) {
    AG_LOG_ERROR("{}: {}", context, e.what());
    return api_error(500, std::string("internal error: ") + e.what(), "internal_server_error");
  } catch (...) {
    AG_LOG_ERROR("{}: unknown exception", context);
    return api_error(500, "internal error", "internal_server_error");
  }
}

void send_api_error(const std::shared_ptr<connection>& conn, const api_error& e) {
  header_list h;
  if (e.status() == 503) h.push_back({"Retry-After", "1"});
  if (e.status() == 401) h.push_back({"WWW-Authenticate", "Bearer"});
  if (e.status() == 405) h.push_back({"Allow", "GET, POST, OPTIONS"});
  conn->send_error(e, h);
}

void schedule_memory_trim(app& a) {
#if defined(__GLIBC__)
  if (a.trim_scheduled.exchange(true)) return;  // one is due: it will cover this body too
  auto timer = std::make_shared<net::steady_timer>(a.cpu_pool.get_executor(), std::chrono::seconds(1));
  timer->async_wait([&a, timer](const boost::system::error_code&) {
    a.trim_scheduled = false;  // bodies freed from now on schedule the next trim
    malloc_trim(0);            // every arena, free pages inside the heap included
  });
#else
  (void)a;
#endif
}

namespace {

// Bodies at least this large schedule a malloc_trim once freed (a screenshot is a few MB of base64).
constexpr size_t large_body_bytes = 1 << 20;

// Bounded parse (protocol.h: request_json_limits); ordered_json keeps the client's key order for the template.
nlohmann::ordered_json parse_body(std::string_view text, int32_t max_model_len) {
  if (text.empty()) throw api_error(400, "the request body is empty; expected a JSON object", "", "", "");
  const json_limits limits = request_json_limits(max_model_len);
  try {
    return parse_ordered_json(text, limits);
  } catch (const json_parse_error& e) {
    if (e.limit_exceeded())
      throw api_error(400,
                      std::string("request body refused: ") + e.what() + " (this server takes JSON nested at most " +
                          std::to_string(limits.max_depth) + " levels deep with at most " +
                          std::to_string(limits.max_values) + " values)",
                      "invalid_request_error", "", "json_limit_exceeded");
    throw api_error(400, std::string("invalid JSON body: ") + e.what(), "invalid_request_error", "", "invalid_json");
  }
}

using body_handler = void (*)(app&, const std::shared_ptr<connection>&, nlohmann::ordered_json&&, arrival_time);

// Hands the body to the CPU pool: parse, then the endpoint (validation, prompt preparation), which answers
// through run_on_strand. The I/O thread returns at once.
void post_body(app& a, const std::shared_ptr<connection>& conn, http_request& req, body_handler handler) {
  const arrival_time arrival = std::chrono::steady_clock::now();
  auto body = std::make_shared<std::string>(std::move(req.body()));
  net::post(a.cpu_pool, [&a, conn, body = std::move(body), handler, arrival]() mutable {
    const size_t n_bytes = body->size();
    try {
      nlohmann::ordered_json j = parse_body(*body, a.eng->max_model_len());
      body.reset();  // the text is not needed past here: free it before the prompt is prepared
      handler(a, conn, std::move(j), arrival);
    } catch (...) {
      api_error e = current_api_error("handling a request body");
      net::post(conn->executor(), [conn, e] { send_api_error(conn, e); });
    }
    body.reset();
    if (n_bytes >= large_body_bytes) schedule_memory_trim(a);
  });
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
    {"/v1/audio/transcriptions", http::verb::post}, {"/v1/audio/translations", http::verb::post},
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
  if (m == http::verb::post && (path == "/v1/audio/transcriptions" || path == "/v1/audio/translations")) {
    require_ready(a);
    return handle_audio(a, conn, req, path == "/v1/audio/translations");  // a multipart form, not JSON
  }
  if (m == http::verb::post) {
    body_handler handler = nullptr;
    if (path == "/v1/chat/completions") handler = handle_chat_completions;
    else if (path == "/v1/completions") handler = handle_completions;
    else if (path == "/tokenize" || path == "/v1/tokenize") handler = handle_tokenize;
    else if (path == "/detokenize" || path == "/v1/detokenize") handler = handle_detokenize;
    if (handler) {
      require_ready(a);
      return post_body(a, conn, req, handler);
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
  } catch (...) {
    send_api_error(conn, current_api_error((std::string(req.method_string()) + " " + path).c_str()));
  }
}

}  // namespace autoglm::server

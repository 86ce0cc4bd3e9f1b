// core/error.h: the two error policies of the project.
//  - autoglm::error: a user-actionable failure (bad file, bad request, bad image). Thrown inside a layer,
//    caught at the layer boundary (CLI main, server handler, engine loop) and turned into a message.
//  - AG_CHECK: a programmer error (broken invariant). Prints file:line and aborts.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <utility>

namespace autoglm {

class error : public std::runtime_error {
 public:
  explicit error(const std::string& msg) : std::runtime_error(msg) {}
};

// A client request that cannot be served as sent (HTTP 400 in the server): names the offending field.
class invalid_request : public error {
 public:
  invalid_request(const std::string& msg, std::string param = {}) : error(msg), param_(std::move(param)) {}
  const std::string& param() const { return param_; }

 private:
  std::string param_;
};

[[noreturn]] inline void check_failed(const char* file, int line, const char* cond, const std::string& msg) {
  std::fprintf(stderr, "%s:%d: check failed: %s %s\n", file, line, cond, msg.c_str());
  std::abort();
}

}  // namespace autoglm

#define AG_CHECK(cond, ...)                                                            \
  do {                                                                                 \
    if (!(cond)) ::autoglm::check_failed(__FILE__, __LINE__, #cond, std::string{__VA_ARGS__}); \
  } while (0)

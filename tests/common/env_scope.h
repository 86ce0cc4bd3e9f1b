// tests/common/env_scope.h: an environment variable set for a scope and restored after (tests of switches that the
// code reads from the environment: AUTOGLM_CPU_REPACK, AUTOGLM_REPACK_CACHE, ...). Not for tests that run threads
// reading the environment at the same time.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>

namespace autoglm::test_support {

class env_scope {
 public:
  // value nullptr: the variable unset for the scope.
  env_scope(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) saved_ = old;
    if (value) ::setenv(name, value, 1);
    else ::unsetenv(name);
  }
  ~env_scope() {
    if (saved_) ::setenv(name_.c_str(), saved_->c_str(), 1);
    else ::unsetenv(name_.c_str());
  }
  env_scope(const env_scope&) = delete;
  env_scope& operator=(const env_scope&) = delete;

 private:
  std::string name_;
  std::optional<std::string> saved_;
};

}  // namespace autoglm::test_support

// server/http_guard.cpp: the log limiter, the exception sink and the I/O threads' run loop (see http_guard.h).
#include "server/http_guard.h"

#include "core/log.h"

namespace autoglm::server {

bool log_limiter::allow(uint64_t& suppressed) {
  std::lock_guard lock(mutex_);
  auto now = std::chrono::steady_clock::now();
  if (now - start_ >= window_) {
    start_ = now;
    n_in_window_ = 0;
  }
  if (n_in_window_ >= per_window_) {
    n_suppressed_++;
    return false;
  }
  n_in_window_++;
  suppressed = n_suppressed_;
  n_suppressed_ = 0;
  return true;
}

namespace {
log_limiter& handler_log_limiter() {
  static log_limiter limiter;
  return limiter;
}
}  // namespace

void exception_sink::report(const char* what) noexcept {
  try {
    uint64_t suppressed = 0;
    if (handler_log_limiter().allow(suppressed))
      AG_LOG_ERROR("a connection handler threw: {}; closing that connection ({} similar messages suppressed)", what,
                   suppressed);
    if (on_exception) on_exception(what);
  } catch (...) {
    // Closing the connection failed too: the run loop's catch is the last line; nothing more to do here.
  }
}

boost::asio::any_io_executor make_guarded_strand(boost::asio::io_context& ioc, std::shared_ptr<exception_sink> sink) {
  return boost::asio::any_io_executor(guarded_executor<boost::asio::strand<boost::asio::io_context::executor_type>>(
      boost::asio::make_strand(ioc), std::move(sink)));
}

void run_io_loop(boost::asio::io_context& ioc) {
  while (true) {
    try {
      ioc.run();
      return;
    } catch (const std::exception& e) {
      uint64_t suppressed = 0;
      if (handler_log_limiter().allow(suppressed))
        AG_LOG_ERROR("an I/O handler threw: {}; the I/O thread goes on ({} similar messages suppressed)", e.what(),
                     suppressed);
    } catch (...) {
      uint64_t suppressed = 0;
      if (handler_log_limiter().allow(suppressed))
        AG_LOG_ERROR("an I/O handler threw an unknown exception; the I/O thread goes on ({} suppressed)", suppressed);
    }
  }
}

}  // namespace autoglm::server

// server/http_guard.h: exceptions on I/O threads end one connection, never the process.
//
// Every piece of work for a connection (its socket completions, the timers of its stream, what endpoint code
// and generation jobs post to connection::executor()) runs through that connection's guarded_executor: a
// strand whose every function is wrapped in a try/catch that reports to the connection's exception_sink,
// which closes and releases that connection (its generation is cancelled through on_disconnect). What escapes
// anything else is caught by the I/O threads' run loops (run_io_loop). Both log through a rate limiter so a
// flood of bad requests cannot become a flood of log lines.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>

#include <boost/asio.hpp>

namespace autoglm::server {

// Allows `per_window` events per window; tells the caller how many were suppressed since the last allowed one.
class log_limiter {
 public:
  explicit log_limiter(int per_window = 5, std::chrono::milliseconds window = std::chrono::seconds(10))
      : per_window_(per_window), window_(window) {}
  // True when this event may be logged; `suppressed` receives the count of events dropped before it.
  bool allow(uint64_t& suppressed);

 private:
  std::mutex mutex_;
  int per_window_;
  std::chrono::milliseconds window_;
  std::chrono::steady_clock::time_point start_{};
  int n_in_window_ = 0;
  uint64_t n_suppressed_ = 0;
};

// Where a connection's executor reports an exception that escaped one of its handlers. Set once, before the
// connection's first operation; called on the connection's strand.
struct exception_sink {
  std::function<void(const char* what)> on_exception;
  void report(const char* what) noexcept;
};

// A strand (or any executor) whose functions run inside a try/catch that reports to the sink. Queries,
// requirements and preferences pass through to the inner executor, so it fits any_io_executor.
template <class Inner>
class guarded_executor {
 public:
  guarded_executor(Inner inner, std::shared_ptr<exception_sink> sink) noexcept
      : inner_(std::move(inner)), sink_(std::move(sink)) {}

  template <class Property>
  requires boost::asio::can_query<const Inner&, Property>::value decltype(auto) query(const Property& p) const
      noexcept(boost::asio::is_nothrow_query<const Inner&, Property>::value) {
    return boost::asio::query(inner_, p);
  }

  template <class Property>
  requires boost::asio::can_require<const Inner&, Property>::value auto require(const Property& p) const {
    using next = std::decay_t<decltype(boost::asio::require(inner_, p))>;
    return guarded_executor<next>(boost::asio::require(inner_, p), sink_);
  }

  template <class Property>
  requires boost::asio::can_prefer<const Inner&, Property>::value auto prefer(const Property& p) const {
    using next = std::decay_t<decltype(boost::asio::prefer(inner_, p))>;
    return guarded_executor<next>(boost::asio::prefer(inner_, p), sink_);
  }

  template <class Function>
  void execute(Function&& f) const {
    boost::asio::execution::execute(inner_, call<std::decay_t<Function>>{std::forward<Function>(f), sink_});
  }

  friend bool operator==(const guarded_executor& a, const guarded_executor& b) noexcept {
    return a.inner_ == b.inner_ && a.sink_ == b.sink_;
  }
  friend bool operator!=(const guarded_executor& a, const guarded_executor& b) noexcept { return !(a == b); }

 private:
  template <class F>
  struct call {
    F f;
    std::shared_ptr<exception_sink> sink;
    void operator()() {
      try {
        f();
      } catch (const std::exception& e) {
        sink->report(e.what());
      } catch (...) {
        sink->report("unknown exception");
      }
    }
  };

  template <class>
  friend class guarded_executor;

  Inner inner_;
  std::shared_ptr<exception_sink> sink_;
};

// A new strand on `ioc` whose handlers report exceptions to `sink`, as the executor type sockets use.
boost::asio::any_io_executor make_guarded_strand(boost::asio::io_context& ioc, std::shared_ptr<exception_sink> sink);

// Runs the io_context on this thread until it is stopped; an exception that escapes a handler is logged (rate
// limited) and the loop goes on.
void run_io_loop(boost::asio::io_context& ioc);

}  // namespace autoglm::server

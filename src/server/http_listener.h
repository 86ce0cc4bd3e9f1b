// server/http_listener.h: accepts connections on host:port for the I/O threads.
//
// Each connection gets its own guarded strand (http_guard.h). Up to max_connections are served normally; a few
// more (overflow_connections) are accepted only to answer GET /health and 503 to anything else, so a load
// balancer's probe still gets through when clients hold every slot; beyond that the listener stops accepting
// (new connections wait in the kernel's backlog) until one closes. When accept itself fails (out of file
// descriptors, ...), it retries with back-off (50 ms doubling to 1 s) and logs once per episode and once on
// recovery instead of spinning. An episode ends after a quiet second of accepts without a failure: near the
// descriptor limit accept succeeds and fails in turns (one closes, the next client takes it), which would otherwise
// log a pair of lines per turn.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "server/http_connection.h"

namespace autoglm::server {

// Connections accepted beyond max_connections to answer /health or 503.
int32_t overflow_connections(int32_t max_connections);

class http_listener : public std::enable_shared_from_this<http_listener> {
 public:
  // Binds and listens at once (throws naming host:port when it cannot). Create with std::make_shared.
  http_listener(net::io_context& ioc, const std::string& host, uint16_t port, const http_options& options,
                request_handler handler);
  void start();
  void stop();  // stops accepting new connections (existing ones keep going)
  uint16_t port() const { return port_; }

 private:
  void do_accept();
  void on_accept(beast::error_code ec, net::ip::tcp::socket socket, std::shared_ptr<exception_sink> sink);
  void back_off(const beast::error_code& ec);
  void resume();
  void end_episode_if_quiet();

  net::io_context& ioc_;
  net::strand<net::io_context::executor_type> strand_;  // the accept loop's state below lives on it
  net::ip::tcp::acceptor acceptor_;
  net::steady_timer retry_timer_;
  net::steady_timer quiet_timer_;  // a second after the first accept that succeeds in an episode
  const http_options& options_;
  request_handler handler_;
  std::shared_ptr<connection_count> count_;
  uint16_t port_ = 0;

  bool stopped_ = false;
  std::atomic<bool> paused_at_cap_{false};
  bool failing_ = false;  // in an episode of failing accepts
  bool recovering_ = false;  // ... and accepts have succeeded since its last failure (quiet_timer_ armed)
  std::chrono::milliseconds backoff_{0};
  std::chrono::steady_clock::time_point failing_since_, recovered_at_;
  uint64_t n_failed_ = 0;
};

}  // namespace autoglm::server

// server/http_listener.cpp: the accept loop: connection cap, back-off when accept fails (see http_listener.h).
#include "server/http_listener.h"

#include <algorithm>

#include "core/log.h"
#include "server/metrics.h"

namespace autoglm::server {

namespace {
constexpr std::chrono::milliseconds first_backoff{50}, max_backoff{1000};

log_limiter& cap_log() {
  static log_limiter limiter(2, std::chrono::seconds(10));
  return limiter;
}
}  // namespace

int32_t overflow_connections(int32_t max_connections) { return std::clamp(max_connections / 16, 4, 64); }

http_listener::http_listener(net::io_context& ioc, const std::string& host, uint16_t port, const http_options& options,
                             request_handler handler)
    : ioc_(ioc),
      strand_(net::make_strand(ioc)),
      acceptor_(strand_),
      retry_timer_(strand_),
      quiet_timer_(strand_),
      options_(options),
      handler_(std::move(handler)),
      count_(std::make_shared<connection_count>()) {
  beast::error_code ec;
  auto address = net::ip::make_address(host, ec);
  if (ec) throw std::runtime_error("--host '" + host + "' is not an IP address: " + ec.message());
  net::ip::tcp::endpoint ep{address, port};
  acceptor_.open(ep.protocol());
  acceptor_.set_option(net::socket_base::reuse_address(true));
  acceptor_.bind(ep, ec);
  if (ec) throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message());
  acceptor_.listen(net::socket_base::max_listen_connections);
  port_ = acceptor_.local_endpoint().port();
}

void http_listener::start() {
  // A closing connection wakes a listener that paused at the cap. Weak: connections may outlive the listener.
  count_->on_release = [weak = weak_from_this()] {
    auto self = weak.lock();
    if (self && self->paused_at_cap_.load())
      net::post(self->strand_, [weak] {
        if (auto l = weak.lock()) l->resume();
      });
  };
  net::dispatch(strand_, [self = shared_from_this()] { self->do_accept(); });
}

void http_listener::stop() {
  net::post(strand_, [self = shared_from_this()] {
    self->stopped_ = true;
    beast::error_code ec;
    self->acceptor_.close(ec);
    self->retry_timer_.cancel();
    self->quiet_timer_.cancel();
  });
}

void http_listener::do_accept() {
  if (stopped_ || !acceptor_.is_open()) return;
  int32_t limit = options_.max_connections + overflow_connections(options_.max_connections);
  if (count_->n_open.load() >= limit) {
    // Set the flag, then look again: a connection closing meanwhile either sees the flag (and posts resume) or
    // its decrement is seen here.
    paused_at_cap_ = true;
    if (count_->n_open.load() >= limit) {
      uint64_t suppressed = 0;
      if (cap_log().allow(suppressed))
        AG_LOG_WARN(
            "{} connections open (--max-connections {} + {} for /health and 503 answers): not accepting "
            "until one closes",
            count_->n_open.load(), options_.max_connections, overflow_connections(options_.max_connections));
      return;
    }
    paused_at_cap_ = false;
  }
  auto sink = std::make_shared<exception_sink>();
  acceptor_.async_accept(
      make_guarded_strand(ioc_, sink),
      net::bind_executor(strand_, [weak = weak_from_this(), sink](beast::error_code ec, net::ip::tcp::socket socket) {
        if (auto l = weak.lock()) l->on_accept(ec, std::move(socket), sink);
      }));
}

void http_listener::resume() {
  if (!paused_at_cap_.load() || stopped_) return;
  if (count_->n_open.load() >= options_.max_connections + overflow_connections(options_.max_connections)) return;
  paused_at_cap_ = false;
  do_accept();
}

void http_listener::on_accept(beast::error_code ec, net::ip::tcp::socket socket, std::shared_ptr<exception_sink> sink) {
  if (ec == net::error::operation_aborted || stopped_ || !acceptor_.is_open()) return;
  if (ec == net::error::connection_aborted) return do_accept();  // the client gave up before we accepted
  if (ec) return back_off(ec);
  if (failing_ && !recovering_) {
    // Recovered, unless accept fails again within the quiet second (then it is the same episode).
    recovering_ = true;
    recovered_at_ = std::chrono::steady_clock::now();
    quiet_timer_.expires_after(std::chrono::seconds(1));
    quiet_timer_.async_wait([weak = weak_from_this()](beast::error_code wait_ec) {
      if (wait_ec) return;
      if (auto l = weak.lock()) l->end_episode_if_quiet();
    });
  }
  beast::error_code opt_ec;
  socket.set_option(net::ip::tcp::no_delay(true), opt_ec);
  bool over = count_->n_open.load() >= options_.max_connections;
  if (over && options_.gauges) options_.gauges->n_over_capacity++;
  std::make_shared<connection>(std::move(socket), options_, handler_, std::move(sink), count_, over)->start();
  do_accept();
}

void http_listener::end_episode_if_quiet() {
  if (!failing_ || !recovering_ || stopped_) return;
  failing_ = recovering_ = false;
  const double s = std::chrono::duration<double>(recovered_at_ - failing_since_).count();
  AG_LOG_INFO("accepting connections again after {:.1f} s ({} failed accepts)", s, n_failed_);
}

void http_listener::back_off(const beast::error_code& ec) {
  // Out of file descriptors (EMFILE/ENFILE) or memory, the listening socket stays readable and accept fails at
  // once: retrying immediately spins a core and floods the log. Wait instead, longer each time.
  if (options_.gauges) options_.gauges->n_accept_errors++;
  n_failed_++;
  if (!failing_) {
    failing_ = true;
    failing_since_ = std::chrono::steady_clock::now();
    n_failed_ = 1;
    backoff_ = first_backoff;
    AG_LOG_ERROR(
        "accept failed: {} ({} connections open); retrying with back-off up to {} ms, logged again when "
        "accepting recovers",
        ec.message(), count_->n_open.load(), max_backoff.count());
  } else if (recovering_) {
    recovering_ = false;  // not recovered after all: the same episode goes on (quiet_timer_ then finds it so)
    backoff_ = first_backoff;
  } else {
    backoff_ = std::min(backoff_ * 2, max_backoff);
  }
  retry_timer_.expires_after(backoff_);
  retry_timer_.async_wait([weak = weak_from_this()](beast::error_code wait_ec) {
    if (wait_ec) return;
    if (auto l = weak.lock()) l->do_accept();
  });
}

}  // namespace autoglm::server

// server/http_connection.cpp: the Beast connection state machine and the accept loop.
#include "server/http_connection.h"

#include <sstream>

#include "core/log.h"
#include "server/api_error.h"
#include "server/sse.h"

namespace autoglm::server {

connection::connection(net::ip::tcp::socket socket, const http_options& options, const request_handler& handler)
    : stream_(std::move(socket)), strand_(stream_.get_executor()), options_(options), handler_(handler) {
  beast::error_code ec;
  auto ep = stream_.socket().remote_endpoint(ec);
  if (!ec) remote_ = ep.address().to_string() + ":" + std::to_string(ep.port());
}

void connection::start() {
  net::dispatch(strand_, [self = shared_from_this()] { self->do_read(); });
}

void connection::do_read() {
  if (closed_) return;
  in_response_ = false;
  response_complete_ = false;
  streaming_ = false;
  on_disconnect_ = nullptr;
  parser_.emplace();
  parser_->header_limit(64 * 1024);
  parser_->body_limit(options_.max_body_bytes);
  stream_.expires_after(options_.timeout);
  http::async_read(stream_, buffer_, *parser_,
                   net::bind_executor(strand_, [self = shared_from_this()](beast::error_code ec, size_t n) {
                     self->on_read(ec, n);
                   }));
}

void connection::on_read(beast::error_code ec, size_t) {
  if (ec == http::error::body_limit) {
    keep_alive_ = false;
    linger_ = true;  // the client is still sending the body: let it read the 413 before the socket closes
    in_response_ = true;
    send_error(api_error(413,
                         "request body exceeds the server's limit of " + std::to_string(options_.max_body_bytes) +
                             " bytes (--max-body-bytes)",
                         "invalid_request_error", "", "request_too_large"));
    return;
  }
  if (ec == http::error::header_limit) {
    keep_alive_ = false;
    in_response_ = true;
    send_error(api_error(431, "request headers are too large"));
    return;
  }
  if (ec) {
    // end_of_stream (client closed an idle keep-alive connection), timeout, reset, or a malformed request line.
    if (ec != http::error::end_of_stream && ec != beast::error::timeout && ec != net::error::connection_reset &&
        ec != net::error::operation_aborted) {
      if (ec.category() == http::make_error_code(http::error::bad_version).category() && !closed_) {
        keep_alive_ = false;
        in_response_ = true;
        send_error(api_error(400, "malformed HTTP request: " + ec.message()));
        return;
      }
    }
    close();
    return;
  }
  http_request req = parser_->release();
  keep_alive_ = req.keep_alive();
  is_head_ = req.method() == http::verb::head;
  in_response_ = true;
  stream_.expires_never();
  handler_(shared_from_this(), std::move(req));
}

http::response<http::empty_body> connection::make_header(int status, std::string_view content_type,
                                                         const header_list& extra) {
  http::response<http::empty_body> res{http::int_to_status(unsigned(status)), 11};
  res.result(unsigned(status));
  res.set(http::field::server, "autoglm");
  if (!content_type.empty()) res.set(http::field::content_type, std::string(content_type));
  if (!options_.cors_origin.empty()) {
    res.set(http::field::access_control_allow_origin, options_.cors_origin);
    if (options_.cors_origin != "*") res.set(http::field::vary, "Origin");
  }
  for (auto& [k, v] : extra) res.set(k, v);
  bool draining = options_.draining && options_.draining();
  if (draining) keep_alive_ = false;
  res.keep_alive(keep_alive_);
  if (options_.on_response) options_.on_response(status);
  return res;
}

void connection::send(int status, std::string body, std::string_view content_type, const header_list& extra) {
  if (closed_ || response_complete_) return;
  auto res = make_header(status, content_type, extra);
  res.content_length(body.size());
  std::ostringstream os;
  os << res.base();
  std::string bytes = os.str();
  if (!is_head_) bytes += body;  // HEAD: the same headers, Content-Length included, and no body
  response_complete_ = true;
  enqueue(std::move(bytes));
}

void connection::send_json(int status, const nlohmann::json& body, const header_list& extra) {
  send(status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json", extra);
}

void connection::send_error(const api_error& e, const header_list& extra) {
  if (streaming_) {
    // Headers are gone already: report in-band, the way OpenAI-compatible servers do, then finish.
    write_event(sse_data(e.to_json()));
    end_stream();
    return;
  }
  send_json(e.status(), e.to_json(), extra);
}

void connection::begin_stream(const header_list& extra) {
  if (closed_ || streaming_ || response_complete_) return;
  auto res = make_header(200, "text/event-stream", extra);
  res.set(http::field::cache_control, "no-cache");
  res.set("X-Accel-Buffering", "no");
  res.chunked(true);
  std::ostringstream os;
  os << res.base();
  streaming_ = true;
  enqueue(os.str());
}

void connection::write_event(std::string_view sse_bytes) {
  if (!streaming_ || response_complete_ || sse_bytes.empty()) return;
  enqueue(http_chunk(sse_bytes));
}

void connection::end_stream() {
  if (!streaming_ || response_complete_) return;
  response_complete_ = true;
  enqueue(http_last_chunk());
}

void connection::on_disconnect(std::function<void()> fn) {
  on_disconnect_ = std::move(fn);
  if (peer_gone_) {
    auto cb = std::move(on_disconnect_);
    on_disconnect_ = nullptr;
    cb();
    return;
  }
  watch();
}

void connection::enqueue(std::string bytes) {
  if (closed_ || peer_gone_) return;
  pending_.push_back(std::move(bytes));
  if (!writing_) do_write();
}

void connection::do_write() {
  // Coalesce everything queued into one write: a slow client gets fewer, larger writes.
  write_buf_.clear();
  while (!pending_.empty()) {
    write_buf_ += pending_.front();
    pending_.pop_front();
  }
  writing_ = true;
  stream_.expires_after(options_.timeout);
  net::async_write(stream_, net::buffer(write_buf_),
                   net::bind_executor(strand_, [self = shared_from_this()](beast::error_code ec, size_t n) {
                     self->on_write(ec, n);
                   }));
}

void connection::on_write(beast::error_code ec, size_t) {
  writing_ = false;
  if (ec) {
    lost_peer();
    return;
  }
  if (!pending_.empty()) {
    do_write();
  } else if (response_complete_) {
    finish_response();
  }
}

void connection::finish_response() {
  on_disconnect_ = nullptr;
  if (!keep_alive_) {
    if (linger_) linger();
    else close();
    return;
  }
  if (watching_) {
    // The disconnect watch still holds a read on the socket: cancel it and read on once it has returned.
    read_after_watch_ = true;
    beast::error_code ec;
    stream_.socket().cancel(ec);
    return;
  }
  do_read();
}

void connection::watch() {
  if (watching_ || peer_gone_ || closed_) return;
  if (buffer_.size() > (1u << 20)) return;  // a client pipelining megabytes: stop reading until we answer
  watching_ = true;
  stream_.socket().async_read_some(
      buffer_.prepare(4096),
      net::bind_executor(strand_, [self = shared_from_this()](beast::error_code ec, size_t n) { self->on_watch(ec, n); }));
}

void connection::on_watch(beast::error_code ec, size_t n) {
  watching_ = false;
  if (!ec) buffer_.commit(n);  // bytes of a pipelined next request: keep them for do_read
  if (read_after_watch_) {
    read_after_watch_ = false;
    if (ec && ec != net::error::operation_aborted) {
      close();
      return;
    }
    do_read();
    return;
  }
  if (ec) {
    lost_peer();
    return;
  }
  if (in_response_ && !response_complete_) watch();
}

void connection::linger() {
  // Closing with unread request bytes makes the kernel send RST, which can destroy the response we just wrote
  // before the client reads it. Half-close, then discard what the client still sends (bounded in time and bytes).
  beast::error_code ec;
  stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ec);
  AG_LOG_DEBUG("linger: shutdown {}", ec.message());
  if (ec) return close();
  linger_read();
}

void connection::linger_read() {
  if (linger_bytes_ > 4 * options_.max_body_bytes + (1u << 20)) return close();
  stream_.expires_after(std::chrono::seconds(5));
  stream_.async_read_some(net::buffer(linger_buf_),
                          net::bind_executor(strand_, [self = shared_from_this()](beast::error_code ec, size_t n) {
                            if (ec) AG_LOG_DEBUG("linger read: {} after {} bytes", ec.message(), self->linger_bytes_);
                            if (ec) return self->close();
                            self->linger_bytes_ += n;
                            self->linger_read();
                          }));
}

void connection::lost_peer() {
  if (peer_gone_) return;
  peer_gone_ = true;
  pending_.clear();
  auto cb = std::move(on_disconnect_);
  on_disconnect_ = nullptr;
  if (cb) cb();
  close();
}

void connection::close() {
  if (closed_) return;
  closed_ = true;
  beast::error_code ec;
  stream_.socket().shutdown(net::ip::tcp::socket::shutdown_both, ec);
  stream_.socket().close(ec);
}

http_listener::http_listener(net::io_context& ioc, const std::string& host, uint16_t port, const http_options& options,
                             request_handler handler)
    : ioc_(ioc), acceptor_(net::make_strand(ioc)), options_(options), handler_(std::move(handler)) {
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
  net::dispatch(acceptor_.get_executor(), [this] { do_accept(); });
}

void http_listener::stop() {
  net::post(acceptor_.get_executor(), [this] {
    beast::error_code ec;
    acceptor_.close(ec);
  });
}

void http_listener::do_accept() {
  acceptor_.async_accept(net::make_strand(ioc_), [this](beast::error_code ec, net::ip::tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) {
      socket.set_option(net::ip::tcp::no_delay(true), ec);
      std::make_shared<connection>(std::move(socket), options_, handler_)->start();
    } else {
      AG_LOG_WARN("accept: {}", ec.message());
    }
    do_accept();
  });
}

}  // namespace autoglm::server

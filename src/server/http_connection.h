// server/http_connection.h: one client connection (Boost.Beast over Asio), driven entirely on its own strand.
//
// Reads a request through request_reader (http_framing.h: the header first, framing checked, then the body;
// what it rejects is answered and the connection closed), hands it to the request handler, and writes the
// answer: a whole response, or a chunked SSE stream that the handler feeds as engine events arrive. While a
// handler is working (waiting for the engine) the connection keeps one read pending on the socket, so a client
// that goes away is noticed at once and reported through on_disconnect (the handler cancels its engine
// requests). No thread ever blocks on a client: hundreds of open streams cost memory, not threads.
//
// Every resource a client can hold is bounded: time (header, body, keep-alive and write-stall timeouts),
// memory (header/trailer/body limits; at most max_queued_bytes of response waiting for a client that does not
// read, past which the client is treated as gone), and exceptions (the connection's executor is guarded,
// http_guard.h: a handler that throws closes its connection only).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "server/http_framing.h"
#include "server/http_guard.h"

namespace autoglm::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

class api_error;
class connection;
struct http_gauges;

using http_request = http::request<http::string_body>;
using request_handler = std::function<void(std::shared_ptr<connection>, http_request&&)>;

struct http_options {
  http_limits limits;                           // header / body / trailer bytes
  std::chrono::seconds header_timeout{30};      // first byte of a request to the end of its header
  std::chrono::seconds body_timeout{60};        // longest pause while the body arrives
  std::chrono::seconds keepalive_timeout{30};   // idle between requests
  std::chrono::seconds write_timeout{60};       // longest stall while the client does not read
  size_t max_queued_bytes = 8u << 20;           // response bytes waiting for one client; beyond: client gone
  int32_t max_connections = 1024;               // beyond: 503 (and /health) on a few more, then no accept
  std::string cors_origin;                      // empty: no CORS headers
  std::function<void(int status)> on_response;  // metrics hook
  std::function<bool()> draining;               // true: close after the current response
  http_gauges* gauges = nullptr;                // live connection / queue numbers for /metrics
};

using header_list = std::vector<std::pair<std::string, std::string>>;

// Open connections of one listener; shared with each connection so the count stays right whoever goes first.
struct connection_count {
  std::atomic<int32_t> n_open{0};
  std::function<void()> on_release;  // set by the listener before its first accept: resume a paused accept
};

class connection : public std::enable_shared_from_this<connection> {
 public:
  // `over_capacity`: accepted beyond max_connections: answers GET /health, 503 to anything else, then closes.
  connection(net::ip::tcp::socket socket, const http_options& options, const request_handler& handler,
             std::shared_ptr<exception_sink> sink, std::shared_ptr<connection_count> count, bool over_capacity);
  ~connection();
  void start();

  // All of the following must run on executor() (the handler is called there; post engine events there).
  net::any_io_executor executor() { return strand_; }

  void send(int status, std::string body, std::string_view content_type, const header_list& extra = {});
  void send_json(int status, const nlohmann::json& body, const header_list& extra = {});
  void send_error(const api_error& e, const header_list& extra = {});

  // SSE: the header goes out now; write_event adds bytes (already SSE-framed); end_stream finishes.
  void begin_stream(const header_list& extra = {});
  void write_event(std::string_view sse_bytes);
  void end_stream();
  bool streaming() const { return streaming_; }

  // Called at most once, on the strand, when the peer closes or resets the connection, a write fails or
  // stalls, the client lets more than max_queued_bytes pile up, or a handler throws, before the response is
  // complete. Arms the disconnect watch.
  void on_disconnect(std::function<void()> fn);
  bool peer_gone() const { return peer_gone_; }
  const std::string& remote() const { return remote_; }

 private:
  void begin_request();
  void parse_buffered();
  void read_more();
  void on_read(beast::error_code ec, size_t n);
  void on_header();
  void dispatch_request();
  void reject(const framing_error& e);
  std::chrono::seconds header_timeout() const;
  void enqueue(std::string bytes);
  void do_write();
  void on_write(beast::error_code ec, size_t n);
  void finish_response();
  void watch();
  void on_watch(beast::error_code ec, size_t n);
  void linger();
  void linger_read();
  void lost_peer(const char* why);
  void on_handler_exception(const char* what);
  void drop_queue();
  void set_queued(size_t bytes);
  void close();
  http::response<http::empty_body> make_header(int status, std::string_view content_type, const header_list& extra);

  beast::tcp_stream stream_;
  net::any_io_executor strand_;  // the socket's executor: a guarded strand made at accept time
  beast::flat_buffer buffer_;
  request_reader reader_;
  const http_options& options_;
  const request_handler& handler_;
  std::shared_ptr<exception_sink> sink_;
  std::shared_ptr<connection_count> count_;
  std::string remote_;
  const bool over_capacity_;

  uint64_t n_requests_ = 0;
  bool request_started_ = false;  // a byte of the current request has arrived (header timeout running)
  bool keep_alive_ = false;
  bool is_head_ = false;
  bool in_response_ = false;        // a request is being answered (no new read until it is complete)
  bool response_complete_ = false;  // the last bytes of the response are queued
  bool streaming_ = false;
  std::deque<std::string> pending_;
  std::string write_buf_;  // being written, from write_off_
  size_t write_off_ = 0;
  size_t queued_bytes_ = 0;  // pending_ + the unwritten rest of write_buf_
  bool writing_ = false;
  bool watching_ = false;
  bool read_after_watch_ = false;
  bool peer_gone_ = false;
  bool closed_ = false;
  bool linger_ = false;
  size_t linger_bytes_ = 0;
  std::array<char, 16384> linger_buf_;
  std::function<void()> on_disconnect_;
};

}  // namespace autoglm::server

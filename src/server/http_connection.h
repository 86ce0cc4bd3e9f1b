// server/http_connection.h: one client connection (Boost.Beast over Asio), driven entirely on its own strand.
//
// Reads requests (body size limit → 413, read timeout), hands each to the request handler, and writes the
// answer: a whole response, or a chunked SSE stream that the handler feeds as engine events arrive. While a
// handler is working (waiting for the engine) the connection keeps one read pending on the socket, so a client
// that goes away is noticed at once and reported through on_disconnect (the handler cancels its engine
// requests). No thread ever blocks on a client: hundreds of open streams cost memory, not threads.
#pragma once

#include <array>
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

namespace autoglm::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

class api_error;
class connection;

using http_request = http::request<http::string_body>;
using request_handler = std::function<void(std::shared_ptr<connection>, http_request&&)>;

struct http_options {
  size_t max_body_bytes = 64u << 20;
  std::chrono::seconds timeout{600};  // read of one request, write of one piece of a response, keep-alive idle
  std::string cors_origin;            // empty: no CORS headers
  std::function<void(int status)> on_response;  // metrics hook
  std::function<bool()> draining;               // true: close after the current response
};

using header_list = std::vector<std::pair<std::string, std::string>>;

class connection : public std::enable_shared_from_this<connection> {
 public:
  connection(net::ip::tcp::socket socket, const http_options& options, const request_handler& handler);
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

  // Called at most once, on the strand, when the peer closes or resets the connection (or a write fails)
  // before the response is complete. Arms the disconnect watch.
  void on_disconnect(std::function<void()> fn);
  bool peer_gone() const { return peer_gone_; }
  const std::string& remote() const { return remote_; }

 private:
  void do_read();
  void on_read(beast::error_code ec, size_t n);
  void enqueue(std::string bytes);
  void do_write();
  void on_write(beast::error_code ec, size_t n);
  void finish_response();
  void watch();
  void on_watch(beast::error_code ec, size_t n);
  void linger();
  void linger_read();
  void lost_peer();
  void close();
  http::response<http::empty_body> make_header(int status, std::string_view content_type, const header_list& extra);

  beast::tcp_stream stream_;
  net::any_io_executor strand_;  // the socket's executor: a strand made at accept time
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  const http_options& options_;
  const request_handler& handler_;
  std::string remote_;

  bool keep_alive_ = false;
  bool is_head_ = false;
  bool in_response_ = false;        // a request is being answered (no new read until it is complete)
  bool response_complete_ = false;  // the last bytes of the response are queued
  bool streaming_ = false;
  std::deque<std::string> pending_;
  std::string write_buf_;
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

// Accepts connections on host:port and runs them on a pool of I/O threads.
class http_listener {
 public:
  http_listener(net::io_context& ioc, const std::string& host, uint16_t port, const http_options& options,
                request_handler handler);
  void start();
  void stop();  // stops accepting new connections (existing ones keep going)
  uint16_t port() const { return port_; }

 private:
  void do_accept();

  net::io_context& ioc_;
  net::ip::tcp::acceptor acceptor_;
  const http_options& options_;
  request_handler handler_;
  uint16_t port_ = 0;
};

}  // namespace autoglm::server

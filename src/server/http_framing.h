// server/http_framing.h: how the server reads one HTTP/1.1 request from bytes, with no socket: Beast's parser
// configured with the server's limits, the message-framing rules of RFC 9112 section 6.3 that Beast leaves to
// us, and a bound on what the parser may hold back (trailers, chunk-size lines). The connection
// (http_connection.cpp) reads only through request_reader, and the HTTP fuzz target drives the same class with
// raw bytes, so what is fuzzed is what serves.
//
// Answers chosen (the connection always closes after them; nothing after the rejected header is parsed, so a
// request smuggled behind it is never answered):
//   400  Transfer-Encoding together with Content-Length; Transfer-Encoding whose last coding is not `chunked`
//        (identity, xchunked, "chunked, identity", gzip, ...), an empty or malformed coding list, chunked twice,
//        Transfer-Encoding in an HTTP/1.0 request; Content-Length repeated, listed ("5, 5") or not a plain
//        decimal; any other syntax error Beast reports.
//   501  a well-formed list that ends in `chunked` but applies another coding first ("gzip, chunked"): a valid
//        message whose coding the server does not implement (RFC 9110 section 15.6.2).
//   413  the body exceeds max_body_bytes.
//   431  the request line and header exceed max_header_bytes, or the trailer section exceeds max_trailer_bytes.
// Each limit counts the bytes of its element (this request's header; one chunk-size line; the last chunk with its
// trailer section), never what happens to be buffered: whether a request is read, and how many requests a
// connection yields, depend on the bytes only, not on how TCP split them (a split-dependent answer is the stuff
// of request smuggling). Only which of two faults a refusal names may differ with the split (a header both over
// the limit and malformed early on is a 400 or a 431); 501 is decided on a complete header, which is read only
// when it fits, so it never trades places with a 431.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <boost/beast/http.hpp>

namespace autoglm::server {

namespace http_ns = boost::beast::http;

struct http_limits {
  size_t max_header_bytes = 64u << 10;   // request line + header fields (431 above)
  size_t max_body_bytes = 64u << 20;     // decoded body (413 above)
  size_t max_trailer_bytes = 16u << 10;  // trailer section, or one chunk-size line with its extensions (431/400)
};

using request_parser = http_ns::request_parser<http_ns::string_body>;

// Sets the parser's header and body limits. Call on a fresh parser, before the first byte.
void configure_request_parser(request_parser& parser, const http_limits& limits);

// The answer to a request the server will not read on; the connection closes after it.
struct framing_error {
  int status = 400;
  std::string message;
};

// RFC 9112 section 6.3 checks on a complete request header: at most one Content-Length, a plain decimal;
// Transfer-Encoding exactly `chunked` (any letter case), never with Content-Length, never in HTTP/1.0.
// Returns the error to send, or nothing when the body can be read.
std::optional<framing_error> check_request_framing(const http_ns::request_header<>& header);

// Reads one request at a time from bytes the caller buffers. Usage: start(); then feed(buffered bytes) as they
// arrive and drop `consumed` bytes from the front of the buffer after each call:
//   NEED_MORE  read more bytes, append them to what was not consumed, feed again
//   HEADER     the header is complete and passed the framing checks; a body follows (feed again)
//   DONE       release() the request; bytes after it (pipelined requests) stay in the caller's buffer
//   REJECTED   answer error() and close the connection
// Never throws: an exception from Beast's parser becomes a 400.
class request_reader {
 public:
  enum class status { NEED_MORE, HEADER, DONE, REJECTED };

  explicit request_reader(http_limits limits = {}) : limits_(limits) {}

  void start();
  status feed(std::string_view bytes, size_t& consumed);
  // The peer closed its sending side; REJECTED when a request was under way (then error() says what).
  status feed_eof();

  bool got_some() const { return parser_ && parser_->got_some(); }
  bool header_done() const { return header_checked_; }
  // The request header; valid once feed() has returned HEADER or DONE, until release().
  const http_ns::request_header<>& header() const { return parser_->get().base(); }
  const framing_error& error() const { return error_; }
  const http_limits& limits() const { return limits_; }
  http_ns::request<http_ns::string_body> release();

 private:
  status reject(int status, std::string message);
  status reject_header_limit();

  http_limits limits_;
  std::optional<request_parser> parser_;
  bool header_checked_ = false;
  size_t header_bytes_ = 0;  // bytes of this request's header the parser has consumed (request line, fields)
  bool done_ = false;
  bool rejected_ = false;
  framing_error error_;
};

}  // namespace autoglm::server

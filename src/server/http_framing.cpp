// server/http_framing.cpp: request framing rules and the socket-free request reader (see http_framing.h).
// Beast's basic_parser::put, instantiated here, trips GCC's -Wmaybe-uninitialized on a boost::optional it
// returns empty (a false positive at -O2, seen in the sanitizer build). GCC judges the pragma at the header's
// lines, so it comes before the include.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "server/http_framing.h"

#include <algorithm>
#include <limits>
#include <vector>

namespace autoglm::server {

namespace beast = boost::beast;
namespace http = boost::beast::http;

namespace {

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return out;
}

// Shown in messages: never echo a huge or binary header value back.
std::string quoted(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 40)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > 40) out += "...";
  return "'" + out + "'";
}

}  // namespace

void configure_request_parser(request_parser& parser, const http_limits& limits) {
  parser.header_limit(
      std::uint32_t(std::min<size_t>(limits.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
  parser.body_limit(std::uint64_t(limits.max_body_bytes));
}

std::optional<framing_error> check_request_framing(const http::request_header<>& header) {
  size_t n_length = 0;
  for (auto [it, end] = header.equal_range(http::field::content_length); it != end; ++it) {
    n_length++;
    std::string_view v(it->value().data(), it->value().size());
    if (v.empty() || v.size() > 18 || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return framing_error{400, "malformed Content-Length " + quoted(v) + ": expected one decimal number"};
  }
  if (n_length > 1) return framing_error{400, "more than one Content-Length header"};

  std::vector<std::string> codings;
  bool has_te = false;
  for (auto [it, end] = header.equal_range(http::field::transfer_encoding); it != end; ++it) {
    has_te = true;
    std::string_view list(it->value().data(), it->value().size());
    size_t start = 0;
    while (true) {
      size_t comma = list.find(',', start);
      std::string_view item =
          trim_ows(list.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
      if (item.empty() || !std::all_of(item.begin(), item.end(), is_tchar))
        return framing_error{400, "malformed Transfer-Encoding " + quoted(list) + ": expected 'chunked'"};
      codings.push_back(lower(item));
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
  }
  if (!has_te) return std::nullopt;
  if (header.version() < 11)
    return framing_error{400, "Transfer-Encoding is not allowed in an HTTP/1.0 request; send Content-Length"};
  if (n_length) return framing_error{400, "a request must not carry both Transfer-Encoding and Content-Length"};
  if (codings.back() != "chunked")
    return framing_error{400, "Transfer-Encoding must end in 'chunked' (got " + quoted(codings.back()) +
                                  "): the body length cannot be determined"};
  if (std::count(codings.begin(), codings.end(), "chunked") > 1)
    return framing_error{400, "Transfer-Encoding applies 'chunked' more than once"};
  if (codings.size() > 1)
    return framing_error{501,
                         "transfer coding " + quoted(codings.front()) +
                             " is not supported; send the body with Content-Length or 'Transfer-Encoding: chunked'"};
  return std::nullopt;
}

void request_reader::start() {
  parser_.emplace();
  configure_request_parser(*parser_, limits_);
  header_checked_ = false;
  header_bytes_ = 0;
  done_ = false;
  rejected_ = false;
  error_ = {};
}

request_reader::status request_reader::reject(int status, std::string message) {
  error_ = {status, std::move(message)};
  rejected_ = true;
  return status::REJECTED;
}

request_reader::status request_reader::reject_header_limit() {
  return reject(431, "the request line and headers exceed " + std::to_string(limits_.max_header_bytes) + " bytes");
}

request_reader::status request_reader::feed(std::string_view bytes, size_t& consumed) {
  consumed = 0;
  if (!parser_) start();
  if (done_) return status::DONE;
  if (rejected_) return status::REJECTED;
  try {
    while (consumed < bytes.size()) {
      // Every limit counts bytes of the element, never what happens to be buffered, so that the answer depends
      // on the bytes alone and not on how TCP split them. The parser is never shown more than the element may
      // still grow by:
      //  - the header: Beast consumes the request line and each complete field as it goes and checks its own
      //    header limit only against what one put() call sees, from where that call starts. Read whole, the
      //    request line was not counted; trickled in, fields consumed by earlier reads were not (a header up to
      //    twice the limit passed); a request line cut by the first read counted the whole header. So the
      //    reader counts what the parser consumed of this header and shows it only the rest of the allowance.
      //  - past the header the parser holds bytes back only while it waits for the end of a chunk-size line or
      //    of the last chunk with its trailer section (each consumed whole, from a fixed start), which Beast's
      //    header limit does not cover (a trailer field of 64 KiB made it throw).
      const size_t avail = bytes.size() - consumed;
      const size_t cap = header_checked_ ? limits_.max_trailer_bytes : limits_.max_header_bytes - header_bytes_;
      const size_t window = std::min(avail, cap);
      beast::error_code ec;
      size_t n = 0;
      if (window > 0) n = parser_->put(boost::asio::buffer(bytes.data() + consumed, window), ec);
      else ec = http::error::need_more;  // the header has used its whole allowance and is not done
      consumed += n;
      if (!header_checked_) header_bytes_ += n;
      if (ec == http::error::need_more) {
        if (n > 0) continue;
        // The parser needs a byte past the allowance: the element is over its limit, whatever comes next.
        if (window == cap) {
          if (!header_checked_) return reject_header_limit();
          return reject(431, "a chunk-size line or the trailer fields exceed " +
                                 std::to_string(limits_.max_trailer_bytes) + " bytes");
        }
        break;
      }
      if (ec == http::error::header_limit) return reject_header_limit();
      if (ec == http::error::body_limit)
        return reject(413, "request body exceeds the server's limit of " + std::to_string(limits_.max_body_bytes) +
                               " bytes (--max-body-bytes)");
      if (ec) return reject(400, "malformed HTTP request: " + ec.message());
      if (!header_checked_ && parser_->is_header_done()) {
        header_checked_ = true;
        if (auto e = check_request_framing(parser_->get().base())) return reject(e->status, std::move(e->message));
        if (!parser_->is_done()) return status::HEADER;
      }
      if (parser_->is_done()) {
        done_ = true;
        return status::DONE;
      }
      if (n == 0) break;
    }
  } catch (const std::exception& e) {
    // Beast throws (std::length_error) for a field it cannot store; nothing from the wire may escape.
    return reject(400, std::string("malformed HTTP request: ") + e.what());
  }
  return status::NEED_MORE;
}

request_reader::status request_reader::feed_eof() {
  if (done_) return status::DONE;
  if (!got_some()) return status::NEED_MORE;
  return reject(400, "the connection closed before the request was complete");
}

http_ns::request<http_ns::string_body> request_reader::release() {
  done_ = false;
  header_checked_ = false;
  header_bytes_ = 0;
  return parser_->release();
}

}  // namespace autoglm::server

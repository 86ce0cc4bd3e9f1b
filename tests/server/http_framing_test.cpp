// tests/server/http_framing_test.cpp: the socket-free request reader (server/http_framing.h): RFC 9112 section
// 6.3 framing rules, trailer and header bounds, and that nothing from the wire throws. The same byte sequences
// go over a real socket in tests/npm/http_hardening.test.mjs.
#include <gtest/gtest.h>

#include <string>

#include "server/http_framing.h"

using namespace autoglm::server;
using status = request_reader::status;

namespace {

struct outcome {
  status st = status::NEED_MORE;
  int error_status = 0;
  std::string message;
  std::string body;
  size_t n_done = 0;      // requests completed
  std::string left_over;  // bytes after the last complete request, never parsed
};

// Feeds `bytes` in pieces of `piece` bytes, the way the connection does (unconsumed bytes stay buffered and are
// fed again with the next piece). Stops at the first completed request or rejection.
outcome read_one(const std::string& bytes, size_t piece = 1u << 30, http_limits limits = {}) {
  request_reader r(limits);
  r.start();
  outcome o;
  std::string buffer;
  size_t pos = 0;
  while (true) {
    if (pos < bytes.size()) {
      size_t n = std::min(piece, bytes.size() - pos);
      buffer.append(bytes, pos, n);
      pos += n;
    }
    size_t consumed = 0;
    o.st = r.feed(buffer, consumed);
    buffer.erase(0, consumed);
    if (o.st == status::HEADER) continue;
    if (o.st == status::DONE) {
      o.body = r.release().body();
      o.n_done++;
      o.left_over = buffer + bytes.substr(pos);
      return o;
    }
    if (o.st == status::REJECTED) {
      o.error_status = r.error().status;
      o.message = r.error().message;
      return o;
    }
    if (pos >= bytes.size()) return o;  // NEED_MORE with nothing left to give
  }
}

const std::string smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

outcome with_te(const std::string& te_lines, const std::string& body = "5\r\nhello\r\n0\r\n\r\n") {
  return read_one("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + te_lines + "\r\n" + body + smuggled);
}

}  // namespace

TEST(http_framing, chunked_and_content_length_requests_read) {
  outcome a = with_te("Transfer-Encoding: chunked\r\n");
  ASSERT_EQ(a.st, status::DONE) << a.message;
  EXPECT_EQ(a.body, "hello");
  EXPECT_EQ(a.left_over, smuggled);  // the next pipelined request is left for the next read
  outcome b = with_te("Transfer-Encoding: Chunked\r\n");
  EXPECT_EQ(b.st, status::DONE);
  outcome c = read_one("POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 1);
  ASSERT_EQ(c.st, status::DONE);
  EXPECT_EQ(c.body, "abc");
  outcome d = read_one("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n", 2);
  ASSERT_EQ(d.st, status::DONE) << d.message;
  EXPECT_EQ(d.body, "abc");
}

TEST(http_framing, transfer_encoding_other_than_chunked_is_rejected) {
  struct tc {
    const char* lines;
    int status;
  };
  const tc cases[] = {
      {"Transfer-Encoding: identity\r\n", 400},
      {"Transfer-Encoding: identity\r\nContent-Length: 19\r\n", 400},
      {"Transfer-Encoding: xchunked\r\n", 400},
      {"Transfer-Encoding: chunked, identity\r\n", 400},
      {"Transfer-Encoding: chunked, identity\r\nContent-Length: 19\r\n", 400},
      {"Transfer-Encoding: gzip\r\n", 400},
      {"Transfer-Encoding: chunked, chunked\r\n", 400},
      {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 400},
      {"Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n", 501},
      {"Transfer-Encoding: \r\n", 400},
      {"Transfer-Encoding: ,chunked\r\n", 400},
      {"Transfer-Encoding: chunked;ext=1\r\n", 400},
      {"Transfer-Encoding: gzip, chunked\r\n", 501},
      {"Content-Length: 19\r\nTransfer-Encoding: chunked\r\n", 400},
      {"Transfer-Encoding: chunked\r\nContent-Length: 19\r\n", 400},
  };
  for (const tc& c : cases) {
    outcome o = with_te(c.lines);
    EXPECT_EQ(o.st, status::REJECTED) << c.lines;
    EXPECT_EQ(o.error_status, c.status) << c.lines << o.message;
    EXPECT_EQ(o.n_done, 0u) << c.lines;
  }
  outcome http10 = read_one("POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  EXPECT_EQ(http10.st, status::REJECTED);
  EXPECT_EQ(http10.error_status, 400);
}

TEST(http_framing, content_length_must_be_one_plain_number) {
  for (const char* lines :
       {"Content-Length: 3\r\nContent-Length: 3\r\n", "Content-Length: 3, 3\r\n",
        "Content-Length: 3\r\nContent-Length: 4\r\n", "Content-Length: +3\r\n", "Content-Length: 0x3\r\n",
        "Content-Length: \r\n", "Content-Length: 3 3\r\n", "Content-Length: 99999999999999999999999\r\n"}) {
    outcome o = read_one(std::string("POST /x HTTP/1.1\r\n") + lines + "\r\nabc" + smuggled);
    EXPECT_EQ(o.st, status::REJECTED) << lines;
    EXPECT_EQ(o.error_status, 400) << lines;
    EXPECT_EQ(o.n_done, 0u) << lines;
  }
}

// The remote crash of issue 8 class 1: a trailer field of 65,534+ bytes made Beast throw std::length_error.
TEST(http_framing, huge_trailer_is_431_never_an_exception) {
  for (const std::string& field : {"X: " + std::string(70000, 'a'), std::string(70000, 'N') + ": v"}) {
    std::string bytes =
        "POST /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n" + field + "\r\n\r\n";
    for (size_t piece : {size_t(1) << 30, size_t(4096), size_t(65536)}) {
      outcome o;
      ASSERT_NO_THROW(o = read_one(bytes, piece));
      EXPECT_EQ(o.st, status::REJECTED) << piece;
      EXPECT_EQ(o.error_status, 431) << o.message;
    }
  }
  // With the trailer bound lifted, Beast itself throws on the field; the reader turns that into a 400.
  http_limits loose;
  loose.max_trailer_bytes = 1u << 20;
  std::string bytes =
      "POST /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + std::string(70000, 'a') + "\r\n\r\n";
  outcome o;
  ASSERT_NO_THROW(o = read_one(bytes, 1u << 30, loose));
  EXPECT_EQ(o.st, status::REJECTED);
  EXPECT_EQ(o.error_status, 400);
  // A long chunk extension is held back the same way.
  outcome ext = read_one(
      "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;" + std::string(40000, 'e') + "\r\na\r\n0\r\n\r\n",
      4096);
  EXPECT_EQ(ext.st, status::REJECTED);
  EXPECT_EQ(ext.error_status, 431);
}

TEST(http_framing, header_and_body_limits) {
  outcome h = read_one("GET / HTTP/1.1\r\nX: " + std::string(70000, 'a') + "\r\n\r\n", 8192);
  EXPECT_EQ(h.st, status::REJECTED);
  EXPECT_EQ(h.error_status, 431);
  http_limits small;
  small.max_body_bytes = 10;
  outcome b = read_one("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n01234567890", 1u << 30, small);
  EXPECT_EQ(b.error_status, 413);
  outcome c = read_one("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n6\r\n012345\r\n0\r\n\r\n",
                       5, small);
  EXPECT_EQ(c.error_status, 413);
}

TEST(http_framing, eof_and_garbage) {
  request_reader r;
  r.start();
  EXPECT_EQ(r.feed_eof(), status::NEED_MORE);  // nothing under way: a clean close
  size_t used = 0;
  EXPECT_EQ(r.feed("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", used), status::HEADER);
  EXPECT_EQ(r.feed("ab", used), status::NEED_MORE);
  EXPECT_EQ(r.feed_eof(), status::REJECTED);
  EXPECT_EQ(r.error().status, 400);
  for (const char* junk : {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS hello\r\n\r\n", "GET\r\n\r\n",
                           "GET / HTTP/9.9\r\n\r\n", "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n"}) {
    outcome o = read_one(junk);
    EXPECT_EQ(o.st, status::REJECTED) << junk;
    EXPECT_EQ(o.error_status, 400) << junk;
  }
}

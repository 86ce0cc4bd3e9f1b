// tests/server/http_guard_test.cpp: an exception thrown by work on a guarded strand reaches that strand's sink
// and nothing else (the io_context keeps running, other strands are untouched); the run loop survives what
// escapes unguarded handlers; the log limiter bounds lines per window.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include <boost/beast/core/tcp_stream.hpp>

#include "server/http_guard.h"

using namespace autoglm::server;
namespace net = boost::asio;

TEST(http_guard, exception_goes_to_its_strand_sink) {
  net::io_context ioc;
  auto sink_a = std::make_shared<exception_sink>();
  auto sink_b = std::make_shared<exception_sink>();
  std::vector<std::string> seen_a;
  int n_b = 0;
  sink_a->on_exception = [&](const char* what) { seen_a.push_back(what); };
  sink_b->on_exception = [&](const char*) { n_b++; };
  net::any_io_executor a = make_guarded_strand(ioc, sink_a);
  net::any_io_executor b = make_guarded_strand(ioc, sink_b);

  int after = 0;
  net::post(a, [] { throw std::length_error("field value too large"); });
  net::post(a, [&] { after++; });
  net::post(b, [&] { after++; });
  // dispatch from inside the strand runs inline: still guarded.
  net::post(a, [&] {
    net::dispatch(a, [] { throw std::runtime_error("inline"); });
    after++;
  });
  ioc.run();
  EXPECT_EQ(seen_a, (std::vector<std::string>{"field value too large", "inline"}));
  EXPECT_EQ(after, 3);
  EXPECT_EQ(n_b, 0);
}

// A Beast stream and its timer on the guarded executor: a throwing completion handler reports, run() returns.
TEST(http_guard, socket_completion_on_guarded_strand) {
  net::io_context ioc;
  auto sink = std::make_shared<exception_sink>();
  int n = 0;
  sink->on_exception = [&](const char*) { n++; };
  boost::beast::tcp_stream stream(make_guarded_strand(ioc, sink));
  net::ip::tcp::acceptor acc(ioc, {net::ip::make_address("127.0.0.1"), 0});
  stream.expires_after(std::chrono::seconds(5));
  stream.async_connect(acc.local_endpoint(), [](boost::beast::error_code ec) {
    if (!ec) throw std::runtime_error("from a completion");
  });
  acc.async_accept([](boost::beast::error_code, net::ip::tcp::socket) {});
  ioc.run();
  EXPECT_EQ(n, 1);
}

TEST(http_guard, run_loop_survives_unguarded_throw) {
  net::io_context ioc;
  int after = 0;
  net::post(ioc, [] { throw std::runtime_error("unguarded"); });
  net::post(ioc, [&] { after++; });
  run_io_loop(ioc);
  EXPECT_EQ(after, 1);
}

TEST(http_guard, log_limiter_bounds_lines) {
  log_limiter l(3, std::chrono::hours(1));
  uint64_t suppressed = 0;
  int allowed = 0;
  for (int i = 0; i < 1000; ++i) allowed += l.allow(suppressed);
  EXPECT_EQ(allowed, 3);
}

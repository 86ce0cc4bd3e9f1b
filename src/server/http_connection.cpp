// server/http_connection.cpp: the Beast connection state machine: reading through request_reader with the
// header / body / keep-alive timeouts, writing with the write-stall timeout and the queued-bytes bound, the
// disconnect watch, lingering close after a rejected request.
#include "server/http_connection.h"

#include <sstream>

#include "core/log.h"
#include "server/api_error.h"
#include "server/metrics.h"
#include "server/sse.h"

namespace autoglm::server {

namespace {

constexpr size_t read_chunk_bytes = 16u << 10;
constexpr size_t keep_write_buffer_bytes = 64u << 10;  // a larger write buffer is freed once written
constexpr std::chrono::seconds over_capacity_header_timeout{5};

log_limiter& slow_client_log() {
  static log_limiter limiter;
  return limiter;
}

const char* framing_code(int status) {
  switch (status) {
    case 413:
      return "request_too_large";
    case 431:
      return "request_header_fields_too_large";
    case 501:
      return "unsupported_transfer_coding";
    default:
      return "malformed_http_request";
  }
}

std::string_view path_of(beast::string_view target) {
  std::string_view t(target.data(), target.size());
  return t.substr(0, t.find('?'));
}

}  // namespace

connection::connection(net::ip::tcp::socket socket, const http_options& options, const request_handler& handler,
                       std::shared_ptr<exception_sink> sink, std::shared_ptr<connection_count> count,
                       bool over_capacity)
    : stream_(std::move(socket)),
      strand_(stream_.get_executor()),
      reader_(options.limits),
      options_(options),
      handler_(handler),
      sink_(std::move(sink)),
      count_(std::move(count)),
      over_capacity_(over_capacity) {
  beast::error_code ec;
  auto ep = stream_.socket().remote_endpoint(ec);
  if (!ec) remote_ = ep.address().to_string() + ":" + std::to_string(ep.port());
  if (count_) count_->n_open++;
  if (options_.gauges) options_.gauges->n_open_connections++;
}

connection::~connection() {
  set_queued(0);
  if (options_.gauges) options_.gauges->n_open_connections--;
  if (count_) {
    count_->n_open--;
    if (count_->on_release) count_->on_release();
  }
}

void connection::start() {
  // The sink holds the connection weakly: a handler that throws closes this connection, and a connection that
  // is already gone needs nothing.
  if (sink_) {
    sink_->on_exception = [weak = weak_from_this()](const char* what) {
      if (auto self = weak.lock()) self->on_handler_exception(what);
    };
  }
  net::dispatch(strand_, [self = shared_from_this()] { self->begin_request(); });
}

std::chrono::seconds connection::header_timeout() const {
  return over_capacity_ ? std::min(options_.header_timeout, over_capacity_header_timeout) : options_.header_timeout;
}

// ---- reading ------------------------------------------------------------------------------------------------

void connection::begin_request() {
  if (closed_) return;
  in_response_ = false;
  response_complete_ = false;
  streaming_ = false;
  is_head_ = false;
  on_disconnect_ = nullptr;
  reader_.start();
  // A new connection must send its header within the header timeout; a kept-alive one may first idle.
  request_started_ = buffer_.size() > 0;
  stream_.expires_after(n_requests_ == 0 || request_started_ ? header_timeout() : options_.keepalive_timeout);
  parse_buffered();
}

void connection::parse_buffered() {
  while (!closed_) {
    size_t used = 0;
    auto status = request_reader::status::NEED_MORE;
    if (buffer_.size() > 0) {
      auto data = buffer_.data();
      status = reader_.feed(std::string_view(static_cast<const char*>(data.data()), data.size()), used);
      buffer_.consume(used);
    }
    switch (status) {
      case request_reader::status::NEED_MORE:
        return read_more();
      case request_reader::status::HEADER:
        on_header();
        continue;
      case request_reader::status::DONE:
        return dispatch_request();
      case request_reader::status::REJECTED:
        return reject(reader_.error());
    }
  }
}

void connection::read_more() {
  stream_.async_read_some(buffer_.prepare(read_chunk_bytes),
                          net::bind_executor(strand_, [self = shared_from_this()](beast::error_code ec, size_t n) {
                            self->on_read(ec, n);
                          }));
}

void connection::on_read(beast::error_code ec, size_t n) {
  if (closed_) return;
  if (ec) {
    // end_of_stream (client closed an idle keep-alive connection or gave up mid-request), a timeout (Beast has
    // closed the socket already), a reset. Nothing useful can be answered.
    if (ec != net::error::eof && ec != beast::error::timeout && ec != net::error::connection_reset &&
        ec != net::error::operation_aborted)
      AG_LOG_DEBUG("{}: read: {}", remote_, ec.message());
    if (ec == beast::error::timeout && reader_.got_some())
      AG_LOG_DEBUG("{}: request not complete within its timeout: closing", remote_);
    return close();
  }
  buffer_.commit(n);
  if (!request_started_) {
    request_started_ = true;
    stream_.expires_after(header_timeout());  // one deadline for the whole header (slowloris), not per read
  } else if (reader_.header_done()) {
    stream_.expires_after(options_.body_timeout);  // the body may take long, but must keep moving
  }
  parse_buffered();
}

void connection::on_header() {
  const auto& h = reader_.header();
  auto expect = h[http::field::expect];
  if (h.version() >= 11 && beast::iequals(expect, "100-continue")) enqueue("HTTP/1.1 100 Continue\r\n\r\n");
  // After the write has started: expires_after sets the timers of the directions not in progress.
  stream_.expires_after(options_.body_timeout);
}

void connection::dispatch_request() {
  http_request req = reader_.release();
  n_requests_++;
  keep_alive_ = req.keep_alive();
  is_head_ = req.method() == http::verb::head;
  in_response_ = true;
  stream_.expires_never();
  if (over_capacity_) {
    keep_alive_ = false;
    std::string_view path = path_of(req.target());
    if (path != "/health" && path != "/v1/health") {
      send_error(api_error(503,
                           "the server has reached its connection limit (--max-connections " +
                               std::to_string(options_.max_connections) + "); retry shortly",
                           "service_unavailable_error", "", "too_many_connections"),
                 {{"Retry-After", "1"}});
      return;
    }
  }
  handler_(shared_from_this(), std::move(req));
}

void connection::reject(const framing_error& e) {
  // Nothing after a rejected header is parsed: bytes the client still sends (a body, a request smuggled
  // behind it) are discarded while lingering, never answered.
  keep_alive_ = false;
  linger_ = true;
  in_response_ = true;
  is_head_ = false;
  stream_.expires_never();
  send_error(api_error(e.status, e.message, "invalid_request_error", "", framing_code(e.status)));
}

// ---- answering ----------------------------------------------------------------------------------------------

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

// ---- writing ------------------------------------------------------------------------------------------------

void connection::set_queued(size_t bytes) {
  if (options_.gauges) options_.gauges->queued_write_bytes += int64_t(bytes) - int64_t(queued_bytes_);
  queued_bytes_ = bytes;
}

void connection::enqueue(std::string bytes) {
  if (closed_ || peer_gone_ || bytes.empty()) return;
  // A client that does not read (or reads slower than tokens arrive) must not make the server buffer without
  // bound: past max_queued_bytes it is treated as gone, which cancels its generation. Only a stream grows piece
  // by piece; a whole response larger than the bound (one non-streamed body) is sent: it is in memory already.
  if (streaming_ && queued_bytes_ > 0 && queued_bytes_ + bytes.size() > options_.max_queued_bytes) {
    uint64_t suppressed = 0;
    if (slow_client_log().allow(suppressed))
      AG_LOG_WARN(
          "{}: client is not reading its response ({} bytes queued, --max-queued-bytes {}): closing it "
          "({} similar messages suppressed)",
          remote_, queued_bytes_, options_.max_queued_bytes, suppressed);
    if (options_.gauges) options_.gauges->n_slow_clients_dropped++;
    return lost_peer("queued-bytes bound");
  }
  set_queued(queued_bytes_ + bytes.size());
  pending_.push_back(std::move(bytes));
  if (!writing_) do_write();
}

void connection::do_write() {
  if (write_off_ >= write_buf_.size()) {
    // Coalesce everything queued into one buffer: a slow client gets fewer, larger writes.
    write_buf_.clear();
    write_off_ = 0;
    if (pending_.size() == 1) {
      write_buf_ = std::move(pending_.front());
      pending_.pop_front();
    }
    while (!pending_.empty()) {
      write_buf_ += pending_.front();
      pending_.pop_front();
    }
  }
  if (write_off_ >= write_buf_.size()) return;
  writing_ = true;
  // write_some, not write: the timeout is a stall timeout, renewed whenever the client takes some bytes.
  stream_.expires_after(options_.write_timeout);
  stream_.async_write_some(net::buffer(write_buf_.data() + write_off_, write_buf_.size() - write_off_),
                           net::bind_executor(strand_, [self = shared_from_this()](beast::error_code ec, size_t n) {
                             self->on_write(ec, n);
                           }));
}

void connection::on_write(beast::error_code ec, size_t n) {
  writing_ = false;
  if (ec == beast::error::timeout) {
    // The stream closed the socket on the stall; the disconnect watch may have seen that first, so count here.
    if (options_.gauges) options_.gauges->n_slow_clients_dropped++;
    AG_LOG_DEBUG("{}: the client has not read for {} s (--write-timeout): closing", remote_,
                 options_.write_timeout.count());
  }
  if (closed_) return drop_queue();
  if (ec) return lost_peer("write failed");
  write_off_ += n;
  set_queued(queued_bytes_ - n);
  if (write_off_ < write_buf_.size() || !pending_.empty()) return do_write();
  if (write_buf_.capacity() > keep_write_buffer_bytes) std::string().swap(write_buf_);
  write_buf_.clear();
  write_off_ = 0;
  if (response_complete_) finish_response();
}

void connection::drop_queue() {
  std::deque<std::string>().swap(pending_);
  if (!writing_) {
    std::string().swap(write_buf_);
    write_off_ = 0;
  }
  set_queued(writing_ ? write_buf_.size() - write_off_ : 0);
}

void connection::finish_response() {
  on_disconnect_ = nullptr;
  if (!keep_alive_) {
    if (linger_)
      linger();
    else
      close();
    return;
  }
  if (watching_) {
    // The disconnect watch still holds a read on the socket: cancel it and read on once it has returned.
    read_after_watch_ = true;
    beast::error_code ec;
    stream_.socket().cancel(ec);
    return;
  }
  begin_request();
}

// ---- watching for a disconnect while answering ----------------------------------------------------------------

void connection::watch() {
  if (watching_ || peer_gone_ || closed_) return;
  if (buffer_.size() > (1u << 20)) return;  // a client pipelining megabytes: stop reading until we answer
  watching_ = true;
  stream_.socket().async_read_some(
      buffer_.prepare(4096), net::bind_executor(strand_, [self = shared_from_this()](beast::error_code ec, size_t n) {
        self->on_watch(ec, n);
      }));
}

void connection::on_watch(beast::error_code ec, size_t n) {
  watching_ = false;
  if (!ec) buffer_.commit(n);  // bytes of a pipelined next request: keep them for the next begin_request
  if (read_after_watch_) {
    read_after_watch_ = false;
    if (ec && ec != net::error::operation_aborted) return close();
    return begin_request();
  }
  if (ec) return lost_peer("peer closed");
  if (in_response_ && !response_complete_) watch();
}

// ---- closing ------------------------------------------------------------------------------------------------

void connection::linger() {
  // Closing with unread request bytes makes the kernel send RST, which can destroy the response we just wrote
  // before the client reads it. Half-close, then discard what the client still sends (bounded in time and bytes).
  beast::error_code ec;
  stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ec);
  if (ec) return close();
  linger_read();
}

void connection::linger_read() {
  if (linger_bytes_ > 4 * options_.limits.max_body_bytes + (1u << 20)) return close();
  stream_.expires_after(std::chrono::seconds(5));
  stream_.async_read_some(net::buffer(linger_buf_),
                          net::bind_executor(strand_, [self = shared_from_this()](beast::error_code ec, size_t n) {
                            if (ec) return self->close();
                            self->linger_bytes_ += n;
                            self->linger_read();
                          }));
}

void connection::lost_peer(const char* why) {
  if (peer_gone_) return;
  AG_LOG_DEBUG("{}: connection lost ({})", remote_, why);
  peer_gone_ = true;
  drop_queue();
  auto cb = std::move(on_disconnect_);
  on_disconnect_ = nullptr;
  if (cb) cb();
  close();
}

void connection::on_handler_exception(const char* what) {
  if (options_.gauges) options_.gauges->n_handler_exceptions++;
  lost_peer(what);
  close();  // also when the peer was already gone: never leave the socket open after a throw
}

void connection::close() {
  if (closed_) return;
  closed_ = true;
  beast::error_code ec;
  stream_.socket().shutdown(net::ip::tcp::socket::shutdown_both, ec);
  stream_.close();  // the socket and the stream's timers
  drop_queue();
}

}  // namespace autoglm::server

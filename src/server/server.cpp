// server/server.cpp: run_server — open the port first, load the model in the background, serve on a few I/O
// threads, and drain gracefully on SIGINT/SIGTERM.
#include "server/server.h"

#include <sys/resource.h>

#include <condition_variable>
#include <csignal>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "server/app.h"
#include "server/generation_job.h"
#include "server/http_listener.h"

namespace autoglm::server {

namespace {

enum class run_event { NONE, SIGNAL, LOAD_FAILED };

struct run_control {
  std::mutex mutex;
  std::condition_variable cv;
  run_event event = run_event::NONE;
  int n_signals = 0;
  void notify(run_event e) {
    std::lock_guard lock(mutex);
    if (event == run_event::NONE || e == run_event::SIGNAL) event = e;
    if (e == run_event::SIGNAL) n_signals++;
    cv.notify_all();
  }
};

void load_model(app& a, run_control& control) {
  const server_options& o = a.options;
  try {
    auto t0 = std::chrono::steady_clock::now();
    a.defaults = load_generation_defaults(o.engine.model_dir);
    a.eng = engine::create(o.engine);
    chat_context_options co;
    co.model_dir = o.engine.model_dir;
    co.min_pixels = o.min_pixels;
    co.max_pixels = o.max_pixels;
    co.max_image_bytes = o.max_image_bytes;
    co.info = a.eng->info();
    co.preprocess_on_device = o.engine.device.rfind("cuda", 0) == 0;  // a GPU lays out the patches itself
    a.chat = chat_context::load(co, a.eng->get_tokenizer());
    if (!o.asr_model_dir.empty()) {
      speech_recognizer::options so;
      so.model_dir = o.asr_model_dir;
      so.device = o.asr_device.empty() ? o.engine.device : o.asr_device;
      so.n_threads = o.engine.n_threads;
      try {
        a.asr = speech_recognizer::load(so);
      } catch (const std::exception& e) {
        throw error(std::string("the speech model (--asr-model ") + o.asr_model_dir + "): " + e.what());
      }
      AG_LOG_INFO("speech model '{}' loaded from {} on {}", a.asr->model_name(), o.asr_model_dir, so.device);
    }
    a.state = app_state::READY;
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    AG_LOG_INFO("model loaded in {:.2f} s: max_model_len {}, max_num_seqs {}; serving as '{}'", s,
                a.eng->max_model_len(), o.engine.max_num_seqs, o.served_model_name);
  } catch (const std::exception& e) {
    AG_LOG_ERROR("failed to load the model from {}: {}", o.engine.model_dir, e.what());
    a.state = app_state::FAILED;
    control.notify(run_event::LOAD_FAILED);
  }
}

bool wait_inflight(app& a, std::chrono::steady_clock::time_point deadline, run_control& control, int n_signals) {
  while (a.n_inflight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard lock(control.mutex);
      if (control.n_signals > n_signals) return false;  // a second Ctrl-C: stop waiting
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return a.n_inflight.load() == 0;
}

// --max-connections 0: what the file-descriptor limit allows. Raises the soft limit to the hard one first (the
// usual soft 1024 is a relic; servers raise it), then keeps descriptors for model files, logs and the engine.
int32_t resolve_max_connections(int32_t requested) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return requested > 0 ? requested : 1024;
  constexpr rlim_t enough = 65536;
  rlim_t want = rl.rlim_max == RLIM_INFINITY ? enough : std::min(rl.rlim_max, enough);
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
    rlimit raised = rl;
    raised.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
      AG_LOG_DEBUG("file-descriptor limit raised from {} to {}", rl.rlim_cur, want);
      rl = raised;
    }
  }
  int64_t n_fd = rl.rlim_cur == RLIM_INFINITY ? int64_t(enough) : int64_t(rl.rlim_cur);
  int64_t usable = n_fd - std::min<int64_t>(128, n_fd / 2);
  int64_t fits = std::max<int64_t>(1, usable - overflow_connections(int32_t(std::min<int64_t>(usable, 1 << 30))));
  if (requested > 0) {
    if (requested > fits)
      AG_LOG_WARN("--max-connections {} is more than the file-descriptor limit ({}) leaves room for (about {}); "
                  "past that, accepts fail and back off", requested, n_fd, fits);
    return requested;
  }
  return int32_t(std::min<int64_t>(fits, 4096));
}

}  // namespace

int run_server(const server_options& options) {
  if (options.demo_model) {
    AG_LOG_WARN("serving the bundled DEMO model ({}): tiny and random-weight, its output is noise. For real "
                "answers download the Hugging Face directory of zai-org/AutoGLM-Phone-9B and pass it: "
                "autoglm serve -m /path/to/AutoGLM-Phone-9B",
                options.engine.model_dir);
  }
  app a(options);
  run_control control;

  http_options hopts;
  hopts.limits.max_body_bytes = options.max_body_bytes;
  hopts.header_timeout = std::chrono::seconds(options.header_timeout_s);
  hopts.body_timeout = std::chrono::seconds(options.body_timeout_s);
  hopts.keepalive_timeout = std::chrono::seconds(options.keepalive_timeout_s);
  hopts.write_timeout = std::chrono::seconds(options.write_timeout_s);
  hopts.max_queued_bytes = options.max_queued_bytes;
  hopts.max_connections = resolve_max_connections(options.max_connections);
  hopts.gauges = &a.metrics.http;
  hopts.cors_origin = options.cors_origin;
  hopts.on_response = [&a](int status) { a.metrics.on_http_response(status); };
  hopts.draining = [&a] { return a.draining.load(); };

  net::io_context ioc;
  auto listener = std::make_shared<http_listener>(
      ioc, options.host, options.port, hopts,
      [&a](std::shared_ptr<connection> c, http_request&& r) { route_request(a, std::move(c), std::move(r)); });
  listener->start();

  net::signal_set signals(ioc, SIGINT, SIGTERM);
  std::function<void(const boost::system::error_code&, int)> on_signal = [&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    AG_LOG_INFO("received {}: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    control.notify(run_event::SIGNAL);
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);

  int n_threads = options.n_http_threads > 0
                      ? options.n_http_threads
                      : std::clamp(int(std::thread::hardware_concurrency()), 2, 4);
  std::vector<std::thread> io_threads;
  for (int i = 0; i < n_threads; ++i) io_threads.emplace_back([&ioc] { run_io_loop(ioc); });
  AG_LOG_INFO("listening on http://{}:{} ({} I/O threads); loading {} ...", options.host, listener->port(), n_threads,
              options.engine.model_dir);
  AG_LOG_INFO("HTTP limits: {} connections (+{} for /health and 503), timeouts header {} s, body {} s, keep-alive {} s, "
              "write stall {} s, {} queued bytes per client, {} body bytes",
              hopts.max_connections, overflow_connections(hopts.max_connections), options.header_timeout_s,
              options.body_timeout_s, options.keepalive_timeout_s, options.write_timeout_s, options.max_queued_bytes,
              options.max_body_bytes);

  std::thread loader([&] { load_model(a, control); });

  run_event event;
  {
    std::unique_lock lock(control.mutex);
    control.cv.wait(lock, [&] { return control.event != run_event::NONE; });
    event = control.event;
  }
  int exit_code = 0;
  a.draining = true;
  listener->stop();
  loader.join();  // a signal during loading waits for the load to end (the engine has no abort hook)

  if (event == run_event::LOAD_FAILED) {
    exit_code = 1;
  } else if (a.ready()) {
    int n_signals;
    {
      std::lock_guard lock(control.mutex);
      n_signals = control.n_signals;
    }
    auto grace = std::chrono::steady_clock::now() + std::chrono::seconds(options.shutdown_grace_s);
    if (a.n_inflight.load() > 0)
      AG_LOG_INFO("waiting up to {} s for {} in-flight request(s)", options.shutdown_grace_s, a.n_inflight.load());
    if (!wait_inflight(a, grace, control, n_signals)) {
      std::vector<std::shared_ptr<generation_job>> live;
      {
        std::lock_guard lock(a.jobs_mutex);
        for (auto& [raw, weak] : a.jobs)
          if (auto j = weak.lock()) live.push_back(j);
      }
      AG_LOG_INFO("cancelling {} request(s) still running", live.size());
      for (auto& j : live) net::post(j->executor(), [j] { j->cancel_all("server shutdown"); });
      wait_inflight(a, std::chrono::steady_clock::now() + std::chrono::seconds(5), control, 1 << 30);
    }
    // Let the last bytes (finish chunks, [DONE]) reach the sockets.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    a.eng->shutdown();
  }
  ioc.stop();
  for (auto& t : io_threads) t.join();
  a.cpu_pool.join();
  a.asr_pool.join();
  AG_LOG_INFO("server stopped");
  return exit_code;
}

}  // namespace autoglm::server

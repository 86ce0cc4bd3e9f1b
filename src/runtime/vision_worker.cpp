// runtime/vision_worker.cpp: the vision worker's queue and thread (see vision_worker.h).
#include "runtime/vision_worker.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "ops/ops.h"

namespace autoglm {

vision_worker::vision_worker(const model& m, const std::vector<device>& devs, int32_t n_threads, dump_fn dump,
                             done_fn on_done)
    : model_(m), on_done_(std::move(on_done)) {
  AG_CHECK(!devs.empty(), "vision_worker: no device");
  for (const device& d : devs) {
    ctxs_.push_back(std::make_unique<exec_context>(d, n_threads));
    ctxs_.back()->set_dump(dump);
  }
  for (auto& c : ctxs_) threads_.emplace_back([this, ctx = c.get()] { run(*ctx); });
}

vision_worker::~vision_worker() { stop(); }

int32_t vision_worker::n_threads() const { return ctxs_[0]->pool() ? ctxs_[0]->pool()->n_threads() : 1; }

void vision_worker::enqueue(uint64_t key, std::shared_ptr<const vision_input> image) {
  std::lock_guard<std::mutex> lk(mu_);
  queue_.push_back({key, std::move(image)});
  cv_.notify_one();
}

bool vision_worker::drop(uint64_t key) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = std::find_if(queue_.begin(), queue_.end(), [&](const job& j) { return j.key == key; });
  if (it == queue_.end()) return false;
  queue_.erase(it);
  return true;
}

int32_t vision_worker::n_pending() const {
  std::lock_guard<std::mutex> lk(mu_);
  return int32_t(queue_.size()) + n_running_;
}

double vision_worker::encode_ms_total() const {
  std::lock_guard<std::mutex> lk(mu_);
  return encode_ms_total_;
}

void vision_worker::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
    queue_.clear();
    cv_.notify_all();
  }
  for (std::thread& t : threads_)
    if (t.joinable()) t.join();
}

void vision_worker::run(exec_context& ctx) {
  for (;;) {
    job j;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      j = std::move(queue_.front());
      queue_.pop_front();
      ++n_running_;
    }
    result r;
    r.key = j.key;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      r.embedding = model_.encode_image(ctx, *j.image);
      // On a GPU the encode is only queued on this worker's stream: the engine's context reads the embedding on
      // its own stream, so it must be complete before it is handed over (and the time measured is the encode's).
      ops::synchronize(ctx);
    } catch (const std::exception& e) {
      r.error = e.what();
    } catch (...) {
      r.error = "unknown error in the vision encoder";
    }
    ctx.arena().reset();
    r.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    bool stopping = false;
    {
      std::lock_guard<std::mutex> lk(mu_);
      encode_ms_total_ += r.ms;
      stopping = stopping_;
    }
    // Delivered before the job stops counting as pending, so n_pending() never reads 0 while a finished
    // image's waiters have not been told.
    if (!stopping) on_done_(std::move(r));
    std::lock_guard<std::mutex> lk(mu_);
    --n_running_;
  }
}

}  // namespace autoglm

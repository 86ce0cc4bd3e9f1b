// runtime/vision_worker.h: the engine's image encoder. One thread with its own exec_context (on the CPU its own
// pool, beside the decode loop's) runs the model's vision tower over queued images, FIFO, and hands each result
// to a callback. The engine thread decodes meanwhile: a new screenshot costs the running streams only the cores
// the worker borrows, never a stall of the whole encode. Under tensor parallelism the worker has one thread and one
// context per rank's device, all taking jobs from the one queue: images are encoded data-parallel, each whole on
// one rank (runtime/tensor_parallel.h).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "model/model.h"
#include "ops/context.h"

namespace autoglm {

class vision_worker {
 public:
  struct result {
    uint64_t key = 0;
    tensor embedding;   // [n_tokens, hidden] on the worker's device; empty when error is set
    std::string error;  // why the image could not be encoded
    double ms = 0;      // encode time
  };
  using done_fn = std::function<void(result)>;

  // on_done runs on a worker thread after each job (post the result and return). One thread per device of devs
  // (n_threads host threads each); the embedding of a result is on the device of the thread that encoded it.
  vision_worker(const model& m, const std::vector<device>& devs, int32_t n_threads, dump_fn dump, done_fn on_done);
  ~vision_worker();
  vision_worker(const vision_worker&) = delete;
  vision_worker& operator=(const vision_worker&) = delete;

  int32_t n_threads() const;  // host threads of one context
  // Queues an image for encoding under `key` (the caller dedupes keys).
  void enqueue(uint64_t key, std::shared_ptr<const vision_input> image);
  // Removes a queued job that has not started (nobody waits for it any more); false when it already runs.
  bool drop(uint64_t key);
  // Images queued or being encoded.
  int32_t n_pending() const;
  double encode_ms_total() const;
  // Drops queued jobs, lets a running encode finish (its result is discarded) and joins the thread.
  void stop();

 private:
  struct job {
    uint64_t key;
    std::shared_ptr<const vision_input> image;
  };
  void run(exec_context& ctx);

  const model& model_;
  std::vector<std::unique_ptr<exec_context>> ctxs_;
  done_fn on_done_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<job> queue_;
  int32_t n_running_ = 0;
  bool stopping_ = false;
  double encode_ms_total_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace autoglm

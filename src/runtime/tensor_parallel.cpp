// runtime/tensor_parallel.cpp: see tensor_parallel.h.
#include "runtime/tensor_parallel.h"

#include <exception>

#include "core/error.h"
#include "core/log.h"
#include "ops/ops.h"

namespace autoglm {

// ---- rank_thread ----------------------------------------------------------------------------------------------

tensor_parallel_model::rank_thread::rank_thread() {
  thread_ = std::thread([this] {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || job_ != nullptr; });
        if (stop_) return;
        job = std::move(job_);
        job_ = nullptr;
      }
      job();  // jobs catch their own exceptions
      {
        std::lock_guard<std::mutex> lock(mu_);
        busy_ = false;
      }
      cv_.notify_all();
    }
  });
}

tensor_parallel_model::rank_thread::~rank_thread() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void tensor_parallel_model::rank_thread::post(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = std::move(job);
    busy_ = true;
  }
  cv_.notify_all();
}

void tensor_parallel_model::rank_thread::wait() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !busy_; });
}

// ---- tensor_parallel_model ------------------------------------------------------------------------------------

std::unique_ptr<tensor_parallel_model> tensor_parallel_model::load(const std::string& model_dir, exec_context& ctx0,
                                                                   const std::vector<device>& devs,
                                                                   int32_t n_threads, const model_load_options& opt) {
  AG_CHECK(!devs.empty() && devs[0] == ctx0.dev(), "tensor parallelism: rank 0 runs on the caller's context's device");
  std::unique_ptr<tensor_parallel_model> tp(new tensor_parallel_model());
  tp->devs_ = devs;
  const int32_t n = int32_t(devs.size());
  tp->ranks_.resize(size_t(n));
  for (int32_t r = 0; r < n; ++r) {
    rank& k = tp->ranks_[size_t(r)];
    if (r == 0) {
      k.ctx = &ctx0;
    } else {
      k.own_ctx = std::make_unique<exec_context>(devs[size_t(r)], n_threads);
      k.ctx = k.own_ctx.get();
      k.thread = std::make_unique<rank_thread>();
    }
    model_load_options o = opt;
    o.tp_rank = r;
    o.tp_size = n;
    k.m = load_model(model_dir, *k.ctx, o);
  }
  tp->connect();
  AG_LOG_INFO("tensor parallelism: {} ranks on {} ... {}, {:.1f} MB of decoder weights each", n, devs.front().str(),
              devs.back().str(), double(tp->weight_bytes_per_token()) / 1e6);
  return tp;
}

tensor_parallel_model::~tensor_parallel_model() {
  for (rank& k : ranks_)
    if (k.ctx) k.ctx->set_communicator(nullptr);  // ctx0 outlives this model
}

void tensor_parallel_model::connect() const {
  for (const rank& k : ranks_) k.ctx->set_communicator(nullptr);
  comms_.clear();
  comms_ = ops::create_communicators(devs_);
  for (size_t r = 0; r < ranks_.size(); ++r) ranks_[r].ctx->set_communicator(comms_[r].get());
}

const std::vector<paged_kv_layer>& tensor_parallel_model::rank_cache(int32_t r,
                                                                     const std::vector<paged_kv_layer>& kv0) const {
  const rank& k = ranks_[size_t(r)];
  bool same = k.kv.size() == kv0.size();
  for (size_t l = 0; same && l < kv0.size(); ++l)
    same = k.kv[l].k.shape() == kv0[l].k.shape() && k.kv[l].k.type() == kv0[l].k.type();
  if (!same) {
    // First use (or the runtime sized a new cache): the same blocks, slots and heads on this rank's device.
    k.kv.clear();
    for (const paged_kv_layer& l0 : kv0) {
      paged_kv_layer l;
      l.k = ops::alloc_persistent(*k.ctx, l0.k.type(), l0.k.shape());
      l.v = ops::alloc_persistent(*k.ctx, l0.v.type(), l0.v.shape());
      k.kv.push_back(std::move(l));
    }
  }
  return k.kv;
}

const forward_batch& tensor_parallel_model::rank_batch(int32_t r, const forward_batch& batch,
                                                       forward_batch& held) const {
  const device dev = devs_[size_t(r)];
  bool local = true;
  for (const embedding_span& s : batch.embeddings) local = local && s.rows.dev() == dev;
  if (local) return batch;
  held = batch;
  for (embedding_span& s : held.embeddings) {
    if (s.rows.dev() == dev) continue;
    // Through host memory, read on a context of the rows' device (every device of the group has one).
    exec_context* src_ctx = nullptr;
    for (const rank& k : ranks_)
      if (k.ctx->dev() == s.rows.dev()) src_ctx = k.ctx;
    AG_CHECK(src_ctx != nullptr, "tensor parallelism: image rows on " + s.rows.dev().str() + ", outside the group");
    tensor host = tensor::empty_host(s.rows.type(), s.rows.shape());
    tensor rows = s.rows;
    if (!rows.is_contiguous()) {
      rows = ops::scratch(*src_ctx, rows.type(), rows.shape());
      ops::copy(*src_ctx, s.rows, rows);
    }
    ops::to_host(*src_ctx, rows, host.data(), host.n_bytes());
    s.rows = ops::to_device(*ranks_[size_t(r)].ctx, host);
  }
  return held;
}

tensor tensor_parallel_model::forward_logits(exec_context& ctx, const forward_batch& batch,
                                             const std::vector<paged_kv_layer>& kv) const {
  if (&ctx != ranks_[0].ctx) throw error("tensor parallelism: forward runs on the context rank 0 was loaded with");
  std::lock_guard<std::mutex> lock(forward_mu_);
  std::mutex failure_mu;
  std::exception_ptr failure;
  // A failing rank aborts the whole group: ranks waiting for it in a collective fail instead of waiting forever.
  auto fail = [&](std::exception_ptr e) {
    {
      std::lock_guard<std::mutex> l(failure_mu);
      if (!failure) failure = e;
    }
    for (const auto& c : comms_) c->abort();
  };
  const int32_t n = size();
  std::vector<forward_batch> held(static_cast<size_t>(n));
  for (int32_t r = 1; r < n; ++r)
    ranks_[size_t(r)].thread->post([&, r] {
      try {
        const rank& k = ranks_[size_t(r)];
        k.m->forward_logits(*k.ctx, rank_batch(r, batch, held[size_t(r)]), rank_cache(r, kv));
      } catch (...) {
        fail(std::current_exception());
      }
    });
  tensor out;
  try {
    out = ranks_[0].m->forward_logits(ctx, rank_batch(0, batch, held[0]), kv);
  } catch (...) {
    fail(std::current_exception());
  }
  for (int32_t r = 1; r < n; ++r) ranks_[size_t(r)].thread->wait();
  if (failure) {
    connect();  // the aborted group cannot be used again
    std::rethrow_exception(failure);
  }
  return out;
}

tensor tensor_parallel_model::encode_image(exec_context& ctx, const vision_input& image) const {
  // Data-parallel vision: the tower of the rank on ctx's device (every rank holds all of it).
  for (const rank& k : ranks_)
    if (k.ctx->dev() == ctx.dev()) return k.m->encode_image(ctx, image);
  throw error("tensor parallelism: no rank on " + ctx.dev().str() + " to encode the image");
}

}  // namespace autoglm

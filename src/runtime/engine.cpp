// runtime/engine.cpp: the engine thread. Each loop: take new requests, cancels and finished images → requests
// whose images are all there enter the scheduler, the others wait for the vision worker → schedule (admission
// with prefix reuse, decodes, prefill chunks; a prefill stops before an image that is not encoded yet) → one
// forward → sample per sequence → events → forget finished requests. Images are encoded on the vision worker
// (vision_worker.h), never on this thread. Nothing throws out of the thread: a failing step fails the requests
// it touched, a failing image the requests that need it.
#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "core/error.h"
#include "core/log.h"
#include "ops/ops.h"
#include "runtime/device_budget.h"
#include "runtime/embedding_cache.h"
#include "runtime/engine_impl.h"
#include "runtime/kv_cache.h"
#include "runtime/request_state.h"
#include "runtime/sampler.h"
#include "runtime/scheduler.h"
#include "runtime/step_graphs.h"
#include "runtime/tensor_parallel.h"
#include "runtime/vision_worker.h"

namespace autoglm {

namespace {

constexpr size_t k_default_kv_cap = size_t(4) << 30;        // KV budget when options leave it to us
constexpr size_t k_embedding_cache_bytes = size_t(512) << 20;

// The ctx dump callback (host F32 tensor) in the public API's shape (pointer, rows, cols).
dump_fn wrap_dump(const dump_callback& fn) {
  if (!fn) return nullptr;
  return [fn](const std::string& name, const tensor& t) { fn(name, t.ptr<float>(), t.rows(), t.cols()); };
}

class engine_impl final : public engine {
 public:
  engine_impl(const engine_options& options, std::unique_ptr<exec_context> ctx, std::unique_ptr<model> m,
              std::shared_ptr<const tokenizer> tok)
      : options_(options), ctx_(std::move(ctx)), model_(std::move(m)), tok_(std::move(tok)),
        images_(k_embedding_cache_bytes) {
    AG_CHECK(model_ != nullptr && ctx_ != nullptr, "engine needs a model and its context");
    validate_engine_options(options);
    size_kv_cache();
    ctx_->set_dump(wrap_dump(options.dump));
    const int32_t n_decode = ctx_->pool() ? ctx_->pool()->n_threads() : 1;
    const int32_t n_vision = options.n_vision_threads > 0 ? options.n_vision_threads : std::max(1, n_decode / 2);
    // Tensor parallelism: one vision thread per rank's device (whole images per rank, data-parallel).
    std::vector<device> vision_devs = {ctx_->dev()};
    if (const auto* tp = dynamic_cast<const tensor_parallel_model*>(model_.get())) vision_devs = tp->devices();
    if (model_->info().has_vision)
      vision_ = std::make_unique<vision_worker>(*model_, vision_devs, n_vision, wrap_dump(options.dump),
                                                [this](vision_worker::result r) { on_image_done(std::move(r)); });
    graphs_ = std::make_unique<step_graphs>(*ctx_, *model_);
    if (!graphs_->enabled()) graphs_.reset();
    thread_ = std::thread([this] { run(); });
  }

  ~engine_impl() override { shutdown(); }

  uint64_t submit(generation_request request, event_callback on_event) override {
    pending p = prepare_request(std::move(request), *model_, max_model_len_);
    p.state->on_event = std::move(on_event);
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_) return 0;
    if (int32_t(incoming_.size()) + n_waiting_ >= options_.max_waiting) return 0;
    const uint64_t id = next_id_++;
    p.seq->id = id;
    incoming_.push_back(std::move(p));
    cv_.notify_one();
    return id;
  }

  void cancel(uint64_t request_id) override {
    std::lock_guard<std::mutex> lk(mu_);
    cancels_.push_back(request_id);
    cv_.notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopping_ = true;
      cv_.notify_one();
    }
    if (thread_.joinable()) thread_.join();
    if (vision_) vision_->stop();
  }

  engine_stats stats() const override {
    std::lock_guard<std::mutex> lk(mu_);
    engine_stats s = stats_;
    s.n_waiting += int32_t(incoming_.size());
    if (vision_) {
      s.n_images_encoding = vision_->n_pending();
      s.vision_encode_ms_total = vision_->encode_ms_total();
    }
    return s;
  }
  const model_info& info() const override { return model_->info(); }
  const tokenizer& get_tokenizer() const override {
    if (!tok_) throw error(options_.model_dir + ": no tokenizer.json (this model takes token ids only)");
    return *tok_;
  }
  int32_t max_model_len() const override { return max_model_len_; }
  int32_t n_threads() const override { return ctx_->pool() ? ctx_->pool()->n_threads() : 1; }
  int32_t n_vision_threads() const override { return vision_ ? vision_->n_threads() : 0; }
  size_t weight_bytes_per_token() const override { return model_->weight_bytes_per_token(); }

 private:
  // The KV budget: explicit bytes, or enough for max_num_seqs full contexts (capped); the context length is
  // what both the model and the budget allow.
  void size_kv_cache() {
    const engine_options& o = options_;
    const model_info& mi = model_->info();
    const int32_t bs = o.kv_block_size;
    const int32_t cfg_len = mi.max_position_embeddings > 0 ? mi.max_position_embeddings : 8192;
    if (o.max_model_len > cfg_len)
      throw error("max_model_len " + std::to_string(o.max_model_len) + " exceeds the model's " +
                  "max_position_embeddings " + std::to_string(cfg_len));
    const int32_t want_len = o.max_model_len > 0 ? o.max_model_len : cfg_len;
    const kv_layout layout = model_->kv_shape();
    const dtype kv_type = kv_cache_element_type(o.kv_cache_dtype);
    const size_t per_token = std::max<size_t>(kv_cache::bytes_per_token(layout, kv_type), 1);
    size_t bytes = o.kv_cache_bytes;
    size_t wanted = 0;  // the automatic budget saturates at the cap instead of wrapping around 64 bits
    if (bytes == 0)
      bytes = __builtin_mul_overflow(size_t(o.max_num_seqs) * size_t(want_len), per_token, &wanted)
                  ? k_default_kv_cap
                  : std::min(wanted, k_default_kv_cap);
    bytes = fit_kv_budget(*ctx_, bytes, o.kv_cache_bytes != 0);  // a GPU: what is left after the weights
    size_t block_bytes = 0;
    if (__builtin_mul_overflow(per_token, size_t(bs), &block_bytes))
      throw invalid_request("kv_block_size " + std::to_string(bs) + " makes a KV block larger than memory", "kv_block_size");
    const uint64_t n_blocks_wanted = bytes / block_bytes;
    if (n_blocks_wanted < 1) throw error("kv_cache_bytes " + std::to_string(bytes) + " holds no KV block");
    // Block ids are int32 throughout the block manager and the block tables.
    if (n_blocks_wanted > uint64_t(INT32_MAX))
      throw invalid_request("kv_cache_bytes " + std::to_string(bytes) + " makes " + std::to_string(n_blocks_wanted) +
                                " KV blocks, more than the limit of " + std::to_string(INT32_MAX) +
                                " (use a larger kv_block_size or a smaller budget)",
                            "kv_cache_bytes");
    const int64_t n_blocks = int64_t(n_blocks_wanted);
    const int64_t capacity = n_blocks * bs;
    if (o.max_model_len > 0 && capacity < o.max_model_len)
      throw error("kv_cache_bytes " + std::to_string(bytes) + " holds " + std::to_string(capacity) +
                  " tokens, fewer than max_model_len " + std::to_string(o.max_model_len));
    max_model_len_ = int32_t(std::min<int64_t>(want_len, capacity));
    kv_ = std::make_unique<kv_cache>(*ctx_, layout, int32_t(n_blocks), bs, kv_type);
    blocks_ = std::make_unique<block_manager>(int32_t(n_blocks), bs, o.enable_prefix_caching);
    scheduler_config sc;
    sc.max_num_seqs = o.max_num_seqs;
    sc.max_batch_tokens = o.max_batch_tokens > 0 ? o.max_batch_tokens
                          : ctx_->dev().kind == device_kind::CPU ? 512 : 2048;
    sc.max_model_len = max_model_len_;
    sched_ = std::make_unique<scheduler>(sc, *blocks_);
    stats_.kv_blocks_total = int32_t(n_blocks);
    AG_LOG_INFO("engine: {} KV blocks of {} tokens ({} MiB, {}), max_model_len {}", n_blocks, bs,
                kv_->n_bytes() >> 20, kv_cache_type_name(o.kv_cache_dtype), max_model_len_);
  }

  // Vision worker thread: post the result for the engine thread.
  void on_image_done(vision_worker::result r) {
    std::lock_guard<std::mutex> lk(mu_);
    images_done_.push_back(std::move(r));
    cv_.notify_one();
  }

  void run() {
    for (;;) {
      std::deque<pending> incoming;
      std::vector<uint64_t> cancels;
      std::vector<vision_worker::result> done;
      bool stop = false;
      {
        std::unique_lock<std::mutex> lk(mu_);
        // A step that scheduled nothing (every running sequence waits for an image) waits for news.
        cv_.wait(lk, [&] {
          return stopping_ || !incoming_.empty() || !cancels_.empty() || !images_done_.empty() ||
                 (!sched_->idle() && !stalled_);
        });
        incoming.swap(incoming_);
        cancels.swap(cancels_);
        done.swap(images_done_);
        stop = stopping_;
      }
      stalled_ = false;
      for (vision_worker::result& r : done) image_done(std::move(r));
      for (pending& p : incoming) admit(std::move(p));
      for (uint64_t id : cancels) finish_request(id, finish_reason::CANCELLED, {});
      if (stop) {
        std::vector<uint64_t> ids;
        for (const auto& [id, st] : states_) ids.push_back(id);
        std::sort(ids.begin(), ids.end());
        for (uint64_t id : ids) finish_request(id, finish_reason::CANCELLED, {});
        publish_stats();
        return;
      }
      if (!sched_->idle()) step();
      publish_stats();
    }
  }

  // A new request: attach the image embeddings it needs that are cached, ask the vision worker for the others
  // (then it waits outside the scheduler), else it enters the scheduler now.
  void admit(pending p) {
    const uint64_t id = p.seq->id;
    request_state& st = *p.state;
    n_prompt_tokens_ += p.seq->n_prompt;
    // Images whose placeholders the prefix cache covers now are not needed (their KV is reused). Should those
    // blocks be evicted before admission, the sequence stops before the image and step() asks for it then.
    const int32_t n_cached = st.images.empty() ? 0 : blocks_->n_cached_tokens(*p.seq);
    for (size_t k = 0; k < st.images.size(); ++k)
      if (st.image_end[k] > n_cached) request_image(id, st, k);
    update_missing(*p.seq, st);
    st.parked = std::move(p.seq);
    states_[id] = std::move(p.state);
    if (st.n_images_pending == 0) unpark(st);
  }

  // Attaches image k from the embedding cache or asks the worker for it (once per key).
  void request_image(uint64_t id, request_state& st, size_t k) {
    if (!st.embeds[k].empty() || st.image_requested[k]) return;
    tensor e = images_.get(st.image_keys[k]);
    if (!e.empty()) {
      ++n_image_cache_hits_;
      attach(st, st.image_keys[k], e);
      return;
    }
    auto [it, fresh] = image_waiters_.try_emplace(st.image_keys[k]);
    it->second.push_back(id);
    if (fresh) vision_->enqueue(st.image_keys[k], st.images[k]);
    // Every image of this request under the same key is served by that one encode.
    for (size_t j = 0; j < st.images.size(); ++j)
      if (st.image_keys[j] == st.image_keys[k] && !st.image_requested[j]) {
        st.image_requested[j] = true;
        ++st.n_images_pending;
      }
  }

  static void attach(request_state& st, uint64_t key, const tensor& e) {
    for (size_t j = 0; j < st.images.size(); ++j)
      if (st.image_keys[j] == key && st.embeds[j].empty()) {
        st.embeds[j] = e;
        if (st.image_requested[j]) {
          st.image_requested[j] = false;
          --st.n_images_pending;
        }
      }
  }

  static void update_missing(sequence& seq, const request_state& st) {
    seq.missing_inputs.clear();
    for (size_t k = 0; k < st.images.size(); ++k)
      if (st.embeds[k].empty()) seq.missing_inputs.push_back({st.image_begin[k], st.image_end[k]});
  }

  void unpark(request_state& st) {
    if (!st.parked) return;
    sched_->add(std::move(st.parked));
  }

  sequence* find_sequence(uint64_t id, request_state& st) {
    if (st.parked) return st.parked.get();
    for (const auto& s : sched_->running())
      if (s->id == id) return s.get();
    for (const auto& s : sched_->waiting())
      if (s->id == id) return s.get();
    return nullptr;
  }

  // An encode finished: cache it and let its waiters go on, or fail them.
  void image_done(vision_worker::result r) {
    auto it = image_waiters_.find(r.key);
    std::vector<uint64_t> waiters;
    if (it != image_waiters_.end()) {
      waiters = std::move(it->second);
      image_waiters_.erase(it);
    }
    const int32_t hidden = model_->info().hidden_size;
    if (r.error.empty() && (r.embedding.n_dims() != 2 || r.embedding.dim(1) != hidden ||
                            r.embedding.type() != dtype::F32))
      r.error = "the vision tower returned " + r.embedding.shape_str() + " " + dtype_name(r.embedding.type()) +
                " for an image (expected [n_tokens, " + std::to_string(hidden) + "] F32)";
    if (r.error.empty()) {
      ++n_images_encoded_;
      images_.put(r.key, r.embedding);
    }
    for (uint64_t id : waiters) {
      auto st_it = states_.find(id);
      if (st_it == states_.end()) continue;
      request_state& st = *st_it->second;
      std::string err = r.error;
      if (err.empty())
        for (size_t k = 0; k < st.images.size(); ++k)
          if (st.image_keys[k] == r.key && r.embedding.dim(0) != st.images[k]->n_tokens())
            err = "the vision tower returned " + std::to_string(r.embedding.dim(0)) + " rows for an image of " +
                  std::to_string(st.images[k]->n_tokens()) + " tokens";
      if (!err.empty()) {
        finish_request(id, finish_reason::ERROR, "image encoding failed: " + err);
        continue;
      }
      attach(st, r.key, r.embedding);
      if (sequence* seq = find_sequence(id, st)) update_missing(*seq, st);
      if (st.n_images_pending == 0) unpark(st);
    }
  }

  // Running sequences that stopped before an image nobody asked for (its prefix blocks were evicted between
  // arrival and admission): ask for it now. Returns whether one could go on at once (embedding cache hit).
  bool request_missing_images() {
    bool progress = false;
    for (const auto& s : sched_->running()) {
      sequence& seq = *s;
      if (seq.missing_inputs.empty() || seq.ready_until() >= seq.n_tokens()) continue;
      request_state& st = *states_.at(seq.id);
      for (size_t k = 0; k < st.images.size(); ++k)
        if (st.embeds[k].empty() && st.image_end[k] > seq.n_computed) request_image(seq.id, st, k);
      const int32_t before = seq.ready_until();
      update_missing(seq, st);
      progress |= seq.ready_until() > before;
    }
    return progress;
  }

  void emit(uint64_t id, request_state& st, const generation_event& ev) {
    if (!st.on_event) return;
    try {
      st.on_event(ev);
    } catch (const std::exception& e) {
      AG_LOG_WARN("engine: event callback of request {} threw: {}", id, e.what());
    } catch (...) {
      AG_LOG_WARN("engine: event callback of request {} threw", id);
    }
  }

  generation_event base_event(const sequence& seq) const {
    generation_event ev;
    ev.request_id = seq.id;
    ev.n_prompt_tokens = seq.n_prompt;
    ev.n_generated_tokens = seq.n_generated();
    ev.n_cached_prompt_tokens = seq.n_cached_prompt;
    return ev;
  }

  // Ends a request that has not finished by itself (cancel, error), wherever it is, releasing its blocks.
  void finish_request(uint64_t id, finish_reason reason, const std::string& message) {
    auto it = states_.find(id);
    if (it == states_.end()) return;  // already finished, or unknown
    std::unique_ptr<request_state> st = std::move(it->second);
    states_.erase(it);
    std::unique_ptr<sequence> seq;
    if (st->parked) {
      seq = std::move(st->parked);
      seq->status = sequence_status::FINISHED;
      seq->finish = reason;
    } else {
      seq = sched_->remove(id, reason);
    }
    forget_image_waits(id, *st);
    // A sequence that finished by itself in this step already delivered its final event.
    if (!seq || seq->finish != reason) return;
    generation_event ev = base_event(*seq);
    ev.finish = reason;
    ev.error = message;
    emit(id, *st, ev);
  }

  // A request leaves: encodes only it was waiting for and that have not started are dropped.
  void forget_image_waits(uint64_t id, const request_state& st) {
    if (st.n_images_pending == 0) return;
    for (size_t k = 0; k < st.images.size(); ++k) {
      if (!st.image_requested[k]) continue;
      auto w = image_waiters_.find(st.image_keys[k]);
      if (w == image_waiters_.end()) continue;
      auto& ids = w->second;
      ids.erase(std::remove(ids.begin(), ids.end(), id), ids.end());
      if (ids.empty() && vision_->drop(w->first)) image_waiters_.erase(w);
    }
  }

  void step() {
    std::vector<scheduled_chunk> batch = sched_->schedule();
    const bool progress = request_missing_images();
    if (batch.empty()) {
      // Only possible when the head of the queue can never be admitted (fail it rather than spin) or every
      // admitted sequence waits for an image (wait for the vision worker).
      if (sched_->n_running() == 0 && sched_->n_waiting() > 0)
        finish_request(sched_->waiting().front()->id, finish_reason::ERROR, "request does not fit the KV cache");
      else if (!progress)
        stalled_ = true;
      return;
    }
    std::vector<uint64_t> ids;
    for (const scheduled_chunk& c : batch) ids.push_back(c.seq->id);
    try {
      run_batch(batch);
    } catch (const std::exception& e) {
      AG_LOG_ERROR("engine: step failed: {}", e.what());
      for (uint64_t id : ids) finish_request(id, finish_reason::ERROR, e.what());
    } catch (...) {
      for (uint64_t id : ids) finish_request(id, finish_reason::ERROR, "unknown error in the engine step");
    }
    for (auto& seq : sched_->take_finished()) states_.erase(seq->id);
  }

  void run_batch(const std::vector<scheduled_chunk>& batch) {
    forward_batch fb;
    // Output rows of each chunk: all its prompt positions for return_prompt_logits, else only its last token.
    std::vector<int32_t> first_out(batch.size()), n_out(batch.size());
    for (size_t ci = 0; ci < batch.size(); ++ci) {
      const scheduled_chunk& c = batch[ci];
      const sequence& seq = *c.seq;
      const request_state& st = *states_.at(seq.id);
      forward_batch::sequence fs;
      fs.first_token = fb.n_tokens();
      fs.n_tokens = c.n_tokens;
      fs.n_past = seq.n_computed;
      fs.block_table = seq.block_table.data();
      fs.n_blocks = int32_t(seq.block_table.size());
      fb.sequences.push_back(fs);
      add_tokens(fb, seq, st, seq.n_computed, seq.n_computed + c.n_tokens);
      first_out[ci] = int32_t(fb.logits_rows.size());
      if (st.return_prompt_logits) {
        for (int32_t p = seq.n_computed; p < seq.n_computed + c.n_tokens; ++p)
          if (p < seq.n_prompt || p == seq.n_computed + c.n_tokens - 1)
            fb.logits_rows.push_back(fs.first_token + (p - seq.n_computed));
      } else if (c.wants_logits) {
        fb.logits_rows.push_back(fb.n_tokens() - 1);
      }
      n_out[ci] = int32_t(fb.logits_rows.size()) - first_out[ci];
    }

    const int32_t vocab = model_->info().vocab_size;
    const std::vector<int32_t> device_tokens = forward_and_sample(batch, fb, first_out, n_out);
    sched_->complete(batch);

    for (size_t ci = 0; ci < batch.size(); ++ci) {
      const scheduled_chunk& c = batch[ci];
      sequence& seq = *c.seq;
      request_state& st = *states_.at(seq.id);
      if (st.return_prompt_logits) keep_prompt_logits(seq, st, c, first_out[ci], vocab);
      if (!c.wants_logits) continue;
      const int32_t out_row = first_out[ci] + n_out[ci] - 1;
      sample_result r;
      if (!device_tokens.empty() && device_tokens[size_t(out_row)] >= 0) {
        r.token = device_tokens[size_t(out_row)];
      } else {
        r = st.smp->sample(host_logits_ + size_t(out_row) * size_t(vocab), vocab);
      }
      st.smp->accept(r.token);
      const finish_reason fin = sched_->append_token(seq, r.token);
      ++n_generated_tokens_;
      generation_event ev = base_event(seq);
      ev.has_token = true;
      ev.token = r.token;
      if (st.top_logprobs >= 0) {
        ev.logprob = r.logprob;
        ev.top_logprobs = std::move(r.top_logprobs);
      }
      if (st.return_prompt_logits && !st.prompt_logits_sent) {
        ev.prompt_logits = std::move(st.prompt_logits);
        st.prompt_logits_sent = true;
      }
      ev.finish = fin;
      emit(seq.id, st, ev);
    }
  }

  // Runs the forward step and leaves host_logits_ pointing at the logits rows the host sampler needs (on the CPU
  // the forward's own output; from a GPU a copy). On a GPU, the rows of requests whose sampling needs nothing but
  // SAMPLE's parameters (sampler::device_sampleable) are drawn there: only their token ids come back, returned
  // per output row (-1: sample on the host); an empty vector when no row was drawn on the device.
  std::vector<int32_t> forward_and_sample(const std::vector<scheduled_chunk>& batch, const forward_batch& fb,
                                          const std::vector<int32_t>& first_out, const std::vector<int32_t>& n_out) {
    const size_t n_rows = fb.logits_rows.size();
    const bool on_device = ctx_->dev().kind != device_kind::CPU;
    std::vector<float> params;
    std::vector<int32_t> device_rows;  // output rows whose token is drawn on the device
    bool need_host = false;
    for (size_t ci = 0; ci < batch.size(); ++ci) {
      request_state& st = *states_.at(batch[ci].seq->id);
      if (st.return_prompt_logits || (batch[ci].wants_logits && !(on_device && st.smp->device_sampleable()))) {
        need_host = true;
        continue;
      }
      if (!batch[ci].wants_logits) continue;
      // Rows nobody samples here keep all-zero parameters: a greedy argmax, cheap, and ignored.
      if (params.empty()) params.assign(n_rows * size_t(k_sample_params), 0.0f);
      const int32_t row = first_out[ci] + n_out[ci] - 1;
      st.smp->device_params(&params[size_t(row) * size_t(k_sample_params)]);
      device_rows.push_back(row);
    }
    host_logits_ = nullptr;
    step_logits_ = tensor{};
    const auto t_start = std::chrono::steady_clock::now();
    const tensor out = graphs_ && graphs_->eligible(fb) ? graphs_->run(fb, kv_->layers())
                                                        : model_->forward_logits(*ctx_, fb, kv_->layers());
    if (step_timing_) {
      // Where a GPU step's time goes: enqueueing the kernels on the host vs waiting for the device after that.
      const auto t_enqueued = std::chrono::steady_clock::now();
      ops::synchronize(*ctx_);
      const auto t_done = std::chrono::steady_clock::now();
      enqueue_ms_ += std::chrono::duration<double, std::milli>(t_enqueued - t_start).count();
      wait_ms_ += std::chrono::duration<double, std::milli>(t_done - t_enqueued).count();
      if (++timed_steps_ % 64 == 0) {
        AG_LOG_INFO("engine step timing ({} tokens in the last step): host enqueue {:.3f} ms, device wait {:.3f} ms "
                    "per step (mean of {})", fb.n_tokens(), enqueue_ms_ / 64, wait_ms_ / 64, 64);
        enqueue_ms_ = wait_ms_ = 0;
      }
    }
    if (out.empty()) return {};
    std::vector<int32_t> tokens;
    if (!device_rows.empty()) {
      tensor ids = ops::scratch(*ctx_, dtype::I32, {int64_t(n_rows)});
      ops::sample(*ctx_, out, params.data(), ids);
      std::vector<int32_t> drawn(n_rows);
      ops::to_host(*ctx_, ids, drawn.data(), drawn.size() * sizeof(int32_t));
      tokens.assign(n_rows, -1);  // rows left to the host sampler stay -1
      for (int32_t row : device_rows) tokens[size_t(row)] = drawn[size_t(row)];
    }
    if (need_host) {
      if (out.dev().kind == device_kind::CPU) {
        step_logits_ = out;  // kept: the model may own it (otherwise scratch memory, valid until the next forward)
        host_logits_ = step_logits_.ptr<float>();
      } else {
        logits_.resize(size_t(out.n_elements()));
        ops::to_host(*ctx_, out, logits_.data(), out.n_bytes());
        host_logits_ = logits_.data();
      }
    }
    return tokens;
  }

  // Token ids, M-RoPE positions and image rows of tokens [begin, end) of seq.
  static void add_tokens(forward_batch& fb, const sequence& seq, const request_state& st, int32_t begin, int32_t end) {
    for (int32_t p = begin; p < end; ++p) {
      const int32_t row = fb.n_tokens();
      fb.token_ids.push_back(seq.tokens[size_t(p)]);
      if (p < seq.n_prompt) {
        fb.pos_t.push_back(st.positions.t[size_t(p)]);
        fb.pos_h.push_back(st.positions.h[size_t(p)]);
        fb.pos_w.push_back(st.positions.w[size_t(p)]);
        const int32_t k = st.image_of_token[size_t(p)];
        if (k < 0) continue;
        const int32_t r = st.row_of_token[size_t(p)];
        AG_CHECK(!st.embeds[size_t(k)].empty(), "a prefill reached an image that is not encoded");
        // Rows of one image in order extend the span the previous token of this chunk opened.
        if (p > begin && st.image_of_token[size_t(p - 1)] == k && st.row_of_token[size_t(p - 1)] == r - 1) {
          embedding_span& last = fb.embeddings.back();
          const int32_t n = int32_t(last.rows.dim(0));
          last.rows = st.embeds[size_t(k)].rows_view(r - n, n + 1);
          continue;
        }
        fb.embeddings.push_back({row, st.embeds[size_t(k)].rows_view(r, 1)});
      } else {
        const int32_t pos = p + st.positions.rope_delta;
        fb.pos_t.push_back(pos);
        fb.pos_h.push_back(pos);
        fb.pos_w.push_back(pos);
      }
    }
  }

  void keep_prompt_logits(const sequence& seq, request_state& st, const scheduled_chunk& c, int32_t first_out,
                          int32_t vocab) {
    if (st.prompt_logits_sent) return;
    const int32_t begin = seq.n_computed - c.n_tokens;  // n_computed already advanced by complete()
    const int32_t end = std::min(seq.n_computed, seq.n_prompt);
    if (begin >= end) return;
    st.prompt_logits.resize(size_t(seq.n_prompt) * size_t(vocab));
    std::copy(host_logits_ + size_t(first_out) * size_t(vocab), host_logits_ + size_t(first_out + end - begin) * size_t(vocab),
              st.prompt_logits.begin() + ptrdiff_t(size_t(begin) * size_t(vocab)));
  }

  void publish_stats() {
    int32_t n_parked = 0;
    for (const auto& [id, st] : states_) n_parked += st->parked != nullptr;
    std::lock_guard<std::mutex> lk(mu_);
    n_waiting_ = sched_->n_waiting() + n_parked;
    stats_.n_running = sched_->n_running();
    stats_.n_waiting = n_waiting_;
    stats_.n_vision_waiting = n_parked;
    stats_.n_prompt_tokens_total = n_prompt_tokens_;
    stats_.n_generated_tokens_total = n_generated_tokens_;
    stats_.n_prefix_query_tokens = blocks_->n_query_tokens();
    stats_.n_prefix_hit_tokens = blocks_->n_hit_tokens();
    stats_.kv_blocks_used = blocks_->n_used_blocks();
    stats_.n_images_encoded = n_images_encoded_;
    stats_.n_image_cache_hits = n_image_cache_hits_;
    stats_.n_graph_replays = graphs_ ? graphs_->n_replayed() : 0;
  }

  engine_options options_;
  std::unique_ptr<exec_context> ctx_;  // before the model: weights prepared for it die first
  std::unique_ptr<model> model_;
  std::shared_ptr<const tokenizer> tok_;
  int32_t max_model_len_ = 0;
  std::unique_ptr<kv_cache> kv_;
  std::unique_ptr<vision_worker> vision_;
  std::unique_ptr<step_graphs> graphs_;  // decode steps as CUDA graphs (null: not on this backend); after ctx_

  // Engine thread only.
  std::unique_ptr<block_manager> blocks_;
  std::unique_ptr<scheduler> sched_;
  std::unordered_map<uint64_t, std::unique_ptr<request_state>> states_;
  std::unordered_map<uint64_t, std::vector<uint64_t>> image_waiters_;  // image key -> requests waiting for it
  embedding_cache images_;
  std::vector<float> logits_;            // host copy of a GPU step's logits, when the host sampler needs them
  float* host_logits_ = nullptr;        // the step's logits in host memory (logits_ or the CPU forward's output)
  tensor step_logits_;  // the CPU forward's output while host_logits_ points into it
  // AUTOGLM_STEP_TIMING=1: log how long the host takes to enqueue a step and how long the device runs after that
  // (a diagnosis of launch-bound decoding; adds a synchronize per step).
  const bool step_timing_ = [] {
    const char* e = std::getenv("AUTOGLM_STEP_TIMING");
    return e && std::string(e) == "1";
  }();
  double enqueue_ms_ = 0, wait_ms_ = 0;
  int64_t timed_steps_ = 0;  // steps timed so far (a log line of their mean every 64)
  bool stalled_ = false;
  int64_t n_prompt_tokens_ = 0, n_generated_tokens_ = 0, n_images_encoded_ = 0, n_image_cache_hits_ = 0;

  // Shared with callers and the vision worker, under mu_.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<pending> incoming_;
  std::vector<uint64_t> cancels_;
  std::vector<vision_worker::result> images_done_;
  bool stopping_ = false;
  uint64_t next_id_ = 1;
  int32_t n_waiting_ = 0;
  engine_stats stats_;

  std::thread thread_;
};

}  // namespace

std::unique_ptr<engine> make_engine(const engine_options& options, std::unique_ptr<exec_context> ctx,
                                    std::unique_ptr<model> m, std::shared_ptr<const tokenizer> tok) {
  return std::make_unique<engine_impl>(options, std::move(ctx), std::move(m), std::move(tok));
}

}  // namespace autoglm

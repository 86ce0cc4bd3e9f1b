// runtime/engine.cpp: the engine thread. Each step: take new requests and cancels → schedule (admission with
// prefix reuse, decodes, prefill chunks) → prepare the scheduled requests (M-RoPE positions once per request,
// image embeddings through an LRU keyed by content) → one forward → sample per sequence → events → forget
// finished requests. Nothing throws out of the thread: a failing step fails the requests it touched.
#include <algorithm>
#include <atomic>
#include <climits>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "core/error.h"
#include "core/log.h"
#include "runtime/embedding_cache.h"
#include "runtime/engine_impl.h"
#include "runtime/sampler.h"
#include "runtime/scheduler.h"

namespace autoglm {

const char* finish_reason_name(finish_reason r) {
  switch (r) {
    case finish_reason::NONE: return "none";
    case finish_reason::STOP: return "stop";
    case finish_reason::LENGTH: return "length";
    case finish_reason::CANCELLED: return "cancelled";
    case finish_reason::ERROR: return "error";
  }
  return "unknown";
}

uint64_t image_extra_key(const vision_input& image) {
  uint64_t h = image.content_hash ^ 0x696d616765ULL;
  for (uint64_t v : {uint64_t(image.grid_t), uint64_t(image.grid_h), uint64_t(image.grid_w)}) {
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h = (h ^ (h >> 31)) * 0xbf58476d1ce4e5b9ULL;
  }
  return h == 0 ? 1 : h;  // 0 means "no extra key"
}

// Upper bounds on engine_options: far above what any deployment uses, low enough that a typo (an extra zero
// or two, a negative number read as unsigned) fails at start-up with the option's name instead of asking for
// terabytes or wrapping an int32 (block counts, positions).
namespace {
constexpr int32_t k_max_threads_option = 1024;
constexpr int32_t k_max_num_seqs = 4096;
constexpr int32_t k_max_model_len = int32_t(1) << 24;  // as config.json's max_position_embeddings
constexpr int32_t k_max_batch_tokens = int32_t(1) << 18;
constexpr int32_t k_max_waiting = int32_t(1) << 20;
constexpr int32_t k_max_kv_block_size = 1024;

void check_range(int64_t v, int64_t lo, int64_t hi, const char* name) {
  if (v < lo || v > hi)
    throw invalid_request(std::string(name) + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                              ", got " + std::to_string(v),
                          name);
}
}  // namespace

void validate_engine_options(const engine_options& o) {
  check_range(o.n_threads, 0, k_max_threads_option, "n_threads");
  check_range(o.max_num_seqs, 1, k_max_num_seqs, "max_num_seqs");
  check_range(o.max_model_len, 0, k_max_model_len, "max_model_len");
  check_range(o.max_batch_tokens, 1, k_max_batch_tokens, "max_batch_tokens");
  check_range(o.max_waiting, 1, k_max_waiting, "max_waiting");
  check_range(o.kv_block_size, 1, k_max_kv_block_size, "kv_block_size");
  check_range(o.min_pixels, 0, INT32_MAX, "min_pixels");
  check_range(o.max_pixels, 0, INT32_MAX, "max_pixels");
  if (o.min_pixels > 0 && o.max_pixels > 0 && o.min_pixels > o.max_pixels)
    throw invalid_request("min_pixels (" + std::to_string(o.min_pixels) + ") must not exceed max_pixels (" +
                              std::to_string(o.max_pixels) + ")",
                          "min_pixels");
}

namespace {

constexpr size_t k_default_kv_cap = size_t(4) << 30;        // KV budget when options leave it to us
constexpr size_t k_embedding_cache_bytes = size_t(512) << 20;

// Everything the engine thread keeps about one request beside its scheduler sequence.
struct request_state {
  generation_request request;
  event_callback on_event;
  std::unique_ptr<sampler> smp;
  std::vector<int32_t> image_of_token;  // [n_prompt]: image index of a placeholder token, else -1
  std::vector<int32_t> row_of_token;    // [n_prompt]: its row in that image's embedding
  std::vector<uint64_t> image_keys;     // [n_images]
  std::vector<image_embedding> embeds;  // [n_images], filled when a chunk first needs them
  bool has_positions = false;
  prompt_positions positions;
};

class engine_impl final : public engine {
 public:
  engine_impl(const engine_options& options, std::unique_ptr<model_runner> model, std::shared_ptr<const tokenizer> tok)
      : options_(options), model_(std::move(model)), tok_(std::move(tok)), images_(k_embedding_cache_bytes) {
    AG_CHECK(model_ != nullptr, "engine needs a model");
    const model_info& mi = model_->info();
    validate_engine_options(options);
    const int32_t bs = options.kv_block_size;
    const int32_t cfg_len = mi.max_position_embeddings > 0 ? mi.max_position_embeddings : 8192;
    if (options.max_model_len > cfg_len)
      throw error("max_model_len " + std::to_string(options.max_model_len) + " exceeds the model's " +
                  "max_position_embeddings " + std::to_string(cfg_len));
    const int32_t want_len = options.max_model_len > 0 ? options.max_model_len : cfg_len;
    const size_t per_token = std::max<size_t>(model_->kv_bytes_per_token(), 1);
    size_t bytes = options.kv_cache_bytes;
    size_t wanted = 0;  // the automatic budget saturates at the cap instead of wrapping around 64 bits
    if (bytes == 0)
      bytes = __builtin_mul_overflow(size_t(options.max_num_seqs) * size_t(want_len), per_token, &wanted)
                  ? k_default_kv_cap
                  : std::min(wanted, k_default_kv_cap);
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
    if (options.max_model_len > 0 && capacity < options.max_model_len)
      throw error("kv_cache_bytes " + std::to_string(bytes) + " holds " + std::to_string(capacity) +
                  " tokens, fewer than max_model_len " + std::to_string(options.max_model_len));
    max_model_len_ = int32_t(std::min<int64_t>(want_len, capacity));
    model_->allocate_kv_cache(int32_t(n_blocks), bs);
    blocks_ = std::make_unique<block_manager>(int32_t(n_blocks), bs, options.enable_prefix_caching);
    scheduler_config sc;
    sc.max_num_seqs = options.max_num_seqs;
    sc.max_batch_tokens = options.max_batch_tokens;
    sc.max_model_len = max_model_len_;
    sched_ = std::make_unique<scheduler>(sc, *blocks_);
    stats_.kv_blocks_total = int32_t(n_blocks);
    AG_LOG_INFO("engine: {} KV blocks of {} tokens ({} MiB), max_model_len {}", n_blocks, bs,
                (n_blocks * bs * int64_t(per_token)) >> 20, max_model_len_);
    thread_ = std::thread([this] { run(); });
  }

  ~engine_impl() override { shutdown(); }

  uint64_t submit(generation_request request, event_callback on_event) override {
    auto [seq, state] = validate(std::move(request));
    state->on_event = std::move(on_event);
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_) return 0;
    if (int32_t(incoming_.size()) + n_waiting_ >= options_.max_waiting) return 0;
    const uint64_t id = next_id_++;
    seq->id = id;
    incoming_.push_back({std::move(seq), std::move(state)});
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
  }

  engine_stats stats() const override {
    std::lock_guard<std::mutex> lk(mu_);
    engine_stats s = stats_;
    s.n_waiting += int32_t(incoming_.size());
    return s;
  }
  const model_info& info() const override { return model_->info(); }
  const tokenizer& get_tokenizer() const override {
    if (!tok_) throw error("this engine was built without a tokenizer");
    return *tok_;
  }
  int32_t max_model_len() const override { return max_model_len_; }

 private:
  struct pending {
    std::unique_ptr<sequence> seq;
    std::unique_ptr<request_state> state;
  };

  // Caller thread: checks the request against the model and context, and builds its sequence.
  pending validate(generation_request request) const {
    const model_info& mi = model_->info();
    const sampling_params& sp = request.sampling;
    const int32_t n_prompt = int32_t(request.prompt.size());
    if (n_prompt == 0) throw invalid_request("the prompt is empty", "messages");
    if (n_prompt >= max_model_len_)
      throw invalid_request("the prompt has " + std::to_string(n_prompt) + " tokens; this model's context is " +
                                std::to_string(max_model_len_) + " tokens including at least one generated token",
                            "messages");
    for (int32_t t : request.prompt)
      if (t < 0 || t >= mi.vocab_size) throw invalid_request("prompt token id " + std::to_string(t) + " is out of range", "prompt");
    if (!(sp.temperature >= 0.0f)) throw invalid_request("temperature must be >= 0", "temperature");
    if (!(sp.top_p > 0.0f && sp.top_p <= 1.0f)) throw invalid_request("top_p must be in (0, 1]", "top_p");
    if (sp.top_k < 0) throw invalid_request("top_k must be >= 0", "top_k");
    if (!(sp.min_p >= 0.0f && sp.min_p <= 1.0f)) throw invalid_request("min_p must be in [0, 1]", "min_p");
    if (!(sp.repetition_penalty > 0.0f)) throw invalid_request("repetition_penalty must be > 0", "repetition_penalty");
    if (sp.max_tokens < 1) throw invalid_request("max_tokens must be >= 1", "max_tokens");

    auto state = std::make_unique<request_state>();
    auto seq = std::make_unique<sequence>();
    seq->tokens = request.prompt;
    seq->n_prompt = n_prompt;
    seq->max_tokens = sp.max_tokens;
    if (!sp.ignore_eos) seq->stop_ids = mi.eos_token_ids;
    seq->stop_ids.insert(seq->stop_ids.end(), sp.stop_token_ids.begin(), sp.stop_token_ids.end());

    // Placeholder token i of the prompt is row r of image k, in order.
    const size_t n_images = request.images.size();
    if (n_images > 0 && !mi.has_vision) throw invalid_request("this model does not take images", "messages");
    state->image_of_token.assign(size_t(n_prompt), -1);
    state->row_of_token.assign(size_t(n_prompt), 0);
    seq->extra_keys.assign(size_t(n_prompt), 0);
    for (const vision_input& im : request.images) {
      if (im.n_tokens() <= 0 || im.pixel_values.empty()) throw invalid_request("an image has no pixels", "messages");
      state->image_keys.push_back(image_extra_key(im));
    }
    size_t k = 0;
    int32_t row = 0;
    for (int32_t i = 0; i < n_prompt; ++i) {
      if (request.prompt[size_t(i)] != mi.image_token_id || mi.image_token_id < 0) continue;
      if (k >= n_images) throw invalid_request("the prompt has more image placeholders than images' tokens", "messages");
      state->image_of_token[size_t(i)] = int32_t(k);
      state->row_of_token[size_t(i)] = row;
      seq->extra_keys[size_t(i)] = state->image_keys[k];
      if (++row == request.images[k].n_tokens()) {
        ++k;
        row = 0;
      }
    }
    if (k != n_images || row != 0)
      throw invalid_request("the prompt's image placeholders do not match the images (" + std::to_string(n_images) +
                                " images)", "messages");
    state->embeds.resize(n_images);
    state->smp = std::make_unique<sampler>(sp, request.prompt);
    state->request = std::move(request);
    return {std::move(seq), std::move(state)};
  }

  void run() {
    for (;;) {
      std::deque<pending> incoming;
      std::vector<uint64_t> cancels;
      bool stop = false;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stopping_ || !incoming_.empty() || !cancels_.empty() || !sched_->idle(); });
        incoming.swap(incoming_);
        cancels.swap(cancels_);
        stop = stopping_;
      }
      for (pending& p : incoming) {
        const uint64_t id = p.seq->id;
        states_[id] = std::move(p.state);
        n_prompt_tokens_ += p.seq->n_prompt;
        sched_->add(std::move(p.seq));
      }
      for (uint64_t id : cancels) finish_request(id, finish_reason::CANCELLED, {});
      if (stop) {
        std::vector<uint64_t> ids;
        for (const auto& [id, st] : states_) ids.push_back(id);
        std::sort(ids.begin(), ids.end());
        for (uint64_t id : ids) finish_request(id, finish_reason::CANCELLED, {});
        publish_stats();
        return;
      }
      step();
      publish_stats();
    }
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

  // Ends a request that has not finished by itself (cancel, error), releasing its blocks.
  void finish_request(uint64_t id, finish_reason reason, const std::string& message) {
    auto it = states_.find(id);
    if (it == states_.end()) return;  // already finished, or unknown
    std::unique_ptr<sequence> seq = sched_->remove(id, reason);
    std::unique_ptr<request_state> st = std::move(it->second);
    states_.erase(it);
    // A sequence that finished by itself in this step already delivered its final event.
    if (!seq || seq->finish != reason) return;
    generation_event ev = base_event(*seq);
    ev.finish = reason;
    ev.error = message;
    emit(id, *st, ev);
  }

  // Positions and the image embeddings chunk [begin, end) of the prompt needs. Throws on a bad image.
  void prepare(const sequence& seq, request_state& st, int32_t begin, int32_t end) {
    if (!st.has_positions) {
      st.positions = model_->compute_positions(st.request.prompt, st.request.images);
      AG_CHECK(int32_t(st.positions.t.size()) == seq.n_prompt && int32_t(st.positions.h.size()) == seq.n_prompt &&
                   int32_t(st.positions.w.size()) == seq.n_prompt,
               "compute_positions returned the wrong length");
      st.has_positions = true;
    }
    const int32_t hidden = model_->info().hidden_size;
    for (int32_t p = begin; p < std::min(end, seq.n_prompt); ++p) {
      const int32_t k = st.image_of_token[size_t(p)];
      if (k < 0 || st.embeds[size_t(k)]) continue;
      const vision_input& im = st.request.images[size_t(k)];
      image_embedding e = images_.get(st.image_keys[size_t(k)]);
      if (e) {
        ++n_image_cache_hits_;
      } else {
        auto v = std::make_shared<std::vector<float>>(model_->encode_image(im));
        if (v->size() != size_t(im.n_tokens()) * size_t(hidden))
          throw error("the vision tower returned " + std::to_string(v->size()) + " floats for an image of " +
                      std::to_string(im.n_tokens()) + " tokens");
        e = std::move(v);
        images_.put(st.image_keys[size_t(k)], e);
        ++n_images_encoded_;
      }
      st.embeds[size_t(k)] = std::move(e);
    }
  }

  void step() {
    std::vector<scheduled_chunk> batch = sched_->schedule();
    if (batch.empty()) {
      // Only possible when the head of the queue can never be admitted; fail it rather than spin.
      if (sched_->n_running() == 0 && sched_->n_waiting() > 0)
        finish_request(sched_->waiting().front()->id, finish_reason::ERROR, "request does not fit the KV cache");
      return;
    }
    // Prepare each request; one that fails (bad image) is failed alone and dropped from the batch.
    std::vector<uint64_t> failed;
    std::vector<std::string> failed_msg;
    for (const scheduled_chunk& c : batch) {
      try {
        prepare(*c.seq, *states_.at(c.seq->id), c.seq->n_computed, c.seq->n_computed + c.n_tokens);
      } catch (const std::exception& e) {
        failed.push_back(c.seq->id);
        failed_msg.push_back(e.what());
      }
    }
    if (!failed.empty()) {
      batch.erase(std::remove_if(batch.begin(), batch.end(),
                                 [&](const scheduled_chunk& c) {
                                   return std::find(failed.begin(), failed.end(), c.seq->id) != failed.end();
                                 }),
                  batch.end());
      for (size_t i = 0; i < failed.size(); ++i) finish_request(failed[i], finish_reason::ERROR, failed_msg[i]);
      if (batch.empty()) return;
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
    for (const scheduled_chunk& c : batch) {
      const sequence& seq = *c.seq;
      const request_state& st = *states_.at(seq.id);
      forward_batch::sequence fs;
      fs.first_token = fb.n_tokens();
      fs.n_tokens = c.n_tokens;
      fs.n_past = seq.n_computed;
      fs.block_table = seq.block_table.data();
      fs.n_blocks = int32_t(seq.block_table.size());
      fb.sequences.push_back(fs);
      const int32_t hidden = model_->info().hidden_size;
      for (int32_t p = seq.n_computed; p < seq.n_computed + c.n_tokens; ++p) {
        fb.token_ids.push_back(seq.tokens[size_t(p)]);
        if (p < seq.n_prompt) {
          fb.pos_t.push_back(st.positions.t[size_t(p)]);
          fb.pos_h.push_back(st.positions.h[size_t(p)]);
          fb.pos_w.push_back(st.positions.w[size_t(p)]);
          const int32_t k = st.image_of_token[size_t(p)];
          fb.embed_rows.push_back(k < 0 ? nullptr
                                        : st.embeds[size_t(k)]->data() + size_t(st.row_of_token[size_t(p)]) * size_t(hidden));
        } else {
          const int32_t pos = p + st.positions.rope_delta;
          fb.pos_t.push_back(pos);
          fb.pos_h.push_back(pos);
          fb.pos_w.push_back(pos);
          fb.embed_rows.push_back(nullptr);
        }
      }
      if (c.wants_logits) fb.logits_rows.push_back(fb.n_tokens() - 1);
    }

    const int32_t vocab = model_->info().vocab_size;
    logits_.resize(fb.logits_rows.size() * size_t(vocab));
    model_->forward(fb, logits_.data());
    sched_->complete(batch);

    size_t row = 0;
    for (const scheduled_chunk& c : batch) {
      sequence& seq = *c.seq;
      if (!c.wants_logits) continue;
      request_state& st = *states_.at(seq.id);
      sample_result r = st.smp->sample(logits_.data() + row * size_t(vocab), vocab);
      ++row;
      st.smp->accept(r.token);
      const finish_reason fin = sched_->append_token(seq, r.token);
      ++n_generated_tokens_;
      generation_event ev = base_event(seq);
      ev.has_token = true;
      ev.token = r.token;
      if (st.request.sampling.top_logprobs >= 0) {
        ev.logprob = r.logprob;
        ev.top_logprobs = std::move(r.top_logprobs);
      }
      ev.finish = fin;
      emit(seq.id, st, ev);
    }
  }

  void publish_stats() {
    std::lock_guard<std::mutex> lk(mu_);
    n_waiting_ = sched_->n_waiting();
    stats_.n_running = sched_->n_running();
    stats_.n_waiting = sched_->n_waiting();
    stats_.n_prompt_tokens_total = n_prompt_tokens_;
    stats_.n_generated_tokens_total = n_generated_tokens_;
    stats_.n_prefix_query_tokens = blocks_->n_query_tokens();
    stats_.n_prefix_hit_tokens = blocks_->n_hit_tokens();
    stats_.kv_blocks_used = blocks_->n_used_blocks();
    stats_.n_images_encoded = n_images_encoded_;
    stats_.n_image_cache_hits = n_image_cache_hits_;
  }

  engine_options options_;
  std::unique_ptr<model_runner> model_;
  std::shared_ptr<const tokenizer> tok_;
  int32_t max_model_len_ = 0;

  // Engine thread only.
  std::unique_ptr<block_manager> blocks_;
  std::unique_ptr<scheduler> sched_;
  std::unordered_map<uint64_t, std::unique_ptr<request_state>> states_;
  embedding_cache images_;
  std::vector<float> logits_;
  int64_t n_prompt_tokens_ = 0, n_generated_tokens_ = 0, n_images_encoded_ = 0, n_image_cache_hits_ = 0;

  // Shared with callers, under mu_.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<pending> incoming_;
  std::vector<uint64_t> cancels_;
  bool stopping_ = false;
  uint64_t next_id_ = 1;
  int32_t n_waiting_ = 0;
  engine_stats stats_;

  std::thread thread_;
};

}  // namespace

std::unique_ptr<engine> make_engine(const engine_options& options, std::unique_ptr<model_runner> model,
                                    std::shared_ptr<const tokenizer> tok) {
  return std::make_unique<engine_impl>(options, std::move(model), std::move(tok));
}

}  // namespace autoglm

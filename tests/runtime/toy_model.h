// tests/runtime/toy_model.h: a small paged model_runner for engine tests. It is not GLM: each token's "K/V" is
// (token id, M-RoPE position, first embedding value), written into the paged pool at the slot its block table
// names, and the logits of a row are a fixed function of everything read back through the block table. So any
// block-table, prefix-cache, chunking or position mistake changes the generated tokens, and an uncomputed slot
// read back aborts the test. Fault hooks: token `poison_token` makes forward throw; an image whose first pixel is
// negative makes encode_image throw; `hold()` parks the engine thread inside forward until `release()`.
#pragma once

#include <cmath>
#include <condition_variable>
#include <mutex>
#include <stdexcept>

#include "core/error.h"
#include "model/model_runner.h"

namespace autoglm::test {

class toy_model : public model_runner {
 public:
  static constexpr int32_t vocab = 64, image_token = 60, poison_token = 61, eos = 63;

  toy_model() {
    info_.architecture = "toy";
    info_.vocab_size = vocab;
    info_.hidden_size = 4;
    info_.n_layers = 1;
    info_.n_kv_heads = 1;
    info_.head_dim = 4;
    info_.max_position_embeddings = 512;
    info_.image_token_id = image_token;
    info_.eos_token_ids = {eos};
    info_.has_vision = true;
  }
  const model_info& info() const override { return info_; }
  size_t kv_bytes_per_token() const override { return 64; }

  void allocate_kv_cache(int32_t n_blocks, int32_t block_size) override {
    n_blocks_ = n_blocks;
    block_size_ = block_size;
    slots_.assign(size_t(n_blocks) * size_t(block_size), slot{});
  }

  void forward(const forward_batch& b, float* logits) override {
    {
      std::unique_lock<std::mutex> lk(mu_);
      in_forward_ = true;
      cv_.notify_all();
      cv_.wait(lk, [&] { return !held_; });
      in_forward_ = false;
      ++n_forward_;
    }
    AG_CHECK(b.pos_t.size() == b.token_ids.size() && b.embed_rows.size() == b.token_ids.size(), "ragged batch");
    for (int32_t t : b.token_ids)
      if (t == poison_token) throw std::runtime_error("toy model: poison token");
    size_t out_row = 0;
    for (const auto& s : b.sequences) {
      for (int32_t j = 0; j < s.n_tokens; ++j) {
        const int32_t i = s.first_token + j, p = s.n_past + j;
        AG_CHECK(p / block_size_ < s.n_blocks, "block table too short");
        slot& sl = slots_[size_t(s.block_table[p / block_size_]) * size_t(block_size_) + size_t(p % block_size_)];
        sl = {true, b.token_ids[size_t(i)], b.pos_t[size_t(i)] * 10007 + b.pos_h[size_t(i)] * 101 + b.pos_w[size_t(i)],
              b.embed_rows[size_t(i)] ? b.embed_rows[size_t(i)][0] : 0.0f};
        if (out_row < b.logits_rows.size() && b.logits_rows[out_row] == i) {
          write_logits(s, p, logits + out_row * size_t(vocab));
          ++out_row;
        }
        std::lock_guard<std::mutex> lk(mu_);
        positions_.push_back({b.token_ids[size_t(i)], b.pos_t[size_t(i)], b.pos_h[size_t(i)], b.pos_w[size_t(i)]});
      }
    }
    AG_CHECK(out_row == b.logits_rows.size(), "logits rows out of order");
  }

  std::vector<float> encode_image(const vision_input& im) override {
    if (im.pixel_values.empty() || im.pixel_values[0] < 0.0f) throw std::runtime_error("toy model: bad image");
    std::vector<float> out(size_t(im.n_tokens()) * 4);
    for (int32_t r = 0; r < im.n_tokens(); ++r) out[size_t(r) * 4] = im.pixel_values[0] + 0.25f * float(r);
    return out;
  }

  // GLM-style: text advances all three axes together; an image block is (t, row, col) from its start, and the
  // text after it resumes at start + max(rows, cols).
  prompt_positions compute_positions(const std::vector<int32_t>& prompt,
                                     const std::vector<vision_input>& images) const override {
    prompt_positions out;
    int32_t next = 0;
    size_t k = 0;
    for (size_t i = 0; i < prompt.size();) {
      if (prompt[i] == image_token && k < images.size()) {
        const int32_t gh = images[k].grid_h / 2, gw = images[k].grid_w / 2, n = images[k].n_tokens();
        for (int32_t r = 0; r < n; ++r) {
          out.t.push_back(next);
          out.h.push_back(next + r / gw);
          out.w.push_back(next + r % gw);
        }
        next += std::max(gh, gw);
        i += size_t(n);
        ++k;
      } else {
        out.t.push_back(next);
        out.h.push_back(next);
        out.w.push_back(next);
        ++next;
        ++i;
      }
    }
    out.rope_delta = next - int32_t(prompt.size());
    return out;
  }

  void hold() {
    std::lock_guard<std::mutex> lk(mu_);
    held_ = true;
  }
  void wait_in_forward() {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return in_forward_; });
  }
  void release() {
    std::lock_guard<std::mutex> lk(mu_);
    held_ = false;
    cv_.notify_all();
  }
  struct position { int32_t token, t, h, w; };
  std::vector<position> positions() {
    std::lock_guard<std::mutex> lk(mu_);
    return positions_;
  }

 private:
  struct slot {
    bool valid = false;
    int32_t token = 0;
    int32_t pos = 0;
    float embed = 0.0f;
  };

  // Reads positions [0, p] back through the block table and mixes them into one state.
  void write_logits(const forward_batch::sequence& s, int32_t p, float* out) const {
    uint64_t h = 1469598103934665603ULL;
    for (int32_t q = 0; q <= p; ++q) {
      const slot& sl = slots_[size_t(s.block_table[q / block_size_]) * size_t(block_size_) + size_t(q % block_size_)];
      AG_CHECK(sl.valid, "read an uncomputed KV slot");
      h = (h ^ uint64_t(uint32_t(sl.token))) * 1099511628211ULL;
      h = (h ^ uint64_t(uint32_t(sl.pos))) * 1099511628211ULL;
      h = (h ^ uint64_t(int64_t(std::lround(sl.embed * 1000.0f)))) * 1099511628211ULL;
    }
    for (int32_t v = 0; v < vocab; ++v) out[v] = 3.0f * float(std::sin(double(h % 100003) * 0.001 + v * 1.7));
    out[eos] -= 1.5f;  // eos rarer, so runs are not all one token long
    out[image_token] = out[poison_token] = -100.0f;
  }

  model_info info_;
  int32_t n_blocks_ = 0, block_size_ = 0;
  std::vector<slot> slots_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false, in_forward_ = false;
  int64_t n_forward_ = 0;
  std::vector<position> positions_;
};

}  // namespace autoglm::test

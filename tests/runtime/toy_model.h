// tests/runtime/toy_model.h: a small model (model/model.h) for engine tests. It is not GLM: each token's "K" is
// (marker, token id, M-RoPE position, first embedding value), written into the ENGINE's paged KV tensors at the
// slot its block table names, and the logits of a row are a fixed function of everything read back through the
// block table. So any block-table, prefix-cache, chunking, position or image-row mistake changes the generated
// tokens, and an uncomputed slot read back aborts the test (unless allow_uncomputed_reads()). Each toy stamps
// its slots with its own nonce, so K/V a previous engine left in recycled memory never passes as computed.
// Fault hooks: token `poison_token` makes forward throw; an image whose first pixel is negative makes
// encode_image throw; hold()/release() park the engine thread inside forward, hold_encode()/release_encode() the
// vision worker inside encode_image.
#pragma once

#include <cmath>
#include <condition_variable>
#include <mutex>
#include <stdexcept>

#include "core/error.h"
#include "model/model.h"

namespace autoglm::test {

class toy_model : public model {
 public:
  static constexpr int32_t vocab = 64, image_token = 60, poison_token = 61, eos = 63;
  static constexpr int32_t head_dim = 8;  // 64 bytes of F32 K+V per token
  static constexpr float marker = 1234.5f;

  toy_model() : nonce_(float(next_nonce()++)) {
    info_.architecture = "toy";
    info_.vocab_size = vocab;
    info_.hidden_size = 4;
    info_.n_layers = 1;
    info_.n_kv_heads = 1;
    info_.head_dim = head_dim;
    info_.max_position_embeddings = 512;
    info_.image_token_id = image_token;
    info_.eos_token_ids = {eos};
    info_.has_vision = true;
  }
  const model_info& info() const override { return info_; }
  kv_layout kv_shape() const override { return {1, 1, head_dim}; }
  size_t weight_bytes_per_token() const override { return 0; }

  tensor forward_logits(exec_context&, const forward_batch& b, const std::vector<paged_kv_layer>& kv) const override {
    {
      std::unique_lock<std::mutex> lk(mu_);
      in_forward_ = true;
      cv_.notify_all();
      cv_.wait(lk, [&] { return !held_; });
      in_forward_ = false;
      ++n_forward_;
    }
    AG_CHECK(kv.size() == 1 && kv[0].k.type() == dtype::F32, "the toy model keeps F32 K/V in one layer");
    AG_CHECK(b.pos_t.size() == b.token_ids.size() && b.pos_h.size() == b.token_ids.size(), "ragged batch");
    for (int32_t t : b.token_ids)
      if (t == poison_token) throw std::runtime_error("toy model: poison token");
    // Image rows: the first value of each row's embedding, from the spans.
    std::vector<float> embed(b.token_ids.size(), 0.0f);
    std::vector<bool> from_image(b.token_ids.size(), false);
    for (const embedding_span& s : b.embeddings) {
      AG_CHECK(s.rows.n_dims() == 2 && s.rows.dim(1) == info_.hidden_size && s.rows.type() == dtype::F32, "bad span");
      for (int64_t r = 0; r < s.rows.dim(0); ++r) {
        const size_t i = size_t(s.first_row + r);
        AG_CHECK(i < embed.size() && !from_image[i], "span outside the batch or overlapping");
        embed[i] = reinterpret_cast<const float*>(s.rows.row(r))[0];
        from_image[i] = true;
      }
    }
    const int32_t bs = kv[0].block_size();
    // Host memory is the CPU context's device memory.
    tensor out;
    if (!b.logits_rows.empty()) out = tensor::empty_host(dtype::F32, {int64_t(b.logits_rows.size()), int64_t(vocab)});
    float* logits = out.empty() ? nullptr : out.ptr<float>();
    size_t out_row = 0;
    for (const auto& s : b.sequences) {
      for (int32_t j = 0; j < s.n_tokens; ++j) {
        const int32_t i = s.first_token + j, p = s.n_past + j;
        AG_CHECK(p / bs < s.n_blocks, "block table too short");
        AG_CHECK((b.token_ids[size_t(i)] == image_token) == from_image[size_t(i)], "image row without a span");
        float* k = slot(kv[0], s.block_table[p / bs], p % bs);
        k[0] = marker;
        k[1] = float(b.token_ids[size_t(i)]);
        k[2] = float(b.pos_t[size_t(i)] * 10007 + b.pos_h[size_t(i)] * 101 + b.pos_w[size_t(i)]);
        k[3] = embed[size_t(i)];
        k[4] = nonce_;
        if (out_row < b.logits_rows.size() && b.logits_rows[out_row] == i) {
          write_logits(kv[0], s, p, logits + out_row * size_t(vocab));
          ++out_row;
        }
        std::lock_guard<std::mutex> lk(mu_);
        positions_.push_back({b.token_ids[size_t(i)], b.pos_t[size_t(i)], b.pos_h[size_t(i)], b.pos_w[size_t(i)]});
      }
    }
    AG_CHECK(out_row == b.logits_rows.size(), "logits rows out of order");
    return out;
  }

  tensor encode_image(exec_context&, const vision_input& im) const override {
    {
      std::unique_lock<std::mutex> lk(mu_);
      in_encode_ = true;
      cv_.notify_all();
      cv_.wait(lk, [&] { return !encode_held_; });
      in_encode_ = false;
      ++n_encodes_;
    }
    if (im.pixel_values.empty() || im.pixel_values[0] < 0.0f) throw std::runtime_error("toy model: bad image");
    tensor out = tensor::empty_host(dtype::F32, {im.n_tokens(), 4});
    for (int32_t r = 0; r < im.n_tokens(); ++r) {
      float* row = reinterpret_cast<float*>(out.row(r));
      row[0] = im.pixel_values[0] + 0.25f * float(r);
      row[1] = row[2] = row[3] = 0.0f;
    }
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

  void hold() { set(held_, true); }
  void release() { set(held_, false); }
  void wait_in_forward() { wait_for(in_forward_); }
  void hold_encode() { set(encode_held_, true); }
  void release_encode() { set(encode_held_, false); }
  void wait_in_encode() { wait_for(in_encode_); }
  void allow_uncomputed_reads() { set(lenient_, true); }
  int64_t n_encodes() const {
    std::lock_guard<std::mutex> lk(mu_);
    return n_encodes_;
  }
  struct position { int32_t token, t, h, w; };
  std::vector<position> positions() const {
    std::lock_guard<std::mutex> lk(mu_);
    return positions_;
  }

 private:
  static int32_t& next_nonce() {
    static int32_t n = 1;
    return n;
  }
  static float* slot(const paged_kv_layer& kv, int32_t block, int32_t offset) {
    return reinterpret_cast<float*>(kv.k.row(int64_t(block) * kv.block_size() + offset));
  }

  void set(bool& flag, bool v) {
    std::lock_guard<std::mutex> lk(mu_);
    flag = v;
    cv_.notify_all();
  }
  void wait_for(const bool& flag) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return flag; });
  }

  // Reads positions [0, p] back through the block table and mixes them into one state.
  void write_logits(const paged_kv_layer& kv, const forward_batch::sequence& s, int32_t p, float* out) const {
    const int32_t bs = kv.block_size();
    bool lenient;
    {
      std::lock_guard<std::mutex> lk(mu_);
      lenient = lenient_;
    }
    uint64_t h = 1469598103934665603ULL;
    for (int32_t q = 0; q <= p; ++q) {
      const float* k = slot(kv, s.block_table[q / bs], q % bs);
      if (k[0] != marker || k[4] != nonce_) {
        AG_CHECK(lenient, "read an uncomputed KV slot");
        continue;
      }
      h = (h ^ uint64_t(uint32_t(k[1]))) * 1099511628211ULL;
      h = (h ^ uint64_t(uint32_t(k[2]))) * 1099511628211ULL;
      h = (h ^ uint64_t(int64_t(std::lround(k[3] * 1000.0f)))) * 1099511628211ULL;
    }
    for (int32_t v = 0; v < vocab; ++v) out[v] = 3.0f * float(std::sin(double(h % 100003) * 0.001 + v * 1.7));
    out[eos] -= 1.5f;  // eos rarer, so runs are not all one token long
    out[image_token] = out[poison_token] = -100.0f;
  }

  model_info info_;
  const float nonce_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable bool in_forward_ = false, in_encode_ = false;
  bool held_ = false, encode_held_ = false, lenient_ = false;
  mutable int64_t n_forward_ = 0, n_encodes_ = 0;
  mutable std::vector<position> positions_;
};

}  // namespace autoglm::test

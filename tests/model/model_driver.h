// tests/model/model_driver.h: a unit-test driver for a `model` (model/model.h): one sequence with a private paged
// KV cache (F32 by default, on the context's device; blocks handed out in reverse so the block table matters),
// prefill of a prompt with images in chunks (image rows passed as embedding spans) and token-by-token decode. It
// is what the runtime does for one request, reduced to what the model-level tests need; the engine is the real
// thing.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "model/model.h"
#include "ops/context.h"
#include "ops/ops.h"

namespace autoglm::test {

class sequence_driver {
 public:
  // A cache of ceil(max_tokens / block_size) blocks of K/V (kv_type, on the context's device) for every layer.
  sequence_driver(const model& m, exec_context& ctx, int32_t max_tokens, int32_t block_size = 16,
                  dtype kv_type = dtype::F32)
      : model_(m), ctx_(ctx), block_size_(block_size) {
    const kv_layout kl = m.kv_shape();
    const int32_t n_blocks = (max_tokens + block_size - 1) / block_size;
    for (int32_t l = 0; l < kl.n_layers; ++l) {
      paged_kv_layer layer;
      layer.k = ops::alloc_persistent(ctx, kv_type, {n_blocks, block_size, kl.n_kv_heads, kl.head_dim});
      layer.v = ops::alloc_persistent(ctx, kv_type, {n_blocks, block_size, kl.n_kv_heads, kl.head_dim});
      kv_.push_back(layer);
    }
    for (int32_t i = 0; i < n_blocks; ++i) block_table_.push_back(n_blocks - 1 - i);
  }

  int32_t capacity() const { return int32_t(block_table_.size()) * block_size_; }
  int32_t n_past() const { return n_past_; }

  // Encodes the images (on `vision_ctx`, default this driver's context), then runs the prompt in chunks of at
  // most `chunk` tokens. Returns logits [n_prompt, vocab] when all_logits, else [1, vocab] of the last position.
  std::vector<float> prefill(const std::vector<int32_t>& prompt, const std::vector<vision_input>& images,
                             bool all_logits = false, int32_t chunk = 512, exec_context* vision_ctx = nullptr) {
    const int32_t n = int32_t(prompt.size());
    AG_CHECK(n > 0 && n_past_ + n <= capacity(), "sequence_driver: the prompt does not fit");
    const int32_t vocab = model_.info().vocab_size;
    const prompt_positions pos = model_.compute_positions(prompt, images);

    // Placeholder i of the prompt takes row `row` of image `image` (images in order, rows in order).
    std::vector<tensor> embeds;
    for (const vision_input& img : images) embeds.push_back(model_.encode_image(vision_ctx ? *vision_ctx : ctx_, img));
    struct source { int32_t image = -1, row = 0; };
    std::vector<source> from(static_cast<size_t>(n));
    size_t k = 0;
    int32_t r = 0;
    for (int32_t i = 0; i < n && !images.empty(); ++i) {
      if (prompt[size_t(i)] != model_.info().image_token_id) continue;
      AG_CHECK(k < embeds.size(), "sequence_driver: more placeholders than image rows");
      from[size_t(i)] = {int32_t(k), r};
      if (++r == embeds[k].rows()) {
        ++k;
        r = 0;
      }
    }
    AG_CHECK(k == embeds.size(), "sequence_driver: fewer placeholders than image rows");

    std::vector<float> logits(size_t(all_logits ? n : 1) * size_t(vocab));
    for (int32_t start = 0; start < n; start += chunk) {
      const int32_t m = std::min(chunk, n - start);
      forward_batch b;
      b.token_ids.assign(prompt.begin() + start, prompt.begin() + start + m);
      b.pos_t.assign(pos.t.begin() + start, pos.t.begin() + start + m);
      b.pos_h.assign(pos.h.begin() + start, pos.h.begin() + start + m);
      b.pos_w.assign(pos.w.begin() + start, pos.w.begin() + start + m);
      // Runs of consecutive rows of one image become one span.
      for (int32_t i = 0; i < m;) {
        const source s = from[size_t(start + i)];
        if (s.image < 0) {
          ++i;
          continue;
        }
        int32_t len = 1;
        while (i + len < m && from[size_t(start + i + len)].image == s.image &&
               from[size_t(start + i + len)].row == s.row + len)
          ++len;
        b.embeddings.push_back({i, embeds[size_t(s.image)].rows_view(s.row, len)});
        i += len;
      }
      b.sequences.push_back({0, m, n_past_, block_table_.data(), int32_t(block_table_.size())});
      float* out = logits.data();
      if (all_logits) {
        for (int32_t i = 0; i < m; ++i) b.logits_rows.push_back(i);
        out += size_t(start) * size_t(vocab);
      } else if (start + m == n) {
        b.logits_rows.push_back(m - 1);
      }
      model_.forward(ctx_, b, kv_, out);
      n_past_ += m;
    }
    rope_delta_ = pos.rope_delta;
    return logits;
  }

  // Appends one token; returns its logits [vocab].
  std::vector<float> decode(int32_t token) {
    AG_CHECK(n_past_ < capacity(), "sequence_driver: the context is full");
    forward_batch b;
    const int32_t p = n_past_ + rope_delta_;
    b.token_ids = {token};
    b.pos_t = b.pos_h = b.pos_w = {p};
    b.sequences.push_back({0, 1, n_past_, block_table_.data(), int32_t(block_table_.size())});
    b.logits_rows = {0};
    std::vector<float> logits(size_t(model_.info().vocab_size));
    model_.forward(ctx_, b, kv_, logits.data());
    ++n_past_;
    return logits;
  }

  // Pretends n tokens are cached (their slots hold whatever is there): decode timing without a prefill.
  void fake_context(int32_t n) {
    AG_CHECK(n <= capacity(), "sequence_driver: fake context too long");
    n_past_ = n;
    rope_delta_ = 0;
  }
  void reset() { n_past_ = rope_delta_ = 0; }

 private:
  const model& model_;
  exec_context& ctx_;
  int32_t block_size_;
  std::vector<paged_kv_layer> kv_;
  std::vector<int32_t> block_table_;
  int32_t n_past_ = 0, rope_delta_ = 0;
};

}  // namespace autoglm::test

#include "model/sequence_runner.h"

#include <algorithm>

#include "core/error.h"

namespace autoglm {

sequence_runner::sequence_runner(model_runner& model, int32_t max_tokens, int32_t block_size)
    : model_(model), block_size_(block_size) {
  AG_CHECK(max_tokens > 0 && block_size > 0, "bad sequence_runner geometry");
  const int32_t n_blocks = (max_tokens + block_size - 1) / block_size;
  model_.allocate_kv_cache(n_blocks, block_size);
  block_table_.resize(size_t(n_blocks));
  for (int32_t i = 0; i < n_blocks; ++i) block_table_[size_t(i)] = n_blocks - 1 - i;  // not identity: exercises the table
}

void sequence_runner::reset() {
  n_past_ = 0;
  rope_delta_ = 0;
}

std::vector<float> sequence_runner::prefill(const std::vector<int32_t>& prompt, const std::vector<vision_input>& images,
                                            bool all_logits, int32_t chunk) {
  const int32_t n = int32_t(prompt.size());
  if (n == 0) throw invalid_request("empty prompt");
  if (n_past_ + n > capacity())
    throw invalid_request("prompt of " + std::to_string(n) + " tokens does not fit the context of " + std::to_string(capacity()));
  const int32_t vocab = model_.info().vocab_size;
  const int32_t hidden = model_.info().hidden_size;
  prompt_positions pos = model_.compute_positions(prompt, images);

  // Image embeddings, concatenated in placeholder order: row r replaces the r-th image placeholder.
  std::vector<float> image_rows;
  for (const auto& img : images) {
    std::vector<float> e = model_.encode_image(img);
    image_rows.insert(image_rows.end(), e.begin(), e.end());
  }
  std::vector<const float*> embed(size_t(n), nullptr);
  size_t next_row = 0;
  for (int32_t i = 0; i < n; ++i) {
    if (!images.empty() && prompt[size_t(i)] == model_.info().image_token_id) {
      if ((next_row + 1) * size_t(hidden) > image_rows.size()) throw invalid_request("more image placeholders than image embeddings");
      embed[size_t(i)] = image_rows.data() + next_row * size_t(hidden);
      ++next_row;
    }
  }
  if (next_row * size_t(hidden) != image_rows.size()) throw invalid_request("fewer image placeholders than image embeddings");

  std::vector<float> logits(size_t(all_logits ? n : 1) * size_t(vocab));
  for (int32_t start = 0; start < n; start += chunk) {
    const int32_t m = std::min(chunk, n - start);
    forward_batch b;
    b.token_ids.assign(prompt.begin() + start, prompt.begin() + start + m);
    b.pos_t.assign(pos.t.begin() + start, pos.t.begin() + start + m);
    b.pos_h.assign(pos.h.begin() + start, pos.h.begin() + start + m);
    b.pos_w.assign(pos.w.begin() + start, pos.w.begin() + start + m);
    b.embed_rows.assign(embed.begin() + start, embed.begin() + start + m);
    b.sequences.push_back({0, m, n_past_, block_table_.data(), int32_t(block_table_.size())});
    float* out;
    if (all_logits) {
      for (int32_t i = 0; i < m; ++i) b.logits_rows.push_back(i);
      out = logits.data() + size_t(start) * size_t(vocab);
    } else {
      if (start + m == n) b.logits_rows.push_back(m - 1);
      out = logits.data();
    }
    model_.forward(b, out);
    n_past_ += m;
  }
  rope_delta_ = pos.rope_delta;
  return logits;
}

std::vector<float> sequence_runner::decode(int32_t token) {
  if (n_past_ + 1 > capacity()) throw invalid_request("context is full (" + std::to_string(capacity()) + " tokens)");
  forward_batch b;
  const int32_t p = n_past_ + rope_delta_;
  b.token_ids = {token};
  b.pos_t = {p};
  b.pos_h = {p};
  b.pos_w = {p};
  b.sequences.push_back({0, 1, n_past_, block_table_.data(), int32_t(block_table_.size())});
  b.logits_rows = {0};
  std::vector<float> logits(size_t(model_.info().vocab_size));
  model_.forward(b, logits.data());
  ++n_past_;
  return logits;
}

void sequence_runner::fake_context(int32_t n) {
  if (n > capacity()) throw invalid_request("context " + std::to_string(n) + " exceeds the cache");
  n_past_ = n;
  rope_delta_ = 0;
}

}  // namespace autoglm

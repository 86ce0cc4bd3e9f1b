// model/sequence_runner.h: one sequence driven straight through a model_runner, with its own KV cache:
// prefill (text + images), then token-by-token decode. Used by the CLI's logits/run/bench commands and the
// parity tests; the serving path uses the runtime's scheduler instead.
#pragma once

#include <cstdint>
#include <vector>

#include "model/model_runner.h"

namespace autoglm {

class sequence_runner {
 public:
  // Allocates a private paged KV cache for up to max_tokens tokens.
  sequence_runner(model_runner& model, int32_t max_tokens, int32_t block_size = 16);

  // Forgets the sequence (the cache is reused).
  void reset();
  // Runs the prompt (image placeholders expanded, one per embedding row) in chunks of at most chunk tokens.
  // Returns logits [n_prompt, vocab] when all_logits, else [1, vocab] for the last position.
  std::vector<float> prefill(const std::vector<int32_t>& prompt, const std::vector<vision_input>& images,
                             bool all_logits = false, int32_t chunk = 512);
  // Appends one token and returns its logits [vocab].
  std::vector<float> decode(int32_t token);
  // Pretends n tokens of context are cached (their KV slots hold whatever is there): for timing decode at a
  // given context length without paying for the prefill. Positions continue from n.
  void fake_context(int32_t n);

  int32_t n_past() const { return n_past_; }
  int32_t capacity() const { return int32_t(block_table_.size()) * block_size_; }

 private:
  model_runner& model_;
  int32_t block_size_;
  std::vector<int32_t> block_table_;
  int32_t n_past_ = 0;
  int32_t rope_delta_ = 0;
};

}  // namespace autoglm

// model/model_runner.h: TRANSITIONAL (replaced by model/model.h; never include both in one file).
// the contract between the runtime (scheduler, KV block tables, sampling) and a model
// family's forward pass. The model owns the KV storage; the runtime owns which blocks belong to whom.
//
// KV cache layout: paged. Block b, slot s of layer l holds the key/value of one token:
//   k_pool[l]: [n_blocks, block_size, n_kv_heads, head_dim] (f32 on CPU), likewise v_pool[l].
// A sequence's token at absolute position p (0-based within that sequence) lives in
//   block_table[p / block_size], slot p % block_size.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "autoglm/types.h"

namespace autoglm {

// 3-D M-RoPE positions of a prompt (spec section 3) and the offset decode positions continue from.
struct prompt_positions {
  std::vector<int32_t> t, h, w;  // [n_prompt_tokens] each
  int32_t rope_delta = 0;        // decode token at absolute index p has t = h = w = p + rope_delta
};

// One forward step over a batch of sequences: prefill chunks and decode tokens mixed.
struct forward_batch {
  struct sequence {
    int32_t first_token = 0;                // index of this sequence's first new token in the arrays below
    int32_t n_tokens = 0;                   // new tokens this step (>= 1)
    int32_t n_past = 0;                     // tokens already in the KV cache for this sequence
    const int32_t* block_table = nullptr;   // covers at least n_past + n_tokens positions
    int32_t n_blocks = 0;
  };
  std::vector<int32_t> token_ids;       // [n_tokens]
  std::vector<int32_t> pos_t, pos_h, pos_w;  // [n_tokens]: M-RoPE position of each new token
  std::vector<const float*> embed_rows;  // [n_tokens]: nullptr = look up token_ids[i]; else hidden_size floats
  std::vector<sequence> sequences;
  std::vector<int32_t> logits_rows;     // indices into the new tokens whose logits are wanted, in output order
  int32_t n_tokens() const { return int32_t(token_ids.size()); }
};

class model_runner {
 public:
  virtual ~model_runner() = default;
  virtual const model_info& info() const = 0;

  // (Re)allocates the paged KV cache; forgets all cached content.
  virtual void allocate_kv_cache(int32_t n_blocks, int32_t block_size) = 0;
  // Bytes of KV storage per token (all layers, K and V): sizes the cache from a memory budget.
  virtual size_t kv_bytes_per_token() const = 0;

  // Writes K/V of the new tokens into the cache and fills logits [logits_rows.size(), vocab_size].
  virtual void forward(const forward_batch& batch, float* logits) = 0;

  // Runs the vision tower: returns [image.n_tokens(), hidden_size] row-major embeddings.
  virtual std::vector<float> encode_image(const vision_input& image) = 0;

  // M-RoPE positions for a prompt whose image placeholders are already expanded (one id per embedding row);
  // image_grids[k] is the k-th image's (t, h, w) patch grid.
  virtual prompt_positions compute_positions(const std::vector<int32_t>& prompt,
                                             const std::vector<vision_input>& images) const = 0;
};

}  // namespace autoglm

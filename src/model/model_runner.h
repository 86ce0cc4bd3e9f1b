// model/model_runner.h: the contract between the runtime (scheduler, KV block tables, sampling) and a model
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

namespace autoglm {

struct model_info {
  std::string architecture;          // "Glm4vForConditionalGeneration"
  int32_t vocab_size = 0;            // logits width (embedding rows)
  int32_t hidden_size = 0;
  int32_t n_layers = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t max_position_embeddings = 0;
  int32_t image_token_id = -1;       // placeholder id expanded to one token per image embedding row
  int32_t image_start_token_id = -1;
  int32_t image_end_token_id = -1;
  int32_t video_start_token_id = -1;
  int32_t video_end_token_id = -1;
  std::vector<int32_t> eos_token_ids;  // union of config.json and generation_config.json
  bool has_vision = false;
};

// One preprocessed image as the model's vision tower consumes it.
struct vision_input {
  int32_t grid_t = 1, grid_h = 0, grid_w = 0;  // patch grid before the 2x2 merge
  std::vector<float> pixel_values;             // [grid_t*grid_h*grid_w, patch_dim] (patch_dim = 3*2*14*14)
  uint64_t content_hash = 0;                   // hash of the decoded pixels (cache key)
  int32_t n_tokens(int32_t merge = 2) const { return grid_t * (grid_h / merge) * (grid_w / merge); }
};

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

// model/model.h: the contract between the runtime and a model family (one folder per family under src/model/).
//
// A model is written once over ops (src/ops): its weights are prepared for one device when it is loaded, and it
// holds no per-sequence state. The runtime owns everything that changes per request: the paged KV cache (passed
// in as one paged_kv_layer per decoder layer, in whatever dtype the runtime chose), block tables, positions, the
// image embeddings. forward and encode_image are const and may run at the same time on different threads, each
// with its own exec_context (the engine decodes while its vision worker encodes a new screenshot).
//
// KV layout: block b, slot s of layer l holds the key/value of one token:
//   kv[l].k, kv[l].v: [n_blocks, block_size, n_kv_heads, head_dim].
// A sequence's token at absolute position p lives in block_table[p / block_size], slot p % block_size.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "autoglm/types.h"
#include "core/dtype.h"
#include "core/kernel_registry.h"
#include "core/tensor.h"
#include "ops/context.h"

namespace autoglm {

// 3-D M-RoPE positions of a prompt (spec section 3) and the offset decode positions continue from.
struct prompt_positions {
  std::vector<int32_t> t, h, w;  // [n_prompt_tokens] each
  int32_t rope_delta = 0;        // decode token at absolute index p has t = h = w = p + rope_delta
};

// The KV geometry a model needs; the runtime allocates the cache from it.
struct kv_layout {
  int32_t n_layers = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
};

// Rows of a batch whose input embedding is given (image placeholders) instead of looked up in the token table.
struct embedding_span {
  int32_t first_row = 0;  // index of the first such row among the batch's new tokens
  tensor rows;            // [n, hidden_size] F32 on the forward's device (a view into an image's embedding)
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
  std::vector<int32_t> token_ids;            // [n_tokens]
  std::vector<int32_t> pos_t, pos_h, pos_w;  // [n_tokens]: M-RoPE position of each new token
  std::vector<embedding_span> embeddings;    // image rows, in any order, not overlapping
  std::vector<sequence> sequences;
  std::vector<int32_t> logits_rows;          // indices into the new tokens whose logits are wanted, in output order
  int32_t n_tokens() const { return int32_t(token_ids.size()); }
};

// A forward step's inputs on the device (model-specific), between prepare_step and compute_step.
class prepared_step {
 public:
  virtual ~prepared_step() = default;
};

class model {
 public:
  virtual ~model() = default;
  virtual const model_info& info() const = 0;
  virtual kv_layout kv_shape() const = 0;

  // Writes K/V of the new tokens into `kv` (one entry per decoder layer) and returns the logits
  // [logits_rows.size(), vocab_size] F32 on ctx's device, in ctx's scratch arena (valid until the arena is reset):
  // a GPU engine samples them there, so only token ids cross to the host. Empty when no row was asked for.
  // Named intermediates go to ctx's dump callback.
  virtual tensor forward_logits(exec_context& ctx, const forward_batch& batch,
                                const std::vector<paged_kv_layer>& kv) const = 0;
  // forward_logits in two phases, so the runtime can record the device work of a step as a graph once and replay it
  // (runtime/step_graphs): prepare_step resets ctx's arena and uploads the batch's inputs (host work and copies,
  // never recorded); compute_step only enqueues device work whose kernel arguments depend on nothing but the
  // batch's shape and `context_bucket` (> 0: per-sequence tables sized for that many positions, at least the
  // batch's longest context). nullptr from prepare_step: this model has no two-phase forward.
  virtual std::unique_ptr<prepared_step> prepare_step(exec_context& /*ctx*/, const forward_batch& /*batch*/,
                                                      const std::vector<paged_kv_layer>& /*kv*/,
                                                      int32_t /*context_bucket*/) const {
    return nullptr;
  }
  virtual tensor compute_step(exec_context& ctx, const prepared_step& step,
                              const std::vector<paged_kv_layer>& kv) const;

  // forward_logits with the logits copied to host memory ([logits_rows.size(), vocab_size]; may be null when no
  // row was asked for).
  void forward(exec_context& ctx, const forward_batch& batch, const std::vector<paged_kv_layer>& kv,
               float* logits) const;

  // The vision tower: [image.n_tokens(), hidden_size] F32 embeddings, owned, on ctx's device. Throws
  // autoglm::error for an image the model cannot take (or invalid_request when it has no vision tower).
  virtual tensor encode_image(exec_context& ctx, const vision_input& image) const = 0;

  // M-RoPE positions for a prompt whose image placeholders are already expanded (one id per embedding row).
  virtual prompt_positions compute_positions(const std::vector<int32_t>& prompt,
                                             const std::vector<vision_input>& images) const = 0;

  // Bytes of weights read per decoded token (all layers + lm_head): the decode bandwidth floor.
  virtual size_t weight_bytes_per_token() const = 0;
};

// How the weights are stored once loaded. Default: as the files hold them.
struct model_load_options {
  // Quantize a Hugging Face checkpoint's matrices while loading, with the policy `autoglm quantize --type` uses
  // for its GGUF files (the same bytes): norms, biases and convolutions stay float, rows that are not whole
  // blocks fall back (formats/quantize.h). I8 (per-row scales, no table form) applies to the linear weights only.
  // Not for a directory of GGUF files (already quantized). Empty: as stored.
  std::optional<dtype> quant_type;
  // Overrides by checkpoint name, first match wins ('*' = any run of characters), as `autoglm quantize --keep`.
  std::vector<std::pair<std::string, dtype>> quant_keep;
  // Tensor parallelism: load rank `tp_rank` of `tp_size` (the decoder's part of that rank; the vision tower
  // whole). The forward of such a model needs the group's communicator on its context (runtime/tensor_parallel.h).
  int32_t tp_rank = 0;
  int32_t tp_size = 1;
  // Stack each decoder layer's q/k/v into one linear (one GEMV per layer instead of three). Default: on GPUs; on
  // the CPU the stacked copy would sit in memory beside the mapped file's pages.
  std::optional<bool> fuse_qkv;
};

// Opens a model directory and returns the family its config.json names, with weights prepared for ctx's
// device (memory-mapped on the CPU, or quantized into host memory as `opt` asks). Throws autoglm::error for a
// missing/invalid directory, an unsupported architecture or options the directory cannot take. Registration is
// one line in the table in model_loader.cpp.
std::unique_ptr<model> load_model(const std::string& model_dir, exec_context& ctx, const model_load_options& opt = {});
std::vector<std::string> supported_architectures();

}  // namespace autoglm

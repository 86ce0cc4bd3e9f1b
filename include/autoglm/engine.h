// autoglm/engine.h: the public C++ API of the engine. The server and the CLI use only this (and the chat layer).
//
// An engine owns one model, its paged KV cache and two threads. The engine thread runs the continuous-batching
// loop: admit waiting requests while KV blocks allow, reuse cached prefix blocks, run one forward over prefill
// chunks + decode tokens, sample, deliver events. The vision worker encodes new images beside it (its own
// threads), so a new screenshot never stalls running streams: a request whose images are not cached waits for
// them and then enters the loop. Callbacks run on the engine thread and must return quickly (post the event to
// your own queue).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autoglm/types.h"

namespace autoglm {

class tokenizer;

using event_callback = std::function<void(const generation_event&)>;

// A named intermediate activation (e.g. "layer.3.attn_norm"): host F32 data [rows, cols], valid during the call.
using dump_callback = std::function<void(const std::string& name, const float* data, int64_t rows, int64_t cols)>;

// Element type of the KV cache: F16 and BF16 take half of F32's memory, Q8_0 (GGUF blocks of 32 int8 with an
// f16 scale) a little over a quarter.
enum class kv_cache_type { F32, F16, BF16, Q8_0 };
const char* kv_cache_type_name(kv_cache_type t);  // "f32", "f16", "bf16", "q8_0"
// "f32", "f16", "bf16", "q8_0" (any case); throws invalid_request (param "kv_cache_dtype") on anything else.
kv_cache_type parse_kv_cache_type(const std::string& name);

struct engine_options {
  std::string model_dir;
  // Where the model, its KV cache and the decode and vision contexts run: "cpu" or "cuda:N" (a build with the CUDA
  // backend, on a machine with that device). The threads options below are host threads either way.
  std::string device = "cpu";
  int32_t n_threads = 0;             // compute threads of the decode loop (0 = all cores)
  int32_t n_vision_threads = 0;      // threads of the vision worker (0 = max(1, n_threads / 2))
  int32_t max_num_seqs = 16;         // sequences decoded together
  int32_t max_model_len = 0;         // 0 = min(config max_position_embeddings, what the KV budget allows)
  // Prefill chunk budget per step; 0 = by device: 512 on the CPU, 2048 on a GPU (whose GEMMs need the rows: a
  // 512-row chunk of the 9B model left q/k/v and o_proj in one partial wave of tiles, and every chunk reads all
  // 17.6 GB of weights again).
  int32_t max_batch_tokens = 0;
  int32_t max_waiting = 256;         // bounded waiting queue; submit beyond it is refused
  int32_t kv_block_size = 16;
  size_t kv_cache_bytes = 0;         // 0 = enough for max_num_seqs * max_model_len (bounded)
  kv_cache_type kv_cache_dtype = kv_cache_type::F32;
  // Quantize a Hugging Face checkpoint's weights while loading, as `autoglm quantize --type` stores them in a GGUF
  // file (the same bytes): "q8_0", "q6_k", "q5_k", "q4_k", "q4_0", ... (the GGUF types quantize writes) or "i8"
  // (any case; i8: per-row scales, linear weights only). Empty: as the files hold them. Refused for a directory of
  // GGUF files (already quantized).
  std::string weight_quant;
  // Per-tensor overrides "PATTERN=TYPE" as `autoglm quantize --keep` (PATTERN matches checkpoint names, '*' any
  // run of characters, first match wins; TYPE also f32, f16, bf16), e.g. "lm_head*=q8_0". Needs weight_quant.
  std::vector<std::string> weight_quant_keep;
  bool enable_prefix_caching = true;
  // Tensor parallelism (vLLM's --tensor-parallel-size): the decoder split over this many ranks, one thread per
  // rank, on consecutive devices from `device` (cuda:N .. cuda:N+size-1 through NCCL; on the CPU, ranks sharing the
  // host's cores through an in-process communicator, which exists to test the split). Images are encoded
  // data-parallel, one vision worker per rank. The attention heads, the MLP width and (with more ranks than KV
  // heads) the ranks must divide evenly. 1 = one device.
  int32_t tensor_parallel_size = 1;
  // Called with every named intermediate of every forward and image encode (debugging; slow). It runs on the
  // engine thread and on the vision worker, never at the same time for one context.
  dump_callback dump;
};

struct engine_stats {
  int32_t n_running = 0;
  int32_t n_waiting = 0;               // includes requests waiting for their images
  int64_t n_prompt_tokens_total = 0;
  int64_t n_generated_tokens_total = 0;
  int64_t n_prefix_query_tokens = 0;   // prompt tokens looked up in the prefix cache
  int64_t n_prefix_hit_tokens = 0;     // of those, found cached
  int32_t kv_blocks_total = 0;
  int32_t kv_blocks_used = 0;
  int64_t n_images_encoded = 0;
  int64_t n_image_cache_hits = 0;
  int64_t n_graph_replays = 0;    // decode steps replayed from a recorded CUDA graph (GPU engines)
  int32_t n_vision_waiting = 0;        // requests waiting for the vision worker
  int32_t n_images_encoding = 0;       // images queued for or being encoded by the vision worker (live)
  double vision_encode_ms_total = 0;   // time the vision worker spent encoding
};

class engine {
 public:
  // Loads the model directory (throws autoglm::error with a clear message on bad files) and starts the engine
  // thread and the vision worker.
  static std::unique_ptr<engine> create(const engine_options& options);
  virtual ~engine() = default;

  // Queues a request. Returns its id, or 0 when the waiting queue is full (the caller answers 503).
  // Throws autoglm::error for a request that can never run (prompt longer than the context, bad image).
  virtual uint64_t submit(generation_request request, event_callback on_event) = 0;
  // Stops a request within one step (also while it waits for its images) and frees its KV blocks; its last
  // event has finish CANCELLED.
  virtual void cancel(uint64_t request_id) = 0;
  // Finishes (cancels) everything and joins the engine thread and the vision worker (an image being encoded is
  // finished first).
  virtual void shutdown() = 0;

  virtual engine_stats stats() const = 0;
  virtual const model_info& info() const = 0;
  virtual const tokenizer& get_tokenizer() const = 0;
  virtual int32_t max_model_len() const = 0;
  // Compute threads of the decode loop and of the vision worker, as resolved from the options.
  virtual int32_t n_threads() const = 0;
  virtual int32_t n_vision_threads() const = 0;
  // Bytes of weights one decoded token reads (all layers + lm_head): the decode bandwidth floor.
  virtual size_t weight_bytes_per_token() const = 0;
};

// Throws invalid_request (param "weight_quant" or "weight_quant_keep") when options.weight_quant or an override
// names no known type or is malformed; engine::create makes the same check before loading. For front ends that
// report their options before starting anything (the server loads the model in the background).
void check_weight_quant_options(const engine_options& options);

// Reads <model_dir>/generation_config.json if present (a regular file of bounded size); a malformed file or an
// out-of-range value throws autoglm::error naming the file and key. do_sample false means greedy.
generation_defaults load_generation_defaults(const std::string& model_dir);

// The machine's read-only memory bandwidth in GB/s over n_threads threads (0 = all cores): the ceiling of
// decode at batch 1, which streams the weights once per token. Takes about a second.
double measure_memory_read_bandwidth(int32_t n_threads = 0);

// A GPU's device-to-device copy bandwidth in GB/s, bytes read plus bytes written (the usual "copy bandwidth": a
// kernel that only reads, such as the decode GEMV, can approach it), over 1 GiB; device is "cuda:N". Throws
// autoglm::error when the device cannot run kernels in this build. Takes well under a second.
double measure_device_copy_bandwidth(const std::string& device);

}  // namespace autoglm

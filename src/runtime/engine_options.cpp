// runtime/engine_options.cpp: the engine's option checks and the small public helpers beside the engine: names
// of finish reasons and KV types, the image prefix key, generation_config.json defaults, the bandwidth probe.
#include <algorithm>
#include <chrono>
#include <cctype>
#include <filesystem>
#include <limits>
#include <thread>

#include "core/error.h"
#include "formats/json_file.h"
#include "formats/quantize.h"
#include "kernels/cpu/ceilings.h"
#include "ops/context.h"
#include "ops/ops.h"
#include "runtime/device_budget.h"
#include "runtime/engine_impl.h"

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

const char* kv_cache_type_name(kv_cache_type t) {
  switch (t) {
    case kv_cache_type::F32: return "f32";
    case kv_cache_type::F16: return "f16";
    case kv_cache_type::BF16: return "bf16";
    case kv_cache_type::Q8_0: return "q8_0";
  }
  return "unknown";
}

kv_cache_type parse_kv_cache_type(const std::string& name) {
  std::string s = name;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  for (kv_cache_type t : {kv_cache_type::F32, kv_cache_type::F16, kv_cache_type::BF16, kv_cache_type::Q8_0})
    if (s == kv_cache_type_name(t)) return t;
  throw invalid_request("KV cache type '" + name + "' is not one of f32, f16, bf16, q8_0", "kv_cache_dtype");
}

dtype kv_cache_element_type(kv_cache_type t) {
  switch (t) {
    case kv_cache_type::F32: return dtype::F32;
    case kv_cache_type::F16: return dtype::F16;
    case kv_cache_type::BF16: return dtype::BF16;
    case kv_cache_type::Q8_0: return dtype::Q8_0;
  }
  throw invalid_request("unknown KV cache type", "kv_cache_dtype");
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
  check_range(o.n_vision_threads, 0, k_max_threads_option, "n_vision_threads");
  check_range(o.max_num_seqs, 1, k_max_num_seqs, "max_num_seqs");
  check_range(o.max_model_len, 0, k_max_model_len, "max_model_len");
  check_range(o.max_batch_tokens, 0, k_max_batch_tokens, "max_batch_tokens");
  check_range(o.max_waiting, 1, k_max_waiting, "max_waiting");
  check_range(o.kv_block_size, 1, k_max_kv_block_size, "kv_block_size");
  check_range(o.tensor_parallel_size, 1, 64, "tensor_parallel_size");
  kv_cache_element_type(o.kv_cache_dtype);  // an enum value cast from an unchecked integer
  engine_device(o);                          // "cpu" or "cuda:N" (whether it exists shows when its context starts)
  model_load_options_of(o);                 // a typo in a quantization type fails before the load
}

namespace {
// A weight type by name (any case): for weight_quant a GGUF block type the quantizers produce (the types `autoglm
// quantize --type` writes) or I8; for an override also F32, F16 and BF16.
dtype parse_weight_type(const std::string& name, bool allow_float, const char* param) {
  auto accepted = [&](dtype t) {
    return t == dtype::I8 || (quant::can_quantize(t) && (allow_float || dtype_is_block(t)));
  };
  dtype t;
  if (dtype_from_name(name, t) && accepted(t)) return t;
  std::string list;
  for (size_t i = 0; i < size_t(dtype::COUNT); ++i)
    if (accepted(dtype(i))) list += std::string(list.empty() ? "" : ", ") + dtype_name(dtype(i));
  std::transform(list.begin(), list.end(), list.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  throw invalid_request("weight type '" + name + "' is not one of " + list, param);
}
}  // namespace

void check_weight_quant_options(const engine_options& options) { model_load_options_of(options); }

model_load_options model_load_options_of(const engine_options& o) {
  model_load_options m;
  if (!o.weight_quant.empty()) m.quant_type = parse_weight_type(o.weight_quant, false, "weight_quant");
  for (const std::string& k : o.weight_quant_keep) {
    const size_t eq = k.rfind('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == k.size())
      throw invalid_request("override '" + k + "' must be PATTERN=TYPE, e.g. 'lm_head*=q8_0'",
                            "weight_quant_keep");
    m.quant_keep.emplace_back(k.substr(0, eq), parse_weight_type(k.substr(eq + 1), true, "weight_quant_keep"));
  }
  if (!m.quant_keep.empty() && !m.quant_type)
    throw invalid_request("per-tensor overrides need a quantization type for the other weights (weight_quant, --quant)",
                          "weight_quant_keep");
  return m;
}

double measure_memory_read_bandwidth(int32_t n_threads) {
  if (n_threads <= 0) n_threads = int32_t(std::max(1u, std::thread::hardware_concurrency()));
  // The kernels' own probe (the harness's --perf mode reports against the same number): wide loads on several
  // streams per thread, on threads of its own. A buffer far larger than any last-level cache.
  return cpu::measure_read_bandwidth(n_threads, size_t(512) << 20);
}

double measure_device_copy_bandwidth(const std::string& device_name) {
  const device dev = device::parse(device_name);
  if (const std::string why = ops::device_problem(dev); !why.empty()) throw error(why);
  exec_context ctx(dev, 1);
  const int64_t n = int64_t(1) << 28;  // F32 elements: 1 GiB, far beyond any L2
  const tensor a = ops::alloc_persistent(ctx, dtype::F32, {n});
  tensor b = ops::alloc_persistent(ctx, dtype::F32, {n});
  ops::copy(ctx, a, b);  // first touch
  ops::synchronize(ctx);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 4; ++i) ops::copy(ctx, a, b);
    ops::synchronize(ctx);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 4.0 * 2.0 * double(n) * 4.0 / s / 1e9);
  }
  return best;
}

}  // namespace autoglm

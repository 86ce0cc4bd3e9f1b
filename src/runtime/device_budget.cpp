// runtime/device_budget.cpp: the engine's device and what fits on it (see device_budget.h).
#include "runtime/device_budget.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "ops/ops.h"

namespace autoglm {

namespace {

std::string gib(size_t bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(size_t(1) << 30));
  return buf;
}

}  // namespace

device engine_device(const engine_options& options) {
  try {
    return device::parse(options.device.empty() ? "cpu" : options.device);
  } catch (const invalid_request&) {
    throw;
  } catch (const error& e) {
    throw invalid_request(e.what(), "device");
  }
}

size_t model_weight_file_bytes(const std::string& model_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  size_t total = 0;
  for (fs::directory_iterator it(model_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    const std::string ext = p.extension().string();
    if (ext != ".safetensors" && ext != ".gguf") continue;
    std::error_code ec2;
    if (!fs::is_regular_file(p, ec2)) continue;
    const auto n = fs::file_size(p, ec2);
    if (!ec2) total += size_t(n);
  }
  return total;
}

size_t activation_reserve_bytes(size_t total_bytes) { return std::max(size_t(2) << 30, total_bytes / 25); }

void check_model_fits(const engine_options& options, exec_context& ctx) {
  size_t free_b = 0, total_b = 0;
  if (!ops::memory_info(ctx, free_b, total_b)) return;
  const size_t need = model_weight_file_bytes(options.model_dir);
  const size_t reserve = activation_reserve_bytes(total_b);
  if (need + reserve > free_b)
    throw error("the model in " + options.model_dir + " does not fit on " + ctx.dev().str() + ": its weights need " +
                std::to_string(need) + " bytes (" + gib(need) + ") plus " + gib(reserve) +
                " for activations, the device has " + gib(free_b) + " free of " + gib(total_b) +
                " (use a larger GPU or another device)");
}

size_t fit_kv_budget(exec_context& ctx, size_t bytes, bool explicit_request) {
  size_t free_b = 0, total_b = 0;
  if (!ops::memory_info(ctx, free_b, total_b)) return bytes;
  const size_t reserve = activation_reserve_bytes(total_b);
  const size_t avail = free_b > reserve ? free_b - reserve : 0;
  if (explicit_request && bytes > avail)
    throw error("kv_cache_bytes " + std::to_string(bytes) + " (" + gib(bytes) + ") does not fit on " +
                ctx.dev().str() + ": " + gib(free_b) + " are free after the weights, " + gib(reserve) +
                " stay for activations (use a smaller KV budget, a bf16 KV cache, or fewer/shorter sequences)");
  if (avail == 0)
    throw error("no memory left for the KV cache on " + ctx.dev().str() + ": " + gib(free_b) + " free of " +
                gib(total_b) + " after the weights, " + gib(reserve) + " stay for activations");
  if (bytes > avail) {
    AG_LOG_INFO("engine: KV budget capped to {} by the free memory of {}", gib(avail), ctx.dev().str());
    return avail;
  }
  return bytes;
}

}  // namespace autoglm

// runtime/engine_create.cpp: engine::create, the one place that loads a model and a tokenizer from a directory
// (tests that bring a model of their own call make_engine instead).
#include <algorithm>
#include <filesystem>
#include <thread>

#include "core/error.h"
#include "runtime/device_budget.h"
#include "runtime/engine_impl.h"
#include "runtime/tensor_parallel.h"
#include "tokenizer/tokenizer.h"

namespace autoglm {

namespace {
// The engine around a loaded model, with the directory's tokenizer.
std::unique_ptr<engine> with_tokenizer(const engine_options& options, std::unique_ptr<exec_context> ctx,
                                       std::unique_ptr<model> m);
}  // namespace

std::unique_ptr<engine> engine::create(const engine_options& options) {
  // Options first: a typo must not cost a multi-gigabyte load before it is reported.
  if (options.model_dir.empty()) throw invalid_request("model_dir is empty", "model_dir");
  validate_engine_options(options);
  // The decode context: the model's weights are prepared for its device; the engine keeps it.
  const device dev = engine_device(options);
  const int32_t tp = options.tensor_parallel_size;
  if (tp == 1) {
    auto ctx = std::make_unique<exec_context>(dev, options.n_threads);
    check_model_fits(options, *ctx);  // on a GPU: say what is needed before a long upload fails half-way
    std::unique_ptr<model> m = load_model(options.model_dir, *ctx, model_load_options_of(options));
    return with_tokenizer(options, std::move(ctx), std::move(m));
  }
  // Tensor parallelism: ranks on consecutive devices from `device`; on the CPU they share the host's cores.
  std::vector<device> devs;
  for (int32_t r = 0; r < tp; ++r) devs.push_back(dev.kind == device_kind::CPU ? dev : device{dev.kind, dev.index + r});
  int32_t threads = options.n_threads;  // a GPU rank's host threads
  if (dev.kind == device_kind::CPU) {
    const int32_t cores = threads > 0 ? threads : int32_t(std::max(1u, std::thread::hardware_concurrency()));
    threads = std::max(1, cores / tp);
  }
  auto ctx = std::make_unique<exec_context>(devs[0], threads);
  std::unique_ptr<model> m =
      tensor_parallel_model::load(options.model_dir, *ctx, devs, threads, model_load_options_of(options));
  return with_tokenizer(options, std::move(ctx), std::move(m));
}

namespace {
std::unique_ptr<engine> with_tokenizer(const engine_options& options, std::unique_ptr<exec_context> ctx,
                                       std::unique_ptr<model> m) {
  // A directory without tokenizer.json (a random benchmark checkpoint) still serves token-id requests;
  // get_tokenizer() then says what is missing. One that exists must load.
  std::shared_ptr<const tokenizer> tok;
  const std::filesystem::path tok_file = std::filesystem::path(options.model_dir) / "tokenizer.json";
  std::error_code ec;
  if (std::filesystem::symlink_status(tok_file, ec).type() != std::filesystem::file_type::not_found)
    tok = tokenizer::load(tok_file.string());
  return make_engine(options, std::move(ctx), std::move(m), std::move(tok));
}
}  // namespace

}  // namespace autoglm

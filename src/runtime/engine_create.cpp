// runtime/engine_create.cpp: engine::create, the one place that loads a model and a tokenizer from a directory
// (tests that bring a model of their own call make_engine instead).
#include <filesystem>

#include "core/error.h"
#include "runtime/device_budget.h"
#include "runtime/engine_impl.h"
#include "tokenizer/tokenizer.h"

namespace autoglm {

std::unique_ptr<engine> engine::create(const engine_options& options) {
  // Options first: a typo must not cost a multi-gigabyte load before it is reported.
  if (options.model_dir.empty()) throw invalid_request("model_dir is empty", "model_dir");
  validate_engine_options(options);
  // The decode context: the model's weights are prepared for its device; the engine keeps it.
  auto ctx = std::make_unique<exec_context>(engine_device(options), options.n_threads);
  check_model_fits(options, *ctx);  // on a GPU: say what is needed before a long upload fails half-way
  std::unique_ptr<model> m = load_model(options.model_dir, *ctx, model_load_options_of(options));
  // A directory without tokenizer.json (a random benchmark checkpoint) still serves token-id requests;
  // get_tokenizer() then says what is missing. One that exists must load.
  std::shared_ptr<const tokenizer> tok;
  const std::filesystem::path tok_file = std::filesystem::path(options.model_dir) / "tokenizer.json";
  std::error_code ec;
  if (std::filesystem::symlink_status(tok_file, ec).type() != std::filesystem::file_type::not_found)
    tok = tokenizer::load(tok_file.string());
  return make_engine(options, std::move(ctx), std::move(m), std::move(tok));
}

}  // namespace autoglm

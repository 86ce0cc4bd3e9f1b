// runtime/engine_create.cpp: engine::create, the one place that loads a tokenizer and a model from a directory.
// Kept apart so the rest of the runtime builds and tests before the model factory and tokenizer exist.
#include <type_traits>

#include "core/error.h"
#include "runtime/engine_impl.h"

#if defined(AUTOGLM_HAVE_MODEL) && __has_include("model/model_loader.h")
#include "model/model_loader.h"
#define AUTOGLM_ENGINE_HAS_MODEL 1
#endif
#if defined(AUTOGLM_HAVE_TOKENIZER) && __has_include("tokenizer/tokenizer.h")
#include "tokenizer/tokenizer.h"
#define AUTOGLM_ENGINE_HAS_TOKENIZER 1
#endif

namespace autoglm {

namespace {

#ifdef AUTOGLM_ENGINE_HAS_TOKENIZER
// tokenizer::load may hand back a smart pointer or a value; hold it shared either way.
template <class T>
std::shared_ptr<const tokenizer> share(T&& t) {
  using U = std::decay_t<T>;
  if constexpr (std::is_constructible_v<std::shared_ptr<const tokenizer>, U&&>)
    return std::shared_ptr<const tokenizer>(std::forward<T>(t));
  else
    return std::make_shared<const tokenizer>(std::forward<T>(t));
}
#endif

}  // namespace

std::unique_ptr<engine> engine::create(const engine_options& options) {
  // Options first: a typo must not cost a multi-gigabyte load before it is reported.
  if (options.model_dir.empty()) throw invalid_request("model_dir is empty", "model_dir");
  validate_engine_options(options);
#if defined(AUTOGLM_ENGINE_HAS_MODEL) && defined(AUTOGLM_ENGINE_HAS_TOKENIZER)
  std::shared_ptr<const tokenizer> tok = share(tokenizer::load(options.model_dir));
  std::unique_ptr<model_runner> model = load_model_runner(options.model_dir, options.n_threads);
  return make_engine(options, std::move(model), std::move(tok));
#else
  throw error("engine::create: this build has no model loader or tokenizer (autoglm_model / autoglm_tokenizer "
              "were not built); cannot load " + options.model_dir);
#endif
}

}  // namespace autoglm

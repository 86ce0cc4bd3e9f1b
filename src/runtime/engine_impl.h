// runtime/engine_impl.h: builds the engine around an already loaded model (engine::create loads one from a
// directory; tests that hold a model of their own call this directly). Runtime-internal, not public API.
#pragma once

#include <memory>

#include "autoglm/engine.h"
#include "core/dtype.h"
#include "model/model.h"
#include "ops/context.h"

namespace autoglm {

// Throws invalid_request (param = the option's name) when an option is out of its range; engine::create calls
// it before loading anything, make_engine again.
void validate_engine_options(const engine_options& options);

dtype kv_cache_element_type(kv_cache_type t);

// engine_options.weight_quant / weight_quant_keep as the model loader takes them; throws invalid_request (param
// "weight_quant" or "weight_quant_keep") naming the bad type or pattern.
model_load_options model_load_options_of(const engine_options& options);

// ctx: the decode context the model was loaded for (the engine keeps it; its thread pool is the decode loop's).
// tok may be null (get_tokenizer() then throws). Sizes the KV cache from options, starts the vision worker on a
// context of its own (same device) and the engine thread.
std::unique_ptr<engine> make_engine(const engine_options& options, std::unique_ptr<exec_context> ctx,
                                    std::unique_ptr<model> m, std::shared_ptr<const tokenizer> tok);

// The prefix-cache key of image k's placeholder tokens: its content hash mixed with its patch grid.
uint64_t image_extra_key(const vision_input& image);

}  // namespace autoglm

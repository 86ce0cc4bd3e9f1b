// runtime/engine_impl.h: builds the engine around an already loaded model (engine::create loads one from a
// directory; tests and tools that hold a model_runner call this directly). Runtime-internal, not public API.
#pragma once

#include <memory>

#include "autoglm/engine.h"

namespace autoglm {

// Throws invalid_request (param = the option's name) when an option is out of its range; engine::create calls
// it before loading anything, make_engine again.
void validate_engine_options(const engine_options& options);

// tok may be null (get_tokenizer() then throws). Sizes the KV cache from options and starts the engine thread.
std::unique_ptr<engine> make_engine(const engine_options& options, std::unique_ptr<model_runner> model,
                                    std::shared_ptr<const tokenizer> tok);

// The prefix-cache key of image k's placeholder tokens: its content hash mixed with its patch grid.
uint64_t image_extra_key(const vision_input& image);

}  // namespace autoglm

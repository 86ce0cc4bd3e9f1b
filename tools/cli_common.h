// tools/cli_common.h: helpers shared by the CLI commands: the default (demo) model, token lists, images.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/model_runner.h"

namespace autoglm::cli {

// The bundled demo checkpoint (random weights, real layout).
std::string default_model_dir();
// Resolves -m: empty means the demo model, with a plain notice on stderr.
std::string resolve_model_dir(const std::string& requested);
// "1,2, 3" -> {1, 2, 3}; throws autoglm::error on anything else.
std::vector<int32_t> parse_token_list(const std::string& text);
// Decodes and preprocesses an image file for the model in model_dir (preprocessor_config.json, overrides > 0).
vision_input load_image_input(const std::string& path, const std::string& model_dir, int64_t min_pixels = 0,
                              int64_t max_pixels = 0);
// Replaces each occurrence of image_token_id with images[k].n_tokens() copies, in order (HF processor rule).
std::vector<int32_t> expand_image_placeholders(const std::vector<int32_t>& tokens, int32_t image_token_id,
                                               const std::vector<vision_input>& images);

}  // namespace autoglm::cli

// chat/message_parts.h: validation of OpenAI `messages` and their conversion to the chat template's input,
// with every image decoded and preprocessed (internal to the chat layer).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/chat_session.h"
#include "media/glm4v_preprocess.h"
#include "media/image.h"

namespace autoglm {

struct image_options {
  bool enabled = false;               // the model has a vision tower and an image token
  image_limits limits;
  glm4v_preprocess_config preprocess;
  int32_t merge_size = 2;             // image tokens per image = grid_t * (grid_h/merge) * (grid_w/merge)
};

image_limits make_image_limits(const chat_context_options& options);
glm4v_preprocess_config load_preprocess_config(const chat_context_options& options);

struct converted_messages {
  nlohmann::ordered_json messages;    // what the template sees, keys in the client's order
  std::vector<vision_input> images;   // in the order their placeholders appear in the rendered prompt
};

// Throws invalid_request naming the field (e.g. "messages[1].content[0].image_url") on malformed input.
converted_messages convert_messages(const nlohmann::ordered_json& messages, content_format format,
                                    const std::string& image_placeholder, const image_options& images,
                                    int32_t max_images);

// Decodes and preprocesses one image reference (data URI or bare base64); `param` names it in errors.
vision_input load_image(std::string_view url, const image_options& images, const std::string& param);

}  // namespace autoglm

// chat/message_parts.h: validation of OpenAI `messages` and their conversion to the chat template's input, with
// every image probed from its header first and decoded later, one bounded decode at a time (internal to the chat
// layer).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
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
  bool on_device = false;             // decode only: vision_input::raw (chat_context_options::preprocess_on_device)
};

image_limits make_image_limits(const chat_context_options& options);
glm4v_preprocess_config load_preprocess_config(const chat_context_options& options);

// Bounds how many images are being decoded at once across every request of a chat_context. A decoded image is
// width*height*3 bytes plus resize buffers (an 8000x8000 PNG of 186 KB is 192 MB decoded), so N concurrent
// requests must not mean N decoded images.
class decode_gate {
 public:
  explicit decode_gate(int32_t n_slots);
  // Holds one slot while it lives.
  class slot {
   public:
    explicit slot(decode_gate& g) : g_(&g) {}
    slot(slot&& o) noexcept : g_(o.g_) { o.g_ = nullptr; }
    slot(const slot&) = delete;
    slot& operator=(const slot&) = delete;
    slot& operator=(slot&&) = delete;
    ~slot() {
      if (g_) g_->release();
    }

   private:
    decode_gate* g_;
  };
  slot acquire();  // blocks while all slots are taken
  chat_context::decode_stats stats() const;

 private:
  void release();
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  int32_t n_slots_, n_running_ = 0, peak_ = 0;
};

// An image of the request before any pixel is decoded: its encoded bytes, the size its header declares and the
// patch grid (hence tokens) preprocessing will give it. Everything a request's token budget needs is known here.
struct pending_image {
  std::vector<uint8_t> bytes;  // the encoded file (base64 already decoded)
  image_info info;
  int32_t grid_t = 1, grid_h = 0, grid_w = 0;
  int32_t n_tokens = 0;        // placeholder rows in the prompt
  std::string param;           // names it in errors, e.g. "messages[1].content[0].image_url"
};

struct converted_messages {
  nlohmann::ordered_json messages;    // what the template sees, keys in the client's order
  std::vector<pending_image> images;  // in the order their placeholders appear in the rendered prompt
  int64_t n_image_tokens = 0;         // sum of images[i].n_tokens
};

// Throws invalid_request naming the field (e.g. "messages[1].content[0].image_url") on malformed input. Images
// are only probed (headers, limits, token counts), not decoded; once their tokens pass max_prompt_tokens (> 0)
// the request is refused at once (throw_prompt_too_long).
converted_messages convert_messages(const nlohmann::ordered_json& messages, content_format format,
                                    const std::string& image_placeholder, const image_options& images,
                                    int32_t max_images, int64_t max_prompt_tokens = 0);

// The invalid_request for a prompt over max_prompt_tokens, worded like the engine's own context check
// (runtime/engine.cpp); the exact length is not known since counting stopped at the limit.
[[noreturn]] void throw_prompt_too_long(int64_t limit, const std::string& detail, const std::string& param);

// An image reference (data URI or bare base64) -> its bytes and header size, checked against the limits (the
// byte limit before base64 is decoded); `param` names it in errors.
pending_image probe_image_reference(std::string_view url, const image_options& images, const std::string& param);

// Decodes and preprocesses one probed image while holding a slot of `gate`; releases the decoded pixels and the
// file bytes before returning (only the patch rows stay). A decoded size other than the probed one is an error.
vision_input decode_pending_image(pending_image& image, const image_options& images, decode_gate& gate);

}  // namespace autoglm

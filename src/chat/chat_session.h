// chat/chat_session.h: OpenAI-style requests -> engine requests, shared by the server and the CLI.
//
// chat_context is built once per model directory (tokenizer, chat template, image preprocessing config and
// limits, special token ids) and is immutable afterwards: prepare_* may be called from many threads at once.
//
// prepare_chat: validate `messages` and probe each image's header (size limits; tokens from smart_resize of the
// declared size) -> check the images' tokens against max_prompt_tokens -> render the chat template -> tokenize
// (special tokens recognised, no post-processor; stops past max_prompt_tokens) -> decode + preprocess the images
// one at a time, at most max_concurrent_image_decodes at once process-wide -> expand each `<|image|>` into one
// placeholder per image embedding row (grid_t * grid_h/2 * grid_w/2, spec section 5) -> generation_request.
// So a request over the context is refused before any image is decoded.
// Malformed input throws autoglm::invalid_request naming the field, e.g. "messages[2].content[0].image_url".
//
// Key order: what reaches the template (messages, tools, chat_template_kwargs) is nlohmann::ordered_json, so
// `tools|tojson` lists schema keys in the order the client sent them, as HF and vLLM do. nlohmann::json sorts
// object keys: the overloads taking it still work but can only pass on the sorted order.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "autoglm/engine.h"

namespace autoglm {

class tokenizer;
class chat_template;

// How message content reaches the template (vLLM --chat-template-content-format).
enum class content_format {
  OPENAI,  // parts stay a list: {"type":"image"} / {"type":"text","text":...} (HF apply_chat_template)
  STRING,  // vLLM "string": content flattened to "\n".join(image placeholders..., "\n".join(texts))
           // which is what Open-AutoGLM's deployment uses (spec section 9)
};

struct chat_context_options {
  std::string model_dir;                     // tokenizer.json, tokenizer_config.json / chat_template.jinja,
                                             // preprocessor_config.json
  std::string tokenizer_path;                // default: model_dir/tokenizer.json
  std::optional<std::string> chat_template;  // template source overriding the model's
  int64_t min_pixels = 0, max_pixels = 0;    // bounds on 2*h*w after resize; 0 = preprocessor_config.json
  int64_t max_image_bytes = 32 << 20;        // encoded file size limit (after base64)
  int32_t max_image_side = 16384;            // decoded image width/height limit
  int64_t max_image_pixels = 64'000'000;     // decoded image width*height limit
  int32_t max_concurrent_image_decodes = 0;  // images decoded at once over all requests; 0 = half the cores
                                             // (at least 1)
  std::optional<model_info> info;            // special ids; default: looked up in the tokenizer
  // Images leave the host decoded but not preprocessed (vision_input::raw): the vision tower's device resizes,
  // normalizes and lays out the patches itself (ops::image_patches; GPU backends). Set for a GPU engine.
  bool preprocess_on_device = false;
};

struct chat_options {
  bool add_generation_prompt = true;
  std::optional<bool> enable_thinking;               // passed to the template when set
  nlohmann::ordered_json chat_template_kwargs = nlohmann::ordered_json::object();  // merged into the context
  nlohmann::ordered_json tools;                      // null or the OpenAI tools array
  content_format format = content_format::OPENAI;
  int32_t max_images = 0;                            // 0 = no limit (vLLM --limit-mm-per-prompt)
  // Most tokens the prompt may have, images' placeholder rows included; 0 = no limit. Checked before any image
  // is decoded (token counts from the image headers) and while tokenizing (which stops at the limit), so an
  // oversized request costs little. The server sets it from the model's context length.
  int32_t max_prompt_tokens = 0;
};

struct prepared_prompt {
  generation_request request;  // prompt ids (placeholders expanded) + images; sampling left default
  std::string prompt_text;     // the rendered template (empty for token-array completions)
  int32_t n_prompt_tokens = 0;
  int32_t n_images = 0;
  int32_t n_image_tokens = 0;  // placeholder rows in the prompt, all images together
};

struct completion_options {
  bool add_special_tokens = true;  // apply the tokenizer.json post-processor ([gMASK]<sop>), HF/vLLM default
  int32_t max_prompt_tokens = 0;   // as in chat_options: 0 = no limit; tokenizing stops once it is exceeded
};

class chat_context {
 public:
  // Loads everything from options.model_dir; throws autoglm::error naming the bad file.
  static std::unique_ptr<chat_context> load(const chat_context_options& options);
  // Same, but borrows a tokenizer that outlives the context (e.g. engine::get_tokenizer()).
  static std::unique_ptr<chat_context> load(const chat_context_options& options, const tokenizer& shared);
  ~chat_context();

  prepared_prompt prepare_chat(const nlohmann::ordered_json& messages, const chat_options& options) const;
  prepared_prompt prepare_chat(const nlohmann::json& messages, const chat_options& options) const;
  // /v1/completions: `prompt` is a string, an array of token ids, or a one-element array of either.
  prepared_prompt prepare_completion(const nlohmann::json& prompt, const completion_options& options = {}) const;

  // Image decodes: the bound (max_concurrent_image_decodes), how many run now, the most that ever ran at once.
  struct decode_stats {
    int32_t limit = 0, running = 0, peak = 0;
  };
  decode_stats image_decode_stats() const;

  const tokenizer& get_tokenizer() const { return *tok_; }
  const model_info& info() const { return info_; }
  // The template's text form of one image: "<|begin_of_image|><|image|><|end_of_image|>".
  const std::string& image_placeholder() const { return image_placeholder_; }

 private:
  struct impl;
  chat_context();
  static std::unique_ptr<chat_context> load_impl(const chat_context_options& options,
                                                 std::unique_ptr<tokenizer> owned, const tokenizer* shared);

  std::unique_ptr<impl> impl_;
  std::unique_ptr<tokenizer> owned_tok_;
  const tokenizer* tok_ = nullptr;
  model_info info_;
  std::string image_placeholder_;
};

// The deployment guide's `extra_body.image`: attaches the image (a data URI or bare base64) to the last user
// message, with `query` as its text when given; appends a user message when there is none. `messages` must
// be an array (else invalid_request on "messages").
void apply_extra_image(nlohmann::json& messages, std::string_view image, const std::optional<std::string>& query);
void apply_extra_image(nlohmann::ordered_json& messages, std::string_view image,
                       const std::optional<std::string>& query);

}  // namespace autoglm

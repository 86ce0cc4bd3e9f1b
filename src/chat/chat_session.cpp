// chat/chat_session.cpp: chat_context loading and prepare_chat / prepare_completion (see chat_session.h).
#include "chat/chat_session.h"

#include <algorithm>
#include <filesystem>
#include <thread>

#include "chat/message_parts.h"
#include "core/error.h"
#include "template/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace autoglm {

using nlohmann::json;

struct chat_context::impl {
  std::unique_ptr<chat_template> tmpl;
  image_options images;
  std::unique_ptr<decode_gate> decodes;
  int32_t max_token_id = 0;             // exclusive bound for client-sent token ids
};

namespace {

int32_t lookup(const tokenizer& tok, std::string_view name) { return tok.token_to_id(name).value_or(-1); }

int32_t default_decode_slots() {
  const unsigned n = std::thread::hardware_concurrency();
  return std::max(1, int32_t(n / 2));
}

}  // namespace

chat_context::chat_context() : impl_(std::make_unique<impl>()) {}
chat_context::~chat_context() = default;

std::unique_ptr<chat_context> chat_context::load(const chat_context_options& options) {
  std::string path = options.tokenizer_path.empty()
                         ? (std::filesystem::path(options.model_dir) / "tokenizer.json").string()
                         : options.tokenizer_path;
  std::unique_ptr<tokenizer> tok = tokenizer::load(path);
  return load_impl(options, std::move(tok), nullptr);
}

std::unique_ptr<chat_context> chat_context::load(const chat_context_options& options, const tokenizer& shared) {
  return load_impl(options, nullptr, &shared);
}

std::unique_ptr<chat_context> chat_context::load_impl(const chat_context_options& options,
                                                      std::unique_ptr<tokenizer> owned, const tokenizer* shared) {
  std::unique_ptr<chat_context> ctx(new chat_context());
  ctx->owned_tok_ = std::move(owned);
  ctx->tok_ = ctx->owned_tok_ ? ctx->owned_tok_.get() : shared;
  AG_CHECK(ctx->tok_ != nullptr, "chat_context needs a tokenizer");
  const tokenizer& tok = *ctx->tok_;

  std::optional<std::string> source = options.chat_template;
  if (!source) source = chat_template::load_source_from_model_dir(options.model_dir);
  if (!source) {
    throw error(options.model_dir + ": no chat template (looked for chat_template in tokenizer_config.json, "
                "chat_template.jinja and chat_template.json)");
  }
  ctx->impl_->tmpl = std::make_unique<chat_template>(*source);

  if (options.info) {
    ctx->info_ = *options.info;
  } else {
    ctx->info_.vocab_size = tok.vocab_size();
    ctx->info_.image_token_id = lookup(tok, "<|image|>");
    ctx->info_.image_start_token_id = lookup(tok, "<|begin_of_image|>");
    ctx->info_.image_end_token_id = lookup(tok, "<|end_of_image|>");
    ctx->info_.video_start_token_id = lookup(tok, "<|begin_of_video|>");
    ctx->info_.video_end_token_id = lookup(tok, "<|end_of_video|>");
    ctx->info_.has_vision = ctx->info_.image_token_id >= 0;
  }
  ctx->image_placeholder_ = "<|begin_of_image|><|image|><|end_of_image|>";
  if (ctx->info_.image_token_id >= 0) {
    ctx->image_placeholder_ = tok.id_to_token(ctx->info_.image_start_token_id) +
                              tok.id_to_token(ctx->info_.image_token_id) +
                              tok.id_to_token(ctx->info_.image_end_token_id);
  }

  image_options& img = ctx->impl_->images;
  img.limits = make_image_limits(options);
  if (ctx->info_.has_vision) {
    img.preprocess = load_preprocess_config(options);
    img.merge_size = img.preprocess.merge_size;
  }
  img.enabled = ctx->info_.has_vision;
  img.on_device = options.preprocess_on_device;
  ctx->impl_->decodes = std::make_unique<decode_gate>(
      options.max_concurrent_image_decodes > 0 ? options.max_concurrent_image_decodes : default_decode_slots());

  ctx->impl_->max_token_id = std::max(tok.vocab_size(), ctx->info_.vocab_size);
  return ctx;
}

prepared_prompt chat_context::prepare_chat(const json& messages, const chat_options& options) const {
  return prepare_chat(nlohmann::ordered_json(messages), options);
}

prepared_prompt chat_context::prepare_chat(const nlohmann::ordered_json& messages, const chat_options& options) const {
  // Refuses the request as soon as the images' rows alone pass the limit: before the template runs, before any
  // pixel is decoded, and without probing the images after the one that passed it.
  const int64_t limit = options.max_prompt_tokens;
  converted_messages conv = convert_messages(messages, options.format, image_placeholder_, impl_->images,
                                             options.max_images, limit);
  const int64_t n_images = int64_t(conv.images.size());

  nlohmann::ordered_json context = nlohmann::ordered_json::object();
  if (!options.chat_template_kwargs.is_null()) {
    if (!options.chat_template_kwargs.is_object()) {
      throw invalid_request("chat_template_kwargs must be an object", "chat_template_kwargs");
    }
    context = options.chat_template_kwargs;
  }
  context["messages"] = std::move(conv.messages);
  context["add_generation_prompt"] = options.add_generation_prompt;
  if (!options.tools.is_null()) {
    if (!options.tools.is_array()) throw invalid_request("tools must be an array", "tools");
    context["tools"] = options.tools;
  }
  if (options.enable_thinking) context["enable_thinking"] = *options.enable_thinking;

  prepared_prompt out;
  try {
    out.prompt_text = impl_->tmpl->render(context);
  } catch (const invalid_request&) {
    throw;
  } catch (const error& e) {
    // raise_exception() in a template reports a request the model cannot take (e.g. bad role order).
    throw invalid_request(std::string("chat template: ") + e.what(), "messages");
  }
  context = nullptr;

  // Each image is one <|image|> id in the text and becomes n_tokens rows: the text may have
  // limit - sum(n_tokens - 1) ids.
  std::vector<int32_t> ids;
  if (limit > 0) {
    const size_t text_limit = size_t(limit - conv.n_image_tokens + n_images);
    bounded_encoding enc = tok_->encode_bounded(out.prompt_text, text_limit, /*parse_special=*/true);
    if (enc.over_limit) {
      throw_prompt_too_long(limit,
                            n_images ? " (" + std::to_string(conv.n_image_tokens) + " of them for its " +
                                           std::to_string(n_images) + " images)"
                                     : std::string(),
                            "messages");
    }
    ids = std::move(enc.ids);
  } else {
    ids = tok_->encode(out.prompt_text, /*parse_special=*/true);
  }
  int32_t n_placeholders = 0;
  for (int32_t id : ids) n_placeholders += id == info_.image_token_id;
  if (n_placeholders != int32_t(conv.images.size())) {
    throw invalid_request("the rendered prompt has " + std::to_string(n_placeholders) +
                              " image placeholders but the messages carry " + std::to_string(conv.images.size()) +
                              " images (is \"" + tok_->id_to_token(info_.image_token_id) +
                              "\" written in a text part?)",
                          "messages");
  }

  // Only now, with the whole request known to fit, are pixels decoded: one image at a time per request, and at
  // most max_concurrent_image_decodes over all requests.
  std::vector<vision_input> images;
  images.reserve(conv.images.size());
  for (pending_image& p : conv.images) images.push_back(decode_pending_image(p, impl_->images, *impl_->decodes));

  std::vector<int32_t>& prompt = out.request.prompt;
  prompt.reserve(ids.size() + size_t(conv.n_image_tokens - n_images));
  size_t k = 0;
  for (int32_t id : ids) {
    if (id != info_.image_token_id) {
      prompt.push_back(id);
      continue;
    }
    int32_t n = images[k++].n_tokens(impl_->images.merge_size);
    prompt.insert(prompt.end(), size_t(n), id);
    out.n_image_tokens += n;
  }
  out.n_images = int32_t(images.size());
  out.request.images = std::move(images);
  out.n_prompt_tokens = int32_t(prompt.size());
  return out;
}

prepared_prompt chat_context::prepare_completion(const json& prompt, const completion_options& options) const {
  prepared_prompt out;
  const json* p = &prompt;
  // A one-element list is the same prompt; several prompts in one request are a batch we do not take.
  if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) p = &(*p)[0];
  const int64_t limit = options.max_prompt_tokens;
  if (p->is_string()) {
    out.prompt_text = p->get<std::string>();
    if (limit > 0) {
      bounded_encoding enc = options.add_special_tokens
                                 ? tok_->encode_with_post_processor_bounded(out.prompt_text, size_t(limit), true)
                                 : tok_->encode_bounded(out.prompt_text, size_t(limit), true);
      if (enc.over_limit) throw_prompt_too_long(limit, "", "prompt");
      out.request.prompt = std::move(enc.ids);
    } else {
      out.request.prompt = options.add_special_tokens ? tok_->encode_with_post_processor(out.prompt_text, true)
                                                      : tok_->encode(out.prompt_text, true);
    }
  } else if (p->is_array()) {
    if (limit > 0 && int64_t(p->size()) > limit) throw_prompt_too_long(limit, "", "prompt");
    if (p->empty()) throw invalid_request("prompt is empty", "prompt");
    for (size_t i = 0; i < p->size(); ++i) {
      const json& v = (*p)[i];
      if (v.is_string() || v.is_array()) {
        throw invalid_request("batched prompts are not supported: send one prompt per request", "prompt");
      }
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= impl_->max_token_id) {
        throw invalid_request("prompt[" + std::to_string(i) + "] is not a token id in [0, " +
                                  std::to_string(impl_->max_token_id) + ")",
                              "prompt");
      }
      out.request.prompt.push_back(v.get<int32_t>());
    }
  } else {
    throw invalid_request("prompt must be a string or an array of token ids", "prompt");
  }
  for (int32_t id : out.request.prompt) {
    if (id == info_.image_token_id) {
      throw invalid_request("prompt contains the image placeholder token; images are only accepted by "
                            "/v1/chat/completions",
                            "prompt");
    }
  }
  if (out.request.prompt.empty()) throw invalid_request("prompt is empty", "prompt");
  out.n_prompt_tokens = int32_t(out.request.prompt.size());
  return out;
}

chat_context::decode_stats chat_context::image_decode_stats() const { return impl_->decodes->stats(); }

}  // namespace autoglm

// chat/message_parts.cpp: OpenAI messages -> template messages + probed images, the bounded image decoder and
// the decode gate (see message_parts.h).
#include "chat/message_parts.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"

namespace autoglm {

// Request JSON as the client sent it: ordered_json keeps object keys in insertion order (see chat_session.h).
using json = nlohmann::ordered_json;

namespace {

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

size_t count_occurrences(std::string_view text, std::string_view what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string_view::npos; pos = text.find(what, pos + what.size())) ++n;
  return n;
}

// The URL of an image_url part: {"image_url": {"url": "..."}} or the shorthand {"image_url": "..."}.
std::string image_url_of(const json& part, const std::string& param) {
  if (!part.contains("image_url")) throw invalid_request("image_url part without \"image_url\"", param);
  const json& v = part["image_url"];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("url") && v["url"].is_string()) return v["url"].get<std::string>();
  throw invalid_request("image_url must be a string or an object with a string \"url\"", param + ".image_url");
}

}  // namespace

image_limits make_image_limits(const chat_context_options& options) {
  image_limits limits;
  limits.max_file_bytes = size_t(options.max_image_bytes);
  limits.max_side = options.max_image_side;
  limits.max_pixels = options.max_image_pixels;
  return limits;
}

glm4v_preprocess_config load_preprocess_config(const chat_context_options& options) {
  glm4v_preprocess_config cfg = glm4v_preprocess_config::load(options.model_dir);
  if (options.min_pixels > 0) cfg.min_pixels = options.min_pixels;
  if (options.max_pixels > 0) cfg.max_pixels = options.max_pixels;
  return cfg;
}

decode_gate::decode_gate(int32_t n_slots) : n_slots_(std::max(1, n_slots)) {}

decode_gate::slot decode_gate::acquire() {
  std::unique_lock lock(mutex_);
  cv_.wait(lock, [&] { return n_running_ < n_slots_; });
  ++n_running_;
  peak_ = std::max(peak_, n_running_);
  return slot(*this);
}

void decode_gate::release() {
  {
    std::lock_guard lock(mutex_);
    --n_running_;
  }
  cv_.notify_one();
}

chat_context::decode_stats decode_gate::stats() const {
  std::lock_guard lock(mutex_);
  return {n_slots_, n_running_, peak_};
}

pending_image probe_image_reference(std::string_view url, const image_options& images, const std::string& param) {
  if (!images.enabled) throw invalid_request("this model does not accept images", param);
  if (starts_with_nocase(url, "http://") || starts_with_nocase(url, "https://")) {
    throw invalid_request("remote image URLs are not fetched; send the image inline as a data URI "
                          "(data:image/png;base64,...)",
                          param);
  }
  if (starts_with_nocase(url, "file:")) {
    throw invalid_request("local file image URLs are not allowed; send the image inline as a data URI", param);
  }
  pending_image out;
  out.param = param;
  try {
    out.bytes = decode_image_reference(url, images.limits.max_file_bytes);
    out.info = probe_image(out.bytes.data(), out.bytes.size(), images.limits);
    // The grid glm4v_preprocess will produce (smart_resize of the declared size): the token count, exactly.
    const glm4v_pixels grid = glm4v_image_grid(out.info.height, out.info.width, images.preprocess);
    out.grid_t = grid.grid_t;
    out.grid_h = grid.grid_h;
    out.grid_w = grid.grid_w;
    vision_input shape;
    shape.grid_t = grid.grid_t, shape.grid_h = grid.grid_h, shape.grid_w = grid.grid_w;
    out.n_tokens = shape.n_tokens(images.merge_size);
  } catch (const invalid_request&) {
    throw;
  } catch (const error& e) {
    throw invalid_request(std::string("invalid image: ") + e.what(), param);
  }
  return out;
}

vision_input decode_pending_image(pending_image& image, const image_options& images, decode_gate& gate) {
  vision_input out;
  try {
    decode_gate::slot hold = gate.acquire();
    {
      // The decoded RGB lives only in this scope: what stays is the patch rows, or (on_device) the RGB itself.
      image_rgb8 img = decode_image(image.bytes.data(), image.bytes.size(), image.info, images.limits);
      std::vector<uint8_t>().swap(image.bytes);
      const uint64_t hash = hash_image(img);
      out = glm4v_vision_input(std::move(img), images.preprocess, images.on_device, hash);
    }
    // Same size in, same smart_resize: the token count charged before decoding is the one the prompt gets.
    if (out.grid_t != image.grid_t || out.grid_h != image.grid_h || out.grid_w != image.grid_w)
      throw error("preprocessing gave a " + std::to_string(out.grid_h) + "x" + std::to_string(out.grid_w) +
                  " patch grid, not the " + std::to_string(image.grid_h) + "x" + std::to_string(image.grid_w) +
                  " its header implied");
  } catch (const invalid_request&) {
    throw;
  } catch (const error& e) {
    throw invalid_request(std::string("invalid image: ") + e.what(), image.param);
  }
  return out;
}

void throw_prompt_too_long(int64_t limit, const std::string& detail, const std::string& param) {
  throw invalid_request("the prompt has more than " + std::to_string(limit) + " tokens" + detail +
                            "; this model accepts at most " + std::to_string(limit) +
                            " prompt tokens (its context must also hold at least one generated token)",
                        param);
}

converted_messages convert_messages(const json& messages, content_format format,
                                    const std::string& image_placeholder, const image_options& images,
                                    int32_t max_images, int64_t max_prompt_tokens) {
  if (!messages.is_array()) throw invalid_request("messages must be an array", "messages");
  if (messages.empty()) throw invalid_request("messages must not be empty", "messages");

  converted_messages out;
  out.messages = json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    std::string mp = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) throw invalid_request(mp + " must be an object", mp);
    if (!m.contains("role") || !m["role"].is_string()) {
      throw invalid_request(mp + ".role is required and must be a string", mp + ".role");
    }
    std::string role = m["role"].get<std::string>();
    if (role == "developer") role = "system";  // OpenAI's newer name for the system role
    if (role != "system" && role != "user" && role != "assistant" && role != "tool") {
      throw invalid_request(mp + ".role '" + role + "' is not one of system, user, assistant, tool", mp + ".role");
    }

    json tm = json::object();
    // Keys keep the client's order; content is converted below into the slot it holds here.
    for (auto it = m.begin(); it != m.end(); ++it) tm[it.key()] = it.key() == "content" ? json() : it.value();
    tm["role"] = role;

    std::string cp = mp + ".content";
    const json* content = m.contains("content") ? &m["content"] : nullptr;
    if (!content || content->is_null()) {
      if (role != "assistant") throw invalid_request(cp + " is required for role '" + role + "'", cp);
      tm["content"] = "";
    } else if (content->is_string()) {
      tm["content"] = *content;
    } else if (content->is_array()) {
      json parts = json::array();
      std::vector<std::string> texts;
      size_t n_message_images = 0;
      for (size_t j = 0; j < content->size(); ++j) {
        const json& part = (*content)[j];
        std::string pp = cp + "[" + std::to_string(j) + "]";
        if (!part.is_object() || !part.contains("type") || !part["type"].is_string()) {
          throw invalid_request(pp + " must be an object with a string \"type\"", pp);
        }
        std::string type = part["type"].get<std::string>();
        if (type == "text") {
          if (!part.contains("text") || !part["text"].is_string()) {
            throw invalid_request(pp + ".text must be a string", pp + ".text");
          }
          texts.push_back(part["text"].get<std::string>());
          parts.push_back({{"type", "text"}, {"text", part["text"]}});
        } else if (type == "image_url") {
          std::string url = image_url_of(part, pp);
          if (max_images > 0 && int32_t(out.images.size()) >= max_images) {
            throw invalid_request("at most " + std::to_string(max_images) + " images are accepted per request",
                                  pp + ".image_url");
          }
          out.images.push_back(probe_image_reference(url, images, pp + ".image_url"));
          out.n_image_tokens += out.images.back().n_tokens;
          if (max_prompt_tokens > 0 && out.n_image_tokens > max_prompt_tokens) {
            throw_prompt_too_long(max_prompt_tokens,
                                  " (its images alone take at least " + std::to_string(out.n_image_tokens) + ")",
                                  "messages");
          }
          ++n_message_images;
          parts.push_back({{"type", "image"}});
        } else if (type == "input_audio") {
          // Callers with a speech model replace these by their transcripts first (chat/audio_parts.h).
          throw invalid_request("input_audio parts need a speech recognition model (autoglm serve --asr-model DIR)",
                                pp + ".type");
        } else if (type == "audio_url") {
          throw invalid_request("audio_url parts are not supported; send the audio inline as an input_audio part",
                                pp + ".type");
        } else if (type == "video_url" || type == "video") {
          throw invalid_request("video input is not supported yet", pp);
        } else {
          throw invalid_request(pp + ".type '" + type + "' is not supported (use text or image_url)", pp + ".type");
        }
      }
      if (format == content_format::OPENAI) {
        tm["content"] = std::move(parts);
      } else {
        // vLLM "string" format: texts joined by "\n", missing image placeholders prepended, joined by "\n".
        std::string text;
        for (size_t t = 0; t < texts.size(); ++t) text += (t ? "\n" : "") + texts[t];
        size_t present = count_occurrences(text, image_placeholder);
        size_t missing = n_message_images > present ? n_message_images - present : 0;
        std::string flat;
        for (size_t k = 0; k < missing; ++k) flat += image_placeholder + "\n";
        tm["content"] = flat + text;
      }
    } else {
      throw invalid_request(cp + " must be a string or an array of content parts", cp);
    }
    out.messages.push_back(std::move(tm));
  }
  return out;
}

namespace {

template <class J>
void apply_extra_image_to(J& messages, std::string_view image, const std::optional<std::string>& query) {
  using json = J;
  if (!messages.is_array()) throw invalid_request("messages must be an array", "messages");
  json image_part = {{"type", "image_url"}, {"image_url", {{"url", std::string(image)}}}};
  json* target = nullptr;
  for (size_t i = messages.size(); i-- > 0;) {
    if (messages[i].is_object() && messages[i].value("role", "") == "user") {
      target = &messages[i];
      break;
    }
  }
  if (!target) {
    messages.push_back({{"role", "user"}, {"content", json::array()}});
    target = &messages.back();
  }
  json& content = (*target)["content"];
  json parts = json::array();
  parts.push_back(std::move(image_part));
  if (content.is_string()) {
    if (!content.template get<std::string>().empty()) parts.push_back({{"type", "text"}, {"text", content}});
  } else if (content.is_array()) {
    for (const json& p : content) parts.push_back(p);
  }
  if (query) parts.push_back({{"type", "text"}, {"text", *query}});
  content = std::move(parts);
}

}  // namespace

void apply_extra_image(nlohmann::json& messages, std::string_view image, const std::optional<std::string>& query) {
  apply_extra_image_to(messages, image, query);
}

void apply_extra_image(nlohmann::ordered_json& messages, std::string_view image,
                       const std::optional<std::string>& query) {
  apply_extra_image_to(messages, image, query);
}

}  // namespace autoglm

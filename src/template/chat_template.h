// template/chat_template.h: renders a model's own Jinja chat template (HF apply_chat_template semantics:
// trim_blocks + lstrip_blocks, raise_exception, tojson as json.dumps(ensure_ascii=False)), within the bounds of
// template_limits (limits.h): a hostile template or context fails with an autoglm::error, never a crash or a hang.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "template/limits.h"

namespace autoglm {

namespace jinja {
struct template_program;
}

// What one render spent against its template_limits (for tests and measurements of headroom).
struct template_usage {
  int64_t steps = 0;
  size_t bytes = 0;  // strings and list/dict items built (max_total_bytes)
};

class chat_template {
 public:
  // Parses; throws autoglm::error on a syntax error, an unsupported construct, a source larger than
  // limits.max_source_bytes or nesting deeper than limits.max_nesting. Renders use the same limits.
  explicit chat_template(std::string source, const template_limits& limits = {});
  ~chat_template();
  chat_template(chat_template&&) noexcept;
  chat_template& operator=(chat_template&&) noexcept;

  // Reads chat_template.jinja from a model directory, else chat_template.json {"chat_template": ...} (processor
  // format), else tokenizer_config.json "chat_template" (a string, or a list of {name, template} where "default"
  // is used); nullopt if none has one. Files are read as regular files of bounded size (chat_template_file_bytes,
  // tokenizer_config_file_bytes) and JSON with formats/json_limits.h.
  static std::optional<std::string> load_source_from_model_dir(const std::string& dir);

  // context: messages, add_generation_prompt, tools, bos_token, ... plus chat_template_kwargs merged in.
  // Prefer the ordered_json overload where key order matters (tojson of tools keeps insertion order there;
  // nlohmann::json sorts object keys).
  std::string render(const nlohmann::json& context) const;
  std::string render(const nlohmann::ordered_json& context) const;
  std::string render(const nlohmann::ordered_json& context, template_usage* usage) const;

  const std::string& source() const { return source_; }
  const template_limits& limits() const;

  // Largest chat_template.jinja / chat_template.json read: the template itself is capped at max_source_bytes
  // (1 MiB); its JSON form may escape every character. tokenizer_config.json also lists every added token
  // (1.2 MB for gemma3), so it gets more room.
  static constexpr uint64_t chat_template_file_bytes = 8u << 20;
  static constexpr uint64_t tokenizer_config_file_bytes = 64u << 20;

 private:
  std::string source_;
  std::shared_ptr<const jinja::template_program> program_;
};

}  // namespace autoglm

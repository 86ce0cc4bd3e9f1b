// jinja/chat_template.h: renders a model's own Jinja chat template (HF apply_chat_template semantics:
// trim_blocks + lstrip_blocks, raise_exception, tojson as json.dumps(ensure_ascii=False)).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace autoglm {

namespace jinja {
struct template_program;
}

class chat_template {
 public:
  explicit chat_template(std::string source);  // parses; throws autoglm::error on syntax error / unsupported construct
  ~chat_template();
  chat_template(chat_template&&) noexcept;
  chat_template& operator=(chat_template&&) noexcept;

  // Reads chat_template.jinja from a model directory, else chat_template.json {"chat_template": ...} (processor
  // format), else tokenizer_config.json "chat_template" (a string, or a list of {name, template} where "default"
  // is used); nullopt if none has one.
  static std::optional<std::string> load_source_from_model_dir(const std::string& dir);

  // context: messages, add_generation_prompt, tools, bos_token, ... plus chat_template_kwargs merged in.
  // Prefer the ordered_json overload where key order matters (tojson of tools keeps insertion order there;
  // nlohmann::json sorts object keys).
  std::string render(const nlohmann::json& context) const;
  std::string render(const nlohmann::ordered_json& context) const;

  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::shared_ptr<const jinja::template_program> program_;
};

}  // namespace autoglm

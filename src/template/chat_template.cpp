// template/chat_template.cpp: the public chat_template API over the lexer, parser and interpreter.
#include "template/chat_template.h"

#include <filesystem>

#include "core/error.h"
#include "core/file_io.h"
#include "formats/json_limits.h"
#include "template/interpreter.h"
#include "template/parser.h"

namespace autoglm {

namespace jinja {
struct template_program {
  template_limits limits;
  block body;
};
}  // namespace jinja

chat_template::chat_template(std::string source, const template_limits& limits) : source_(std::move(source)) {
  if (source_.size() > limits.max_source_bytes)
    throw autoglm::error("chat template: " + std::to_string(source_.size()) + " bytes, more than the limit of " +
                         std::to_string(limits.max_source_bytes));
  auto program = std::make_shared<jinja::template_program>();
  program->limits = limits;
  program->body = jinja::parse(jinja::lex(source_, jinja::lex_options{}), limits.max_nesting);
  program_ = std::move(program);
}

chat_template::~chat_template() = default;
chat_template::chat_template(chat_template&&) noexcept = default;
chat_template& chat_template::operator=(chat_template&&) noexcept = default;

const template_limits& chat_template::limits() const { return program_->limits; }

static bool present(const std::filesystem::path& p) {
  std::error_code ec;  // an unreadable directory is reported by the read that follows, not thrown here
  return std::filesystem::exists(p, ec);
}

// The JSON files beside a template: one object, a few levels deep; tokenizer_config.json can list ~10^5 tokens.
static nlohmann::json read_json(const std::filesystem::path& p, uint64_t max_bytes) {
  return read_json_file_bounded(p.string(), max_bytes, json_limits{/*max_depth=*/32, /*max_values=*/8'000'000});
}

std::optional<std::string> chat_template::load_source_from_model_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  fs::path jinja_path = fs::path(dir) / "chat_template.jinja";
  if (present(jinja_path)) return read_regular_file(jinja_path.string(), template_limits{}.max_source_bytes);
  // Processors (transformers >= 4.43) save {"chat_template": "..."} to chat_template.json.
  fs::path processor_path = fs::path(dir) / "chat_template.json";
  if (present(processor_path)) {
    nlohmann::json j = read_json(processor_path, chat_template_file_bytes);
    if (j.is_object() && j.contains("chat_template") && j["chat_template"].is_string()) return j["chat_template"].get<std::string>();
    throw autoglm::error(processor_path.string() + ": expected {\"chat_template\": \"...\"}");
  }
  fs::path config_path = fs::path(dir) / "tokenizer_config.json";
  if (!present(config_path)) return std::nullopt;
  nlohmann::json config = read_json(config_path, tokenizer_config_file_bytes);
  if (!config.is_object() || !config.contains("chat_template") || config["chat_template"].is_null()) return std::nullopt;
  const auto& t = config["chat_template"];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array()) {
    for (const auto& entry : t)
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") && entry["template"].is_string())
        return entry["template"].get<std::string>();
    throw autoglm::error(config_path.string() + ": chat_template list has no entry named \"default\"");
  }
  throw autoglm::error(config_path.string() + ": \"chat_template\" must be a string or a list of {name, template}");
}

template <class J>
static std::string render_with(const jinja::template_program& program, const J& context, template_usage* usage = nullptr) {
  if (!context.is_object()) throw autoglm::error("chat template context must be a JSON object");
  jinja::interpreter in(program.limits);
  auto root = std::make_shared<jinja::scope>();
  in.install_globals(*root);
  for (auto it = context.begin(); it != context.end(); ++it)
    root->set(it.key(), jinja::value::from_json(it.value(), program.limits.max_nesting));
  std::string out = in.render(program.body, root);
  if (usage) *usage = template_usage{in.spend().steps_used(), in.spend().bytes_used()};
  return out;
}

std::string chat_template::render(const nlohmann::json& context) const { return render_with(*program_, context); }
std::string chat_template::render(const nlohmann::ordered_json& context) const { return render_with(*program_, context); }
std::string chat_template::render(const nlohmann::ordered_json& context, template_usage* usage) const {
  return render_with(*program_, context, usage);
}

}  // namespace autoglm

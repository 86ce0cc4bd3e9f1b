// jinja/chat_template.cpp: the public chat_template API over the lexer, parser and interpreter.
#include "tokenizer/jinja/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "tokenizer/jinja/interpreter.h"
#include "tokenizer/jinja/parser.h"

namespace autoglm {

namespace jinja {
struct template_program {
  block body;
};
}  // namespace jinja

chat_template::chat_template(std::string source) : source_(std::move(source)) {
  auto program = std::make_shared<jinja::template_program>();
  program->body = jinja::parse(jinja::lex(source_, jinja::lex_options{}));
  program_ = std::move(program);
}

chat_template::~chat_template() = default;
chat_template::chat_template(chat_template&&) noexcept = default;
chat_template& chat_template::operator=(chat_template&&) noexcept = default;

static std::optional<std::string> read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return std::nullopt;
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::optional<std::string> chat_template::load_source_from_model_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  fs::path jinja_path = fs::path(dir) / "chat_template.jinja";
  if (fs::is_regular_file(jinja_path)) {
    auto text = read_file(jinja_path);
    if (!text) throw autoglm::error("cannot read " + jinja_path.string());
    return text;
  }
  // Processors (transformers >= 4.43) save {"chat_template": "..."} to chat_template.json.
  fs::path processor_path = fs::path(dir) / "chat_template.json";
  if (fs::is_regular_file(processor_path)) {
    auto text = read_file(processor_path);
    if (!text) throw autoglm::error("cannot read " + processor_path.string());
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(*text);
    } catch (const nlohmann::json::exception& e) {
      throw autoglm::error(processor_path.string() + ": invalid JSON: " + e.what());
    }
    if (j.is_object() && j.contains("chat_template") && j["chat_template"].is_string()) return j["chat_template"].get<std::string>();
    throw autoglm::error(processor_path.string() + ": expected {\"chat_template\": \"...\"}");
  }
  fs::path config_path = fs::path(dir) / "tokenizer_config.json";
  if (!fs::is_regular_file(config_path)) return std::nullopt;
  auto text = read_file(config_path);
  if (!text) throw autoglm::error("cannot read " + config_path.string());
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(*text);
  } catch (const nlohmann::json::exception& e) {
    throw autoglm::error(config_path.string() + ": invalid JSON: " + e.what());
  }
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
static std::string render_with(const jinja::template_program& program, const J& context) {
  if (!context.is_object()) throw autoglm::error("chat template context must be a JSON object");
  jinja::interpreter in;
  auto root = std::make_shared<jinja::scope>();
  in.install_globals(*root);
  for (auto it = context.begin(); it != context.end(); ++it) root->set(it.key(), jinja::value::from_json(it.value()));
  return in.render(program.body, root);
}

std::string chat_template::render(const nlohmann::json& context) const { return render_with(*program_, context); }
std::string chat_template::render(const nlohmann::ordered_json& context) const { return render_with(*program_, context); }

}  // namespace autoglm

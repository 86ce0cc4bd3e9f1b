// tools/cmd_template.cpp: `autoglm template --template FILE_OR_MODEL_DIR` renders a chat template with the
// JSON context read from stdin (messages, add_generation_prompt, tools, bos_token, kwargs...) and writes the
// exact rendered bytes to stdout (no newline added). Used by the npm parity tests against @huggingface/jinja.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "command.h"
#include "core/error.h"
#include "tokenizer/jinja/chat_template.h"

namespace {

int run_template(int argc, char** argv) {
  CLI::App app{"Render a Jinja chat template with a JSON context from stdin"};
  std::string template_path;
  std::string kwargs_text;
  app.add_option("--template", template_path, "a .jinja file, or a model directory (chat_template.jinja / tokenizer_config.json)")
      ->required();
  app.add_option("--kwargs", kwargs_text, "JSON object merged into the context (chat_template_kwargs)");
  CLI11_PARSE(app, argc, argv);

  // Read stdin before anything can fail, so a writer never sees a closed pipe.
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  std::string source;
  if (std::filesystem::is_directory(template_path)) {
    auto loaded = autoglm::chat_template::load_source_from_model_dir(template_path);
    if (!loaded) throw autoglm::error(template_path + ": no chat_template.jinja and no \"chat_template\" in tokenizer_config.json");
    source = std::move(*loaded);
  } else {
    std::ifstream f(template_path, std::ios::binary);
    if (!f) throw autoglm::error("cannot read template file " + template_path);
    source.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  autoglm::chat_template tmpl(std::move(source));

  nlohmann::ordered_json context;
  try {
    context = input.empty() ? nlohmann::ordered_json::object() : nlohmann::ordered_json::parse(input);
  } catch (const nlohmann::json::exception& e) {
    throw autoglm::error(std::string("stdin: invalid JSON context: ") + e.what());
  }
  if (!kwargs_text.empty()) {
    nlohmann::ordered_json kwargs;
    try {
      kwargs = nlohmann::ordered_json::parse(kwargs_text);
    } catch (const nlohmann::json::exception& e) {
      throw autoglm::error(std::string("--kwargs: invalid JSON: ") + e.what());
    }
    if (!kwargs.is_object()) throw autoglm::error("--kwargs must be a JSON object");
    for (auto it = kwargs.begin(); it != kwargs.end(); ++it) context[it.key()] = it.value();
  }
  std::string out = tmpl.render(context);
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  return 0;
}

}  // namespace

AUTOGLM_COMMAND("template", "render a chat template (JSON context on stdin)", run_template);

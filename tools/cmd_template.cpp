// tools/cmd_template.cpp: `autoglm template --template FILE_OR_MODEL_DIR` renders a chat template with the
// JSON context read from stdin (messages, add_generation_prompt, tools, bos_token, kwargs...) and writes the
// exact rendered bytes to stdout (no newline added). Used by the npm parity tests against @huggingface/jinja.
// Inputs are bounded like the server's: the template file by template_limits::max_source_bytes, the context by
// stdin_limit_bytes and formats/json_limits.h, the render by template_limits.
#include <cstdio>
#include <filesystem>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "command.h"
#include "core/error.h"
#include "core/file_io.h"
#include "formats/json_limits.h"
#include "template/chat_template.h"

namespace {

// The server's default request body limit: no context a request can carry is larger.
constexpr size_t stdin_limit_bytes = 64u << 20;

std::string read_stdin() {
  std::string input;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), stdin)) > 0) {
    if (input.size() + n > stdin_limit_bytes)
      throw autoglm::error("stdin: the JSON context is larger than the limit of " + std::to_string(stdin_limit_bytes) + " bytes");
    input.append(buf, n);
  }
  return input;
}

int run_template(int argc, char** argv) {
  CLI::App app{"Render a Jinja chat template with a JSON context from stdin"};
  std::string template_path;
  std::string kwargs_text;
  app.add_option("--template", template_path, "a .jinja file, or a model directory (chat_template.jinja / tokenizer_config.json)")
      ->required();
  app.add_option("--kwargs", kwargs_text, "JSON object merged into the context (chat_template_kwargs)");
  bool print_usage = false;
  app.add_flag("--usage", print_usage, "print what the render spent against the template limits to stderr, as JSON");
  CLI11_PARSE(app, argc, argv);

  // Read stdin before anything can fail, so a writer never sees a closed pipe.
  std::string input = read_stdin();
  std::string source;
  if (std::filesystem::is_directory(template_path)) {
    auto loaded = autoglm::chat_template::load_source_from_model_dir(template_path);
    if (!loaded) throw autoglm::error(template_path + ": no chat_template.jinja and no \"chat_template\" in tokenizer_config.json");
    source = std::move(*loaded);
  } else {
    source = autoglm::read_regular_file(template_path, autoglm::template_limits{}.max_source_bytes);
  }
  autoglm::chat_template tmpl(std::move(source));

  nlohmann::ordered_json context;
  try {
    context = input.empty() ? nlohmann::ordered_json::object() : autoglm::parse_ordered_json(input);
  } catch (const autoglm::json_parse_error& e) {
    throw autoglm::error(std::string("stdin: invalid JSON context: ") + e.what());
  }
  if (!kwargs_text.empty()) {
    nlohmann::ordered_json kwargs;
    try {
      kwargs = autoglm::parse_ordered_json(kwargs_text);
    } catch (const autoglm::json_parse_error& e) {
      throw autoglm::error(std::string("--kwargs: invalid JSON: ") + e.what());
    }
    if (!kwargs.is_object()) throw autoglm::error("--kwargs must be a JSON object");
    for (auto it = kwargs.begin(); it != kwargs.end(); ++it) context[it.key()] = it.value();
  }
  autoglm::template_usage usage;
  std::string out = tmpl.render(context, &usage);
  if (print_usage) {
    const auto& l = tmpl.limits();
    nlohmann::ordered_json u = {{"steps", usage.steps}, {"max_steps", l.max_steps},
                                {"bytes", usage.bytes}, {"max_total_bytes", l.max_total_bytes},
                                {"output_bytes", out.size()}, {"max_output_bytes", l.max_output_bytes}};
    std::fprintf(stderr, "%s\n", u.dump().c_str());
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  return 0;
}

}  // namespace

AUTOGLM_COMMAND("template", "render a chat template (JSON context on stdin)", run_template);

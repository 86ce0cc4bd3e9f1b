// model/model_loader.cpp: the table of model families and the directory checks before one is built.
#include "model/model_loader.h"

#include <filesystem>
#include <functional>

#include "core/error.h"
#include "core/thread_pool.h"
#include "formats/json_file.h"
#include "model/glm4v/glm4v_model.h"

namespace autoglm {

namespace {

struct family {
  const char* architecture;
  std::function<std::unique_ptr<model_runner>(const std::string&)> create;
};

const std::vector<family>& families() {
  static const std::vector<family> table = {
      {"Glm4vForConditionalGeneration", [](const std::string& d) { return std::make_unique<glm4v::glm4v_model>(d); }},
  };
  return table;
}

}  // namespace

std::vector<std::string> supported_architectures() {
  std::vector<std::string> out;
  for (auto& f : families()) out.push_back(f.architecture);
  return out;
}

std::unique_ptr<model_runner> load_model_runner(const std::string& model_dir, int32_t n_threads) {
  if (!std::filesystem::is_directory(model_dir)) throw error(model_dir + ": model directory not found");
  if (n_threads < 0 || n_threads > k_max_threads)
    throw error("threads must be between 0 (all cores) and " + std::to_string(k_max_threads) + ", got " +
                std::to_string(n_threads));
  if (n_threads > 0) set_default_threads(n_threads);
  const nlohmann::json cfg = read_json_file(model_dir + "/config.json");
  std::string arch;
  if (cfg.is_object() && cfg.contains("architectures") && cfg["architectures"].is_array() &&
      !cfg["architectures"].empty() && cfg["architectures"][0].is_string())
    arch = cfg["architectures"][0].get<std::string>();
  for (auto& f : families())
    if (arch == f.architecture) return f.create(model_dir);
  std::string known;
  for (auto& a : supported_architectures()) known += (known.empty() ? "" : ", ") + a;
  throw error(model_dir + "/config.json: architecture '" + arch + "' is not supported (supported: " + known + ")");
}

}  // namespace autoglm

// model/model_runner_loader.cpp: TRANSITIONAL: the old model_runner entry point (model_loader.h), kept until the
// runtime and tools run on model/model.h; delete with model_runner.h, model_loader.h and the glm4v_model classes.
// It names its one architecture itself rather than calling model_loader.cpp: that would link the new model
// classes (model.h's forward_batch, a different type under the same name) into binaries of the old path.
#include <filesystem>

#include "core/error.h"
#include "core/thread_pool.h"
#include "formats/json_file.h"
#include "model/glm4v/glm4v_model.h"
#include "model/model_loader.h"

namespace autoglm {

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
  if (arch == "Glm4vForConditionalGeneration") return std::make_unique<glm4v::glm4v_model>(model_dir);
  throw error(model_dir + "/config.json: architecture '" + arch +
              "' is not supported (supported: Glm4vForConditionalGeneration)");
}

}  // namespace autoglm

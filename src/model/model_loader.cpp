// model/model_loader.cpp: the table of model families (one line each) and the directory checks before one is
// built (load_model, model/model.h).
#include <filesystem>
#include <functional>

#include "core/error.h"
#include "formats/json_file.h"
#include "model/glm4v/glm4v.h"
#include "model/model.h"
#include "ops/ops.h"

namespace autoglm {

namespace {

struct family {
  const char* architecture;
  std::function<std::unique_ptr<model>(const std::string& dir, exec_context& ctx, const model_load_options& opt)> load;
};

const std::vector<family>& families() {
  static const std::vector<family> table = {
      {"Glm4vForConditionalGeneration",
       [](const std::string& d, exec_context& ctx, const model_load_options& opt) {
         return glm4v::conditional_generation::load(d, ctx, opt);
       }},
  };
  return table;
}

}  // namespace

std::vector<std::string> supported_architectures() {
  std::vector<std::string> out;
  for (auto& f : families()) out.push_back(f.architecture);
  return out;
}

void model::forward(exec_context& ctx, const forward_batch& batch, const std::vector<paged_kv_layer>& kv,
                    float* logits) const {
  const tensor out = forward_logits(ctx, batch, kv);
  if (out.empty()) return;
  AG_CHECK(logits != nullptr, "forward: logits rows were asked for but no host buffer was given");
  ops::to_host(ctx, out, logits, out.n_bytes());
}

tensor model::compute_step(exec_context&, const prepared_step&, const std::vector<paged_kv_layer>&) const {
  throw error(info().architecture + ": no two-phase forward (prepare_step returned nothing)");
}

std::unique_ptr<model> load_model(const std::string& model_dir, exec_context& ctx, const model_load_options& opt) {
  if (!std::filesystem::is_directory(model_dir)) throw error(model_dir + ": model directory not found");
  const nlohmann::json cfg = read_json_file(model_dir + "/config.json");
  std::string arch;
  if (cfg.is_object() && cfg.contains("architectures") && cfg["architectures"].is_array() &&
      !cfg["architectures"].empty() && cfg["architectures"][0].is_string())
    arch = cfg["architectures"][0].get<std::string>();
  for (auto& f : families())
    if (arch == f.architecture) return f.load(model_dir, ctx, opt);
  std::string known;
  for (auto& a : supported_architectures()) known += (known.empty() ? "" : ", ") + a;
  throw error(model_dir + "/config.json: architecture '" + arch + "' is not supported (supported: " + known + ")");
}

}  // namespace autoglm

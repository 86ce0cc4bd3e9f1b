// runtime/generation_defaults.cpp: load_generation_defaults (autoglm/engine.h): a model's generation_config.json
// as vLLM and transformers read it, range-checked. A file of its own: it needs only the bounded model-file reader,
// so the server's parser tests can link it without the engine (tests/sanitize).
#include <algorithm>
#include <filesystem>
#include <limits>
#include <optional>

#include "autoglm/engine.h"
#include "core/error.h"
#include "formats/json_file.h"

namespace autoglm {

generation_defaults load_generation_defaults(const std::string& model_dir) {
  generation_defaults d;
  const std::string path = (std::filesystem::path(model_dir) / "generation_config.json").string();
  // The model-file reader (formats/json_file.h), as config.json is read: a regular file of at most 1 MiB with
  // bounded nesting (a FIFO would block the load; the real file is a few hundred bytes).
  std::optional<nlohmann::json> file = read_json_file_if_exists(path);
  if (!file) return d;
  const nlohmann::json& g = *file;
  if (!g.is_object()) throw error(path + ": not a JSON object");
  // Each value is checked against the range the sampler accepts: a bad file fails the load naming the key,
  // instead of reaching requests as an out-of-range default.
  auto num = [&](const char* key, double lo, double hi) -> std::optional<double> {
    auto it = g.find(key);
    if (it == g.end() || it->is_null()) return std::nullopt;
    if (!it->is_number()) throw error(path + ": '" + key + "' must be a number, got " + it->dump());
    double v = it->get<double>();
    if (!(v >= lo && v <= hi))
      throw error(path + ": '" + key + "' is " + it->dump() + ", outside [" + nlohmann::json(lo).dump() + ", " +
                  nlohmann::json(hi).dump() + "]");
    return v;
  };
  const double int_max = std::numeric_limits<int32_t>::max();
  if (auto v = num("temperature", 0.0, 100.0)) d.temperature = float(*v);
  const double tiny = std::numeric_limits<double>::min();  // top_p and repetition_penalty must be > 0
  if (auto v = num("top_p", tiny, 1.0)) d.top_p = float(*v);
  if (auto v = num("top_k", -1.0, int_max)) d.top_k = std::max(0, int32_t(*v));  // -1 and 0: off
  if (auto v = num("min_p", 0.0, 1.0)) d.min_p = float(*v);
  if (auto v = num("repetition_penalty", tiny, 100.0)) d.repetition_penalty = float(*v);
  if (auto v = num("max_new_tokens", 1.0, int_max)) d.max_new_tokens = int32_t(*v);
  // do_sample false means greedy in transformers, whatever temperature says.
  auto ds = g.find("do_sample");
  if (ds != g.end() && ds->is_boolean() && !ds->get<bool>()) d.temperature = 0.0f;
  return d;
}

}  // namespace autoglm

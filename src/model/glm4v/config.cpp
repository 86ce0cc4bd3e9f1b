#include "model/glm4v/config.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "formats/json_file.h"

namespace autoglm::glm4v {

using json = nlohmann::json;

namespace {

void add_ids(const json& j, const char* key, std::vector<int32_t>& out, const std::string& file) {
  if (!j.contains(key) || j[key].is_null()) return;
  const json& v = j[key];
  auto add = [&](const json& x) {
    if (!x.is_number_integer()) throw error(file + ": '" + key + "' must be an integer or a list of integers");
    int32_t id = x.get<int32_t>();
    if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  };
  if (v.is_array()) {
    for (const json& x : v) add(x);
  } else {
    add(v);
  }
}

int32_t positive(const json& j, const char* key, const std::string& file) {
  int64_t v = json_int(j, key, file);
  if (v <= 0 || v > (int64_t(1) << 30)) throw error(file + ": '" + key + "' must be a positive integer, got " + std::to_string(v));
  return int32_t(v);
}

// Reads the rope settings from either transformers v4 (`rope_theta`, `rope_scaling`) or v5 (`rope_parameters`).
void read_rope(const json& t, text_config& c, const std::string& file) {
  const json* params = nullptr;
  if (t.contains("rope_parameters") && t["rope_parameters"].is_object()) params = &t["rope_parameters"];
  else if (t.contains("rope_scaling") && t["rope_scaling"].is_object()) params = &t["rope_scaling"];
  c.rope_theta = float(json_number_or(t, "rope_theta", 10000.0, file));
  c.partial_rotary_factor = float(json_number_or(t, "partial_rotary_factor", 0.5, file));
  if (params) {
    c.rope_theta = float(json_number_or(*params, "rope_theta", c.rope_theta, file));
    c.partial_rotary_factor = float(json_number_or(*params, "partial_rotary_factor", c.partial_rotary_factor, file));
    std::string type = params->value("rope_type", params->value("type", std::string("default")));
    if (type != "default" && type != "mrope")
      throw error(file + ": rope type '" + type + "' is not supported (GLM-4.1V uses the default M-RoPE)");
  }
  c.rotary_dim = int32_t(std::lround(c.head_dim * c.partial_rotary_factor));
  if (c.rotary_dim <= 0 || c.rotary_dim % 2 || c.rotary_dim > c.head_dim)
    throw error(file + ": partial_rotary_factor " + std::to_string(c.partial_rotary_factor) + " gives an invalid rotary dimension");
  const json* section = nullptr;
  if (params && params->contains("mrope_section")) section = &(*params)["mrope_section"];
  if (!section) throw error(file + ": missing 'mrope_section' (in rope_parameters or rope_scaling)");
  if (!section->is_array() || section->size() != 3) throw error(file + ": 'mrope_section' must be a list of 3 integers");
  int32_t sum = 0;
  for (int i = 0; i < 3; ++i) {
    if (!(*section)[size_t(i)].is_number_integer()) throw error(file + ": 'mrope_section' must be a list of 3 integers");
    c.mrope_section[size_t(i)] = (*section)[size_t(i)].get<int32_t>();
    if (c.mrope_section[size_t(i)] < 0) throw error(file + ": 'mrope_section' entries must be >= 0");
    sum += c.mrope_section[size_t(i)];
  }
  if (sum != c.rotary_dim / 2)
    throw error(file + ": 'mrope_section' sums to " + std::to_string(sum) + " but the rotary dimension has " +
                std::to_string(c.rotary_dim / 2) + " frequency pairs");
}

}  // namespace

config config::load(const std::string& model_dir) {
  const std::string file = model_dir + "/config.json";
  json j = read_json_file(file);
  config c;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    c.architecture = j["architectures"][0].get<std::string>();
  if (!j.contains("text_config") || !j["text_config"].is_object())
    throw error(file + ": missing object 'text_config' (is this a GLM-4.1V checkpoint?)");
  const json& t = j["text_config"];
  const std::string tfile = file + " text_config";
  auto& tc = c.text;
  tc.vocab_size = positive(t, "vocab_size", tfile);
  tc.hidden_size = positive(t, "hidden_size", tfile);
  tc.intermediate_size = positive(t, "intermediate_size", tfile);
  tc.n_layers = positive(t, "num_hidden_layers", tfile);
  tc.n_heads = positive(t, "num_attention_heads", tfile);
  tc.n_kv_heads = t.contains("num_key_value_heads") ? positive(t, "num_key_value_heads", tfile) : tc.n_heads;
  if (tc.n_heads % tc.n_kv_heads) throw error(tfile + ": num_attention_heads must be a multiple of num_key_value_heads");
  tc.head_dim = t.contains("head_dim") && !t["head_dim"].is_null() ? positive(t, "head_dim", tfile) : tc.hidden_size / tc.n_heads;
  tc.rms_norm_eps = float(json_number_or(t, "rms_norm_eps", 1e-5, tfile));
  tc.max_position_embeddings = int32_t(json_int_or(t, "max_position_embeddings", 32768, tfile));
  tc.attention_bias = t.value("attention_bias", true);
  std::string act = t.value("hidden_act", std::string("silu"));
  if (act != "silu") throw error(tfile + ": hidden_act '" + act + "' is not supported (expected silu)");
  read_rope(t, tc, tfile);

  if (j.contains("vision_config") && j["vision_config"].is_object()) {
    const json& v = j["vision_config"];
    const std::string vfile = file + " vision_config";
    auto& vc = c.vision;
    vc.present = true;
    vc.depth = positive(v, "depth", vfile);
    vc.hidden_size = positive(v, "hidden_size", vfile);
    vc.n_heads = positive(v, "num_heads", vfile);
    if (vc.hidden_size % vc.n_heads) throw error(vfile + ": hidden_size must be a multiple of num_heads");
    vc.head_dim = vc.hidden_size / vc.n_heads;
    if (vc.head_dim % 4) throw error(vfile + ": head dimension must be a multiple of 4 for the 2-D rotary embedding");
    vc.patch_size = int32_t(json_int_or(v, "patch_size", 14, vfile));
    vc.temporal_patch_size = int32_t(json_int_or(v, "temporal_patch_size", 2, vfile));
    vc.spatial_merge_size = int32_t(json_int_or(v, "spatial_merge_size", 2, vfile));
    vc.image_size = int32_t(json_int_or(v, "image_size", 336, vfile));
    vc.in_channels = int32_t(json_int_or(v, "in_channels", 3, vfile));
    vc.out_hidden_size = positive(v, "out_hidden_size", vfile);
    vc.intermediate_size = positive(v, "intermediate_size", vfile);
    vc.rms_norm_eps = float(json_number_or(v, "rms_norm_eps", 1e-5, vfile));
    vc.attention_bias = v.value("attention_bias", false);
    if (v.contains("rope_parameters") && v["rope_parameters"].is_object())
      vc.rope_theta = float(json_number_or(v["rope_parameters"], "rope_theta", 10000.0, vfile));
    if (vc.patch_size <= 0 || vc.temporal_patch_size <= 0 || vc.spatial_merge_size <= 0 || vc.image_size < vc.patch_size)
      throw error(vfile + ": invalid patch/merge/image sizes");
    if (vc.out_hidden_size != tc.hidden_size)
      throw error(vfile + ": out_hidden_size " + std::to_string(vc.out_hidden_size) + " differs from the text hidden size " +
                  std::to_string(tc.hidden_size));
  }

  c.image_token_id = int32_t(json_int_or(j, "image_token_id", -1, file));
  c.video_token_id = int32_t(json_int_or(j, "video_token_id", -1, file));
  c.image_start_token_id = int32_t(json_int_or(j, "image_start_token_id", -1, file));
  c.image_end_token_id = int32_t(json_int_or(j, "image_end_token_id", -1, file));
  c.video_start_token_id = int32_t(json_int_or(j, "video_start_token_id", -1, file));
  c.video_end_token_id = int32_t(json_int_or(j, "video_end_token_id", -1, file));
  if (c.vision.present && (c.image_token_id < 0 || c.image_token_id >= tc.vocab_size))
    throw error(file + ": 'image_token_id' is missing or outside the vocabulary");

  add_ids(j, "eos_token_id", c.eos_token_ids, file);
  add_ids(t, "eos_token_id", c.eos_token_ids, tfile);
  if (auto g = read_json_file_if_exists(model_dir + "/generation_config.json"))
    add_ids(*g, "eos_token_id", c.eos_token_ids, model_dir + "/generation_config.json");
  for (int32_t id : c.eos_token_ids)
    if (id < 0 || id >= tc.vocab_size) throw error(file + ": eos token id " + std::to_string(id) + " is outside the vocabulary");
  return c;
}

}  // namespace autoglm::glm4v

// model/glm4v/config.cpp: reads and validates config.json and generation_config.json (see config.h).
//
// Every size read here allocates memory or indexes a table later (KV cache, rope positions, embedding rows,
// the vision position table), so each one is range-checked where it is read and the error names the file and
// the key. The upper bounds are far above any released model yet small enough that products of them stay
// inside int64 and that a typo cannot ask for terabytes:
//   vocab_size <= 2^24 (16.7M rows; the largest public vocabularies are ~262k),
//   hidden_size, out_hidden_size <= 65536 (largest public: 16384-25600),
//   intermediate_size <= 2^18 (largest public: 53248; GLM-4.1V 13696),
//   layers / depth <= 1024, heads <= 1024, head_dim <= 1024 (largest public: 256),
//   max_position_embeddings <= 2^24 (positions are int32 and M-RoPE adds image extents to them; the longest
//   public context is ~10M tokens),
//   patch_size <= 1024, temporal_patch_size and spatial_merge_size <= 16, image_size <= 16384,
//   rope_theta in (0, 1e12], rms_norm_eps in (0, 1], at most 256 eos ids.
#include "model/glm4v/config.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.h"
#include "formats/json_file.h"

namespace autoglm::glm4v {

using json = nlohmann::json;

namespace {

constexpr int64_t k_max_vocab = int64_t(1) << 24;
constexpr int64_t k_max_hidden = 65536;
constexpr int64_t k_max_intermediate = int64_t(1) << 18;
constexpr int64_t k_max_layers = 1024;
constexpr int64_t k_max_heads = 1024;
constexpr int64_t k_max_head_dim = 1024;
constexpr int64_t k_max_positions = int64_t(1) << 24;
constexpr int64_t k_max_patch = 1024;
constexpr int64_t k_max_merge = 16;
constexpr int64_t k_max_image_size = 16384;
constexpr double k_max_rope_theta = 1e12;
constexpr size_t k_max_eos_ids = 256;

int32_t int_field(const json_fields& f, const char* key, int64_t lo, int64_t hi) {
  return int32_t(f.integer(key, lo, hi));
}

int32_t int_field_or(const json_fields& f, const char* key, int64_t fallback, int64_t lo, int64_t hi) {
  return int32_t(f.integer_or(key, fallback, lo, hi));
}

std::string number_text(double v) {
  std::ostringstream os;
  os << v;  // 1, 1e+12: as a user would write them
  return os.str();
}

// A positive finite number at most `hi` that stays positive as a float (1e-50 would round to 0).
float positive_float_or(const json_fields& f, const char* key, double fallback, double hi) {
  if (!f.has(key)) return float(fallback);
  const json& v = f.value().at(key);
  if (!v.is_number()) f.fail(key, "must be a number, got " + v.dump());
  const double x = v.get<double>();
  if (!std::isfinite(x) || !(float(x) > 0.0f) || x > hi)
    f.fail(key, "must be greater than 0 and at most " + number_text(hi) + ", got " + v.dump());
  return float(x);
}

// A token id the model looks up in its embedding table or compares sampled tokens against.
int32_t token_id(const json& v, int32_t vocab, const std::string& what) {
  return int32_t(json_integer_in(v, 0, int64_t(vocab) - 1, what));
}

// An id field that may be absent or null (-1 then); when present it must be inside the vocabulary.
int32_t optional_token_id(const json_fields& f, const char* key, int32_t vocab) {
  if (!f.has(key)) return -1;
  return token_id(f.value().at(key), vocab, f.file() + ": " + f.key_name(key));
}

// eos_token_id: one id or a list of ids; adds the new ones to `out` in order.
void add_eos_ids(const json_fields& f, int32_t vocab, std::vector<int32_t>& out) {
  const char* key = "eos_token_id";
  if (!f.has(key)) return;
  const json& v = f.value().at(key);
  const std::string what = f.file() + ": " + f.key_name(key);
  auto add = [&](const json& x, const std::string& name) {
    int32_t id = token_id(x, vocab, name);
    if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  };
  if (!v.is_array()) return add(v, what);
  if (v.size() > k_max_eos_ids)
    f.fail(key, "lists " + std::to_string(v.size()) + " ids, more than the limit of " + std::to_string(k_max_eos_ids));
  for (size_t i = 0; i < v.size(); ++i) add(v[i], what + "[" + std::to_string(i) + "]");
}

// The other special ids a generation or model config may carry; unused for generation but they must still
// name real rows (a tokenizer or client may look them up).
void check_aux_ids(const json_fields& f, int32_t vocab) {
  for (const char* key : {"pad_token_id", "bos_token_id", "decoder_start_token_id"}) optional_token_id(f, key, vocab);
}

// Reads the rope settings from either transformers v4 (`rope_theta`, `rope_scaling`) or v5 (`rope_parameters`).
void read_rope(const json_fields& t, text_config& c) {
  const std::optional<json_fields> params =
      t.has("rope_parameters") ? t.object_if_present("rope_parameters") : t.object_if_present("rope_scaling");
  c.rope_theta = positive_float_or(t, "rope_theta", 10000.0, k_max_rope_theta);
  c.partial_rotary_factor = positive_float_or(t, "partial_rotary_factor", 0.5, 1.0);
  if (!params) t.fail("rope_parameters", "is missing (an object with mrope_section; rope_scaling in transformers v4)");
  c.rope_theta = positive_float_or(*params, "rope_theta", c.rope_theta, k_max_rope_theta);
  c.partial_rotary_factor = positive_float_or(*params, "partial_rotary_factor", c.partial_rotary_factor, 1.0);
  const std::string type = params->string_or("rope_type", params->string_or("type", "default"));
  if (type != "default" && type != "mrope")
    params->fail("rope_type", "'" + type + "' is not supported (GLM-4.1V uses the default M-RoPE)");

  c.rotary_dim = int32_t(std::lround(c.head_dim * c.partial_rotary_factor));
  if (c.rotary_dim <= 0 || c.rotary_dim % 2 || c.rotary_dim > c.head_dim)
    t.fail("partial_rotary_factor", "of " + json(c.partial_rotary_factor).dump() + " times head_dim " +
                                        std::to_string(c.head_dim) + " gives " + std::to_string(c.rotary_dim) +
                                        " rotary dimensions; it must be a positive even number");
  const char* key = "mrope_section";
  if (!params->has(key)) params->fail(key, "is missing (a list of 3 integers)");
  const json& section = params->value().at(key);
  if (!section.is_array() || section.size() != 3) params->fail(key, "must be a list of 3 integers, got " + section.dump().substr(0, 40));
  int64_t sum = 0;
  for (size_t i = 0; i < 3; ++i) {
    const std::string what = t.file() + ": " + params->key_name(key) + "[" + std::to_string(i) + "]";
    c.mrope_section[i] = int32_t(json_integer_in(section[i], 0, c.rotary_dim / 2, what));
    sum += c.mrope_section[i];
  }
  if (sum != c.rotary_dim / 2)
    params->fail(key, "sums to " + std::to_string(sum) + " but the rotary dimension " + std::to_string(c.rotary_dim) +
                          " has " + std::to_string(c.rotary_dim / 2) + " frequency pairs");
}

void read_text(const json_fields& t, text_config& tc) {
  tc.vocab_size = int_field(t, "vocab_size", 1, k_max_vocab);
  tc.hidden_size = int_field(t, "hidden_size", 1, k_max_hidden);
  tc.intermediate_size = int_field(t, "intermediate_size", 1, k_max_intermediate);
  tc.n_layers = int_field(t, "num_hidden_layers", 1, k_max_layers);
  tc.n_heads = int_field(t, "num_attention_heads", 1, k_max_heads);
  tc.n_kv_heads = int_field_or(t, "num_key_value_heads", tc.n_heads, 1, tc.n_heads);
  if (tc.n_heads % tc.n_kv_heads)
    t.fail("num_key_value_heads", "(" + std::to_string(tc.n_kv_heads) + ") must divide num_attention_heads (" +
                                      std::to_string(tc.n_heads) + ")");
  if (t.has("head_dim")) {
    tc.head_dim = int_field(t, "head_dim", 1, k_max_head_dim);
  } else {
    if (tc.hidden_size % tc.n_heads)
      t.fail("hidden_size", "(" + std::to_string(tc.hidden_size) + ") must be a multiple of num_attention_heads (" +
                                std::to_string(tc.n_heads) + ") when there is no head_dim");
    tc.head_dim = tc.hidden_size / tc.n_heads;
    if (tc.head_dim > k_max_head_dim)
      t.fail("hidden_size", "/ num_attention_heads gives a head dimension of " + std::to_string(tc.head_dim) +
                                ", more than the limit of " + std::to_string(k_max_head_dim));
  }
  tc.rms_norm_eps = positive_float_or(t, "rms_norm_eps", 1e-5, 1.0);
  tc.max_position_embeddings = int_field_or(t, "max_position_embeddings", 32768, 1, k_max_positions);
  tc.attention_bias = t.boolean_or("attention_bias", true);
  const std::string act = t.string_or("hidden_act", "silu");
  if (act != "silu") t.fail("hidden_act", "'" + act + "' is not supported (expected silu)");
  read_rope(t, tc);
}

void read_vision(const json_fields& v, const text_config& tc, vision_config& vc) {
  vc.present = true;
  vc.depth = int_field(v, "depth", 1, k_max_layers);
  vc.hidden_size = int_field(v, "hidden_size", 1, k_max_hidden);
  vc.n_heads = int_field(v, "num_heads", 1, k_max_heads);
  if (vc.hidden_size % vc.n_heads)
    v.fail("hidden_size", "(" + std::to_string(vc.hidden_size) + ") must be a multiple of num_heads (" +
                              std::to_string(vc.n_heads) + ")");
  vc.head_dim = vc.hidden_size / vc.n_heads;
  if (vc.head_dim % 4 || vc.head_dim > k_max_head_dim)
    v.fail("hidden_size", "/ num_heads gives a head dimension of " + std::to_string(vc.head_dim) +
                              "; the 2-D rotary embedding needs a multiple of 4, at most " + std::to_string(k_max_head_dim));
  vc.patch_size = int_field_or(v, "patch_size", 14, 1, k_max_patch);
  vc.temporal_patch_size = int_field_or(v, "temporal_patch_size", 2, 1, k_max_merge);
  vc.spatial_merge_size = int_field_or(v, "spatial_merge_size", 2, 1, k_max_merge);
  vc.image_size = int_field_or(v, "image_size", 336, vc.patch_size, k_max_image_size);
  // The image processor produces RGB patches; any other channel count cannot match its pixel rows.
  vc.in_channels = int_field_or(v, "in_channels", 3, 1, 16);
  if (vc.in_channels != 3)
    v.fail("in_channels", "must be 3 (the image processor produces RGB patches), got " + std::to_string(vc.in_channels));
  vc.out_hidden_size = int_field(v, "out_hidden_size", 1, k_max_hidden);
  vc.intermediate_size = int_field(v, "intermediate_size", 1, k_max_intermediate);
  vc.rms_norm_eps = positive_float_or(v, "rms_norm_eps", 1e-5, 1.0);
  vc.attention_bias = v.boolean_or("attention_bias", false);
  const std::string act = v.string_or("hidden_act", "silu");
  if (act != "silu") v.fail("hidden_act", "'" + act + "' is not supported (expected silu)");
  if (auto rp = v.object_if_present("rope_parameters"))
    vc.rope_theta = positive_float_or(*rp, "rope_theta", 10000.0, k_max_rope_theta);
  if (vc.out_hidden_size != tc.hidden_size)
    v.fail("out_hidden_size", "(" + std::to_string(vc.out_hidden_size) + ") must equal text_config.hidden_size (" +
                                  std::to_string(tc.hidden_size) + ")");
}

}  // namespace

config config::load(const std::string& model_dir) {
  const std::string file = model_dir + "/config.json";
  const json j = read_json_file(file);
  const json_fields root(j, file);
  config c;
  if (root.has("architectures")) {
    const json& a = j.at("architectures");
    if (!a.is_array() || a.empty() || !a[0].is_string()) root.fail("architectures", "must be a list of strings");
    c.architecture = a[0].get<std::string>();
  }
  if (!root.has("text_config")) root.fail("text_config", "is missing (is this a GLM-4.1V checkpoint?)");
  const json_fields t = root.object("text_config");
  read_text(t, c.text);
  const int32_t vocab = c.text.vocab_size;
  if (auto v = root.object_if_present("vision_config")) read_vision(*v, c.text, c.vision);

  c.image_token_id = optional_token_id(root, "image_token_id", vocab);
  c.video_token_id = optional_token_id(root, "video_token_id", vocab);
  c.image_start_token_id = optional_token_id(root, "image_start_token_id", vocab);
  c.image_end_token_id = optional_token_id(root, "image_end_token_id", vocab);
  c.video_start_token_id = optional_token_id(root, "video_start_token_id", vocab);
  c.video_end_token_id = optional_token_id(root, "video_end_token_id", vocab);
  if (c.vision.present && c.image_token_id < 0)
    root.fail("image_token_id", "is missing (a model with a vision_config needs the image placeholder id)");
  check_aux_ids(root, vocab);
  check_aux_ids(t, vocab);

  add_eos_ids(root, vocab, c.eos_token_ids);
  add_eos_ids(t, vocab, c.eos_token_ids);
  const std::string gfile = model_dir + "/generation_config.json";
  if (auto g = read_json_file_if_exists(gfile)) {
    const json_fields gen(*g, gfile);
    add_eos_ids(gen, vocab, c.eos_token_ids);
    check_aux_ids(gen, vocab);
  }
  if (c.eos_token_ids.size() > k_max_eos_ids)
    throw error(file + ": more than " + std::to_string(k_max_eos_ids) + " distinct eos ids across config.json and generation_config.json");
  return c;
}

}  // namespace autoglm::glm4v

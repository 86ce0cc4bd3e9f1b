// model/whisper/config.cpp: reads and validates config.json and generation_config.json (see config.h). Bounds are
// those of the GLM-4.1V config (model/glm4v/config.cpp), plus: max_source_positions and max_target_positions at
// most 65536 (released models: 1500 and 448), num_mel_bins at most 512 (released: 80 and 128), at most 4096 entries
// in a suppress list, 1024 languages and 16 tasks.
#include "model/whisper/config.h"

#include "core/error.h"
#include "formats/json_file.h"

namespace autoglm::whisper {

using json = nlohmann::json;

namespace {

constexpr int64_t k_max_vocab = int64_t(1) << 24;
constexpr int64_t k_max_width = 65536;
constexpr int64_t k_max_ffn = int64_t(1) << 18;
constexpr int64_t k_max_layers = 1024;
constexpr int64_t k_max_heads = 1024;
constexpr int64_t k_max_head_dim = 1024;
constexpr int64_t k_max_positions = 65536;
constexpr int64_t k_max_mel_bins = 512;
constexpr size_t k_max_suppress = 4096;
constexpr size_t k_max_languages = 1024;
constexpr size_t k_max_tasks = 16;

int32_t int_field(const json_fields& f, const char* key, int64_t lo, int64_t hi) {
  return int32_t(f.integer(key, lo, hi));
}

// A token id of the vocabulary (the key must be present).
int32_t token_field(const json_fields& f, const char* key, int32_t vocab) {
  return int32_t(f.integer(key, 0, int64_t(vocab) - 1));
}

// An id that may be given as one integer or a list (eos_token_id): the first one.
int32_t first_token(const json_fields& f, const char* key, int32_t vocab) {
  const json& v = f.value().at(key);
  const std::string what = f.file() + ": " + f.key_name(key);
  if (v.is_array()) {
    if (v.empty()) f.fail(key, "is an empty list");
    return int32_t(json_integer_in(v[0], 0, int64_t(vocab) - 1, what + "[0]"));
  }
  return int32_t(json_integer_in(v, 0, int64_t(vocab) - 1, what));
}

std::vector<int32_t> token_list(const json_fields& f, const char* key, int32_t vocab) {
  std::vector<int32_t> out;
  if (!f.has(key)) return out;
  const json& v = f.value().at(key);
  if (!v.is_array()) f.fail(key, "must be a list of token ids");
  if (v.size() > k_max_suppress)
    f.fail(key, "lists " + std::to_string(v.size()) + " ids, more than the limit of " + std::to_string(k_max_suppress));
  const std::string what = f.file() + ": " + f.key_name(key);
  for (size_t i = 0; i < v.size(); ++i)
    out.push_back(int32_t(json_integer_in(v[i], 0, int64_t(vocab) - 1, what + "[" + std::to_string(i) + "]")));
  return out;
}

std::map<std::string, int32_t> token_map(const json_fields& f, const char* key, int32_t vocab, size_t limit) {
  std::map<std::string, int32_t> out;
  if (!f.has(key)) return out;
  const json& v = f.value().at(key);
  if (!v.is_object()) f.fail(key, "must be an object of name -> token id");
  if (v.size() > limit)
    f.fail(key, "has " + std::to_string(v.size()) + " entries, more than the limit of " + std::to_string(limit));
  for (auto it = v.begin(); it != v.end(); ++it)
    out[it.key()] = int32_t(json_integer_in(it.value(), 0, int64_t(vocab) - 1,
                                            f.file() + ": " + f.key_name(key) + "." + it.key()));
  return out;
}

}  // namespace

config config::load(const std::string& model_dir) {
  const std::string file = model_dir + "/config.json";
  const json j = read_json_file(file);
  const json_fields f(j, file);
  config c;
  if (f.has("architectures")) {
    const json& a = j.at("architectures");
    if (!a.is_array() || a.empty() || !a[0].is_string()) f.fail("architectures", "must be a list of strings");
    c.architecture = a[0].get<std::string>();
  }
  const std::string type = f.string_or("model_type", "");
  if (type != "whisper" && c.architecture.rfind("Whisper", 0) != 0)
    throw error(file + ": not a Whisper checkpoint (model_type '" + type + "', architecture '" + c.architecture +
                "'; expected model_type 'whisper' / WhisperForConditionalGeneration)");
  c.vocab_size = int_field(f, "vocab_size", 1, k_max_vocab);
  c.d_model = int_field(f, "d_model", 1, k_max_width);
  c.encoder_layers = int_field(f, "encoder_layers", 1, k_max_layers);
  c.encoder_heads = int_field(f, "encoder_attention_heads", 1, k_max_heads);
  c.encoder_ffn_dim = int_field(f, "encoder_ffn_dim", 1, k_max_ffn);
  c.decoder_layers = int_field(f, "decoder_layers", 1, k_max_layers);
  c.decoder_heads = int_field(f, "decoder_attention_heads", 1, k_max_heads);
  c.decoder_ffn_dim = int_field(f, "decoder_ffn_dim", 1, k_max_ffn);
  c.num_mel_bins = int_field(f, "num_mel_bins", 1, k_max_mel_bins);
  c.max_source_positions = int_field(f, "max_source_positions", 1, k_max_positions);
  c.max_target_positions = int_field(f, "max_target_positions", 2, k_max_positions);
  c.scale_embedding = f.boolean_or("scale_embedding", false);
  for (auto [key, heads] : {std::pair{"encoder_attention_heads", c.encoder_heads},
                            std::pair{"decoder_attention_heads", c.decoder_heads}}) {
    if (c.d_model % heads)
      f.fail(key, "(" + std::to_string(heads) + ") must divide d_model (" + std::to_string(c.d_model) + ")");
    if (c.d_model / heads > k_max_head_dim)
      f.fail(key, "gives a head dimension of " + std::to_string(c.d_model / heads) + ", more than the limit of " +
                      std::to_string(k_max_head_dim));
  }
  const std::string act = f.string_or("activation_function", "gelu");
  if (act != "gelu") f.fail("activation_function", "'" + act + "' is not supported (Whisper uses gelu)");
  if (!f.boolean_or("tie_word_embeddings", true))
    f.fail("tie_word_embeddings", "is false: every Whisper checkpoint ties proj_out to the token embeddings");
  return c;
}

int32_t generation_config::language_token(const std::string& code) const {
  const auto it = lang_to_id.find("<|" + code + "|>");
  return it == lang_to_id.end() ? -1 : it->second;
}

generation_config generation_config::load(const std::string& model_dir, int32_t vocab_size) {
  const std::string file = model_dir + "/generation_config.json";
  const auto j = read_json_file_if_exists(file);
  if (!j)
    throw error(file + ": missing; a Whisper checkpoint keeps its special token ids (start of transcript, languages, "
                       "tasks, timestamps, suppress lists) there");
  const json_fields f(*j, file);
  generation_config g;
  if (!f.has("decoder_start_token_id")) f.fail("decoder_start_token_id", "is missing (<|startoftranscript|>)");
  g.decoder_start_token_id = token_field(f, "decoder_start_token_id", vocab_size);
  if (!f.has("eos_token_id")) f.fail("eos_token_id", "is missing (<|endoftext|>)");
  g.eos_token_id = first_token(f, "eos_token_id", vocab_size);
  if (f.has("no_timestamps_token_id")) g.no_timestamps_token_id = token_field(f, "no_timestamps_token_id", vocab_size);
  if (f.has("prev_sot_token_id")) g.prev_sot_token_id = token_field(f, "prev_sot_token_id", vocab_size);
  g.lang_to_id = token_map(f, "lang_to_id", vocab_size, k_max_languages);
  g.task_to_id = token_map(f, "task_to_id", vocab_size, k_max_tasks);
  g.is_multilingual = f.boolean_or("is_multilingual", !g.lang_to_id.empty());
  if (g.is_multilingual && g.lang_to_id.empty())
    f.fail("lang_to_id", "is missing: a multilingual model needs its language tokens");
  if (g.is_multilingual && !g.task_to_id.count("transcribe"))
    f.fail("task_to_id", "has no 'transcribe' entry");
  g.suppress_tokens = token_list(f, "suppress_tokens", vocab_size);
  g.begin_suppress_tokens = token_list(f, "begin_suppress_tokens", vocab_size);
  if (f.has("max_initial_timestamp_index"))
    g.max_initial_timestamp_index = int32_t(f.integer("max_initial_timestamp_index", 0, vocab_size));
  if (f.has("max_length")) g.max_length = int32_t(f.integer("max_length", 2, k_max_positions));
  return g;
}

}  // namespace autoglm::whisper

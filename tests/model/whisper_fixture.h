// tests/model/whisper_fixture.h: Whisper checkpoints for tests, written on the fly. The weights follow a
// counter-based rule both this file and tests/fixtures/make_whisper_fixtures.py implement (so the committed
// fixtures hold only reference outputs and a weights.json of per-tensor seeds and scales, not megabytes of weights):
//   value(seed, i) = float(offset + scale * u),  u = (mix(seed * 0x9E3779B97F4A7C15 + i + 1) >> 40) / 2^23 - 1
// with mix = splitmix64's finalizer, all arithmetic mod 2^64, the float expression in double then rounded once.
// The id-layout files (tokenizer.json, generation_config.json, preprocessor_config.json) come from
// tests/fixtures/whisper (tests/fixtures/make_whisper_tokenizer.py).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

namespace autoglm::test {

inline std::string whisper_fixture_dir() { return std::string(AUTOGLM_SOURCE_DIR) + "/tests/fixtures/whisper"; }

inline uint64_t fixture_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline float fixture_value(uint64_t seed, uint64_t i, double offset, double scale) {
  const uint64_t z = fixture_mix(seed * 0x9E3779B97F4A7C15ull + i + 1);
  const double u = double(z >> 40) / 8388608.0 - 1.0;
  return float(offset + scale * u);
}

struct fixture_tensor {
  std::string name;
  std::vector<int64_t> shape;
  uint64_t seed = 0;
  double offset = 0, scale = 1;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

inline std::vector<float> fixture_values(const fixture_tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = fixture_value(t.seed, i, t.offset, t.scale);
  return v;
}

// An F32 safetensors file of the tensors, in the given order.
inline void write_safetensors_f32(const std::string& path, const std::vector<fixture_tensor>& ts) {
  nlohmann::json header = nlohmann::json::object();
  size_t offset = 0;
  for (const fixture_tensor& t : ts) {
    const size_t bytes = size_t(t.numel()) * 4;
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string h = header.dump();
  while (h.size() % 8) h += ' ';
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = h.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(h.data(), std::streamsize(h.size()));
  for (const fixture_tensor& t : ts) {
    const std::vector<float> v = fixture_values(t);
    out.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * 4));
  }
  if (!out) throw std::runtime_error("cannot write " + path);
}

// The tensors of a WhisperForConditionalGeneration checkpoint as save_pretrained writes them (proj_out tied, so
// absent), with this file's init rule: norms 1 +- 0.25, biases +- 0.1, embeddings +- 0.5, linears +- 1.7/sqrt(fan_in).
inline std::vector<fixture_tensor> whisper_tensor_specs(const nlohmann::json& cfg) {
  const int64_t D = cfg["d_model"], V = cfg["vocab_size"], N = cfg["num_mel_bins"];
  const int64_t S = cfg["max_source_positions"], T = cfg["max_target_positions"];
  std::vector<fixture_tensor> out;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, double offset, double scale) {
    out.push_back({name, std::move(shape), uint64_t(out.size()) + 1, offset, scale});
  };
  auto linear = [&](const std::string& p, int64_t o, int64_t i, bool bias) {
    add(p + ".weight", {o, i}, 0.0, 1.7 / std::sqrt(double(i)));
    if (bias) add(p + ".bias", {o}, 0.0, 0.1);
  };
  auto norm = [&](const std::string& p, int64_t d) {
    add(p + ".weight", {d}, 1.0, 0.25);
    add(p + ".bias", {d}, 0.0, 0.1);
  };
  auto attn = [&](const std::string& p) {
    linear(p + ".k_proj", D, D, false);
    linear(p + ".v_proj", D, D, true);
    linear(p + ".q_proj", D, D, true);
    linear(p + ".out_proj", D, D, true);
  };
  add("model.encoder.conv1.weight", {D, N, 3}, 0.0, 1.7 / std::sqrt(double(3 * N)));
  add("model.encoder.conv1.bias", {D}, 0.0, 0.1);
  add("model.encoder.conv2.weight", {D, D, 3}, 0.0, 1.7 / std::sqrt(double(3 * D)));
  add("model.encoder.conv2.bias", {D}, 0.0, 0.1);
  add("model.encoder.embed_positions.weight", {S, D}, 0.0, 0.5);
  for (int64_t l = 0; l < int64_t(cfg["encoder_layers"]); ++l) {
    const std::string p = "model.encoder.layers." + std::to_string(l);
    attn(p + ".self_attn");
    norm(p + ".self_attn_layer_norm", D);
    linear(p + ".fc1", cfg["encoder_ffn_dim"], D, true);
    linear(p + ".fc2", D, cfg["encoder_ffn_dim"], true);
    norm(p + ".final_layer_norm", D);
  }
  norm("model.encoder.layer_norm", D);
  add("model.decoder.embed_tokens.weight", {V, D}, 0.0, 0.5);
  add("model.decoder.embed_positions.weight", {T, D}, 0.0, 0.5);
  for (int64_t l = 0; l < int64_t(cfg["decoder_layers"]); ++l) {
    const std::string p = "model.decoder.layers." + std::to_string(l);
    attn(p + ".self_attn");
    norm(p + ".self_attn_layer_norm", D);
    attn(p + ".encoder_attn");
    norm(p + ".encoder_attn_layer_norm", D);
    linear(p + ".fc1", cfg["decoder_ffn_dim"], D, true);
    linear(p + ".fc2", D, cfg["decoder_ffn_dim"], true);
    norm(p + ".final_layer_norm", D);
  }
  norm("model.decoder.layer_norm", D);
  return out;
}

// A small WhisperConfig as transformers writes it (vocab 51865: the special ids are real).
inline nlohmann::json tiny_whisper_config(int64_t d_model = 32, int64_t layers = 2, int64_t heads = 4) {
  return {{"architectures", {"WhisperForConditionalGeneration"}}, {"model_type", "whisper"}, {"vocab_size", 51865},
          {"num_mel_bins", 80}, {"d_model", d_model}, {"encoder_layers", layers}, {"decoder_layers", layers},
          {"encoder_attention_heads", heads}, {"decoder_attention_heads", heads}, {"encoder_ffn_dim", 2 * d_model},
          {"decoder_ffn_dim", 2 * d_model}, {"max_source_positions", 1500}, {"max_target_positions", 448},
          {"activation_function", "gelu"}, {"scale_embedding", false}, {"tie_word_embeddings", true},
          {"decoder_start_token_id", 50258}, {"eos_token_id", 50257}, {"pad_token_id", 50257}};
}

// dir/: config.json, model.safetensors (from `tensors`) and the id-layout files of tests/fixtures/whisper.
inline void write_whisper_dir(const std::string& dir, const nlohmann::json& cfg,
                              const std::vector<fixture_tensor>& tensors) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  std::ofstream(dir + "/config.json") << cfg.dump(1);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "generation_config.json", "preprocessor_config.json"})
    fs::copy_file(whisper_fixture_dir() + "/" + f, dir + "/" + f, fs::copy_options::overwrite_existing);
  write_safetensors_f32(dir + "/model.safetensors", tensors);
}

// A fresh temporary directory for one test.
inline std::string temp_dir(const std::string& name) {
  const auto p = std::filesystem::temp_directory_path() / ("autoglm_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

}  // namespace autoglm::test

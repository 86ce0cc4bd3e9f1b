// tools/cmd_random_whisper.cpp: `autoglm random-whisper`: writes a WhisperForConditionalGeneration checkpoint with
// random weights and a released model's dimensions, in Hugging Face's layout (config.json, model.safetensors in BF16
// or F16, generation_config.json, preprocessor_config.json, tokenizer.json, tokenizer_config.json), for speed
// benchmarks (`autoglm bench-asr`): the time does not depend on the weight values. With --ggml FILE the same values
// also go to whisper.cpp's model file (F16; cli_whisper_ggml.h), for the peer in bench/peer/asr_peer.mjs.
//
// The id-layout files come from tests/fixtures/whisper (Whisper's v1/v2 layout, 51865 ids: a stand-in BPE with the
// real special and timestamp ids). For large-v3 and turbo (51866 ids) they are rewritten to v3's layout, as
// openai/whisper-large-v3's files have it: <|yue|> is language 100 at 50358 and every id from 50358 on moves up
// by one (<|translate|> 50359, <|transcribe|> 50360, <|startofprev|> 50362, <|notimestamps|> 50364, timestamps
// 50365..51865), in the tokenizer, the generation config and the suppress lists alike. The mel bins (80 / 128)
// go to preprocessor_config.json's feature_size.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli_whisper_ggml.h"
#include "command.h"
#include "core/dtype.h"
#include "core/error.h"
#include "media/whisper_features.h"
#include "tokenizer/tokenizer.h"

#ifndef AUTOGLM_WHISPER_LAYOUT_DIR
#define AUTOGLM_WHISPER_LAYOUT_DIR ""
#endif

namespace autoglm::cli {

namespace {

using json = nlohmann::json;

// The released sizes (openai/whisper-*'s config.json): width, encoder / decoder layers, heads, FFN width, mel bins,
// vocabulary. Positions are the same for all: 1500 encoder states (30 s), 448 decoder positions.
struct whisper_size {
  const char* name;
  int32_t d_model, encoder_layers, decoder_layers, heads, ffn, mel_bins, vocab;
};
constexpr whisper_size k_sizes[] = {
    {"tiny", 384, 4, 4, 6, 1536, 80, 51865},          {"base", 512, 6, 6, 8, 2048, 80, 51865},
    {"small", 768, 12, 12, 12, 3072, 80, 51865},      {"medium", 1024, 24, 24, 16, 4096, 80, 51865},
    {"large-v3", 1280, 32, 32, 20, 5120, 128, 51866}, {"large-v3-turbo", 1280, 32, 4, 20, 5120, 128, 51866},
};
constexpr int32_t k_source_positions = 1500, k_target_positions = 448;
constexpr int32_t k_v3_first_moved = 50358;  // <|yue|>'s id in v3; the v1/v2 ids from here on move up by one

const whisper_size& find_size(const std::string& name) {
  std::string known;
  for (const whisper_size& s : k_sizes) {
    if (name == s.name) return s;
    known += std::string(known.empty() ? "" : ", ") + s.name;
  }
  throw error("--size '" + name + "' is not one of " + known);
}

json whisper_config(const whisper_size& s, const std::string& torch_dtype) {
  return {{"architectures", {"WhisperForConditionalGeneration"}}, {"model_type", "whisper"},
          {"vocab_size", s.vocab}, {"num_mel_bins", s.mel_bins}, {"d_model", s.d_model},
          {"encoder_layers", s.encoder_layers}, {"decoder_layers", s.decoder_layers},
          {"encoder_attention_heads", s.heads}, {"decoder_attention_heads", s.heads}, {"encoder_ffn_dim", s.ffn},
          {"decoder_ffn_dim", s.ffn}, {"num_hidden_layers", s.encoder_layers},
          {"max_source_positions", k_source_positions}, {"max_target_positions", k_target_positions},
          {"activation_function", "gelu"}, {"scale_embedding", false}, {"tie_word_embeddings", true},
          {"decoder_start_token_id", 50258}, {"eos_token_id", 50257}, {"pad_token_id", 50257},
          {"bos_token_id", 50257}, {"torch_dtype", torch_dtype}, {"use_cache", true}};
}

// ---- the id layout -------------------------------------------------------------------------------------------

int32_t v3_id(int32_t id) { return id >= k_v3_first_moved ? id + 1 : id; }

json read_layout_file(const std::string& dir, const char* name) {
  const std::string path = dir + "/" + name;
  std::ifstream in(path);
  if (!in) throw error(path + ": cannot read (--layout names the directory of Whisper's id-layout files)");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw error(path + ": " + e.what());
  }
}

// tokenizer.json: added tokens renumbered, <|yue|> inserted after <|su|>.
void tokenizer_to_v3(json& tok) {
  json added = json::array();
  for (json t : tok.at("added_tokens")) {
    const int32_t id = t.at("id").get<int32_t>();
    if (id == k_v3_first_moved) {
      json yue = t;
      yue["content"] = "<|yue|>";
      added.push_back(yue);
    }
    t["id"] = v3_id(id);
    added.push_back(t);
  }
  tok["added_tokens"] = added;
}

void config_to_v3(json& tc) {
  json moved = json::object();
  for (auto it = tc.at("added_tokens_decoder").begin(); it != tc.at("added_tokens_decoder").end(); ++it) {
    const int32_t id = std::stoi(it.key());
    if (id == k_v3_first_moved) {
      json yue = it.value();
      yue["content"] = "<|yue|>";
      moved[std::to_string(id)] = yue;
    }
    moved[std::to_string(v3_id(id))] = it.value();
  }
  tc["added_tokens_decoder"] = moved;
}

void generation_to_v3(json& g) {
  for (const char* key : {"bos_token_id", "decoder_start_token_id", "eos_token_id", "pad_token_id",
                          "no_timestamps_token_id", "prev_sot_token_id"})
    if (g.contains(key)) g[key] = v3_id(g[key].get<int32_t>());
  for (const char* key : {"suppress_tokens", "begin_suppress_tokens"})
    for (json& id : g[key]) id = v3_id(id.get<int32_t>());
  for (const char* key : {"lang_to_id", "task_to_id"})
    for (auto& [name, id] : g[key].items()) id = v3_id(id.get<int32_t>());
  g["lang_to_id"]["<|yue|>"] = k_v3_first_moved;
}

void write_json(const std::string& path, const json& j, int indent) {
  std::ofstream out(path);
  out << j.dump(indent, ' ', false) << "\n";
  if (!out) throw error(path + ": write failed");
}

void write_layout_files(const std::string& layout, const std::string& out_dir, const whisper_size& s) {
  json tok = read_layout_file(layout, "tokenizer.json");
  json tok_cfg = read_layout_file(layout, "tokenizer_config.json");
  json gen = read_layout_file(layout, "generation_config.json");
  json pre = read_layout_file(layout, "preprocessor_config.json");
  const int64_t layout_vocab = int64_t(tok.at("added_tokens").back().at("id")) + 1;
  if (s.vocab == layout_vocab + 1) {
    tokenizer_to_v3(tok);
    config_to_v3(tok_cfg);
    generation_to_v3(gen);
  } else if (s.vocab != layout_vocab) {
    throw error(layout + "/tokenizer.json: its " + std::to_string(layout_vocab) + " ids fit neither " +
                std::to_string(s.vocab) + " nor one less");
  }
  pre["feature_size"] = s.mel_bins;
  write_json(out_dir + "/tokenizer.json", tok, -1);
  write_json(out_dir + "/tokenizer_config.json", tok_cfg, 1);
  write_json(out_dir + "/generation_config.json", gen, 1);
  write_json(out_dir + "/preprocessor_config.json", pre, 1);
}

// ---- the weights ---------------------------------------------------------------------------------------------

struct tensor_spec {
  std::string name;
  std::vector<int64_t> shape;  // torch order
  enum kind_t { MATRIX, NORM, BIAS, SINUSOIDS } kind;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// save_pretrained's tensors (proj_out is tied to embed_tokens and absent).
std::vector<tensor_spec> tensor_list(const whisper_size& s) {
  const int64_t D = s.d_model, F = s.ffn, N = s.mel_bins, V = s.vocab;
  std::vector<tensor_spec> out;
  auto linear = [&](const std::string& p, int64_t o, int64_t i, bool bias) {
    out.push_back({p + ".weight", {o, i}, tensor_spec::MATRIX});
    if (bias) out.push_back({p + ".bias", {o}, tensor_spec::BIAS});
  };
  auto norm = [&](const std::string& p) {
    out.push_back({p + ".weight", {D}, tensor_spec::NORM});
    out.push_back({p + ".bias", {D}, tensor_spec::BIAS});
  };
  auto attention = [&](const std::string& p) {
    linear(p + ".q_proj", D, D, true);
    linear(p + ".k_proj", D, D, false);
    linear(p + ".v_proj", D, D, true);
    linear(p + ".out_proj", D, D, true);
  };
  out.push_back({"model.encoder.conv1.weight", {D, N, 3}, tensor_spec::MATRIX});
  out.push_back({"model.encoder.conv1.bias", {D}, tensor_spec::BIAS});
  out.push_back({"model.encoder.conv2.weight", {D, D, 3}, tensor_spec::MATRIX});
  out.push_back({"model.encoder.conv2.bias", {D}, tensor_spec::BIAS});
  out.push_back({"model.encoder.embed_positions.weight", {k_source_positions, D}, tensor_spec::SINUSOIDS});
  for (int32_t l = 0; l < s.encoder_layers; ++l) {
    const std::string p = "model.encoder.layers." + std::to_string(l);
    attention(p + ".self_attn");
    norm(p + ".self_attn_layer_norm");
    linear(p + ".fc1", F, D, true);
    linear(p + ".fc2", D, F, true);
    norm(p + ".final_layer_norm");
  }
  norm("model.encoder.layer_norm");
  out.push_back({"model.decoder.embed_tokens.weight", {V, D}, tensor_spec::MATRIX});
  out.push_back({"model.decoder.embed_positions.weight", {k_target_positions, D}, tensor_spec::BIAS});
  for (int32_t l = 0; l < s.decoder_layers; ++l) {
    const std::string p = "model.decoder.layers." + std::to_string(l);
    attention(p + ".self_attn");
    norm(p + ".self_attn_layer_norm");
    attention(p + ".encoder_attn");
    norm(p + ".encoder_attn_layer_norm");
    linear(p + ".fc1", F, D, true);
    linear(p + ".fc2", D, F, true);
    norm(p + ".final_layer_norm");
  }
  norm("model.decoder.layer_norm");
  return out;
}

// Values of one tensor: linears (and the tied embedding) uniform in +-sqrt(3 / fan_in) (unit-variance outputs),
// norms 1, biases and decoder positions +-0.02, encoder positions the sinusoids Whisper stores. Filled in 16 fixed
// slices (a xorshift stream each, seeded from the tensor's index and the slice) over the cores: the same values on
// any machine.
void fill_values(std::vector<float>& v, const tensor_spec& t, uint64_t index) {
  const int64_t n = t.numel();
  v.resize(size_t(n));
  if (t.kind == tensor_spec::NORM) {
    std::fill(v.begin(), v.end(), 1.0f);
    return;
  }
  if (t.kind == tensor_spec::SINUSOIDS) {  // [length, channels]: sin of the first half, cos of the second
    const int64_t len = t.shape[0], half = t.shape[1] / 2;
    const double step = std::log(10000.0) / double(half - 1);
    for (int64_t p = 0; p < len; ++p)
      for (int64_t c = 0; c < half; ++c) {
        const double a = double(p) * std::exp(-step * double(c));
        v[size_t(p * 2 * half + c)] = float(std::sin(a));
        v[size_t(p * 2 * half + half + c)] = float(std::cos(a));
      }
    return;
  }
  const int64_t fan_in = t.numel() / t.shape[0];
  const float a = t.kind == tensor_spec::BIAS ? 0.02f : std::sqrt(3.0f / float(std::max<int64_t>(fan_in, 1)));
  constexpr int k_slices = 16;
  const int n_threads = int(std::max(1u, std::min(16u, std::thread::hardware_concurrency())));
  std::vector<std::thread> pool;
  for (int w = 0; w < n_threads; ++w)
    pool.emplace_back([&, w] {
      for (int k = w; k < k_slices; k += n_threads) {
        uint64_t s = (index * k_slices + uint64_t(k)) * 0x9E3779B97F4A7C15ull + 1;
        for (int64_t i = n * k / k_slices, e = n * (k + 1) / k_slices; i < e; ++i) {
          s ^= s << 13;
          s ^= s >> 7;
          s ^= s << 17;
          v[size_t(i)] = (float(s >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * a;
        }
      }
    });
  for (std::thread& th : pool) th.join();
}

// whisper.cpp's file wants the regular tokens' bytes (ids below <|endoftext|>); it names the special ones itself.
std::vector<std::string> regular_token_bytes(const std::string& out_dir) {
  const std::unique_ptr<tokenizer> tok = tokenizer::load(out_dir + "/tokenizer.json");
  const json gen = read_layout_file(out_dir, "generation_config.json");
  const int32_t eot = gen.at("eos_token_id").get<int32_t>();
  std::vector<std::string> words(static_cast<size_t>(eot));
  for (int32_t id = 0; id < eot; ++id) words[size_t(id)] = tok->decode_raw(&id, 1, false);
  return words;
}

int run_random_whisper(int argc, char** argv) {
  CLI::App app{"Write a random-weight Whisper checkpoint (Hugging Face layout) with a released model's dimensions, "
               "optionally also as whisper.cpp's model file (benchmarks)"};
  std::string out_dir, size_name = "small", dtype_name = "bf16", ggml_path, layout = AUTOGLM_WHISPER_LAYOUT_DIR;
  app.add_option("-o,--out", out_dir, "output directory")->required();
  app.add_option("--size", size_name, "tiny, base, small, medium, large-v3 or large-v3-turbo");
  app.add_option("--dtype", dtype_name, "bf16 or f16 (model.safetensors)");
  app.add_option("--ggml", ggml_path, "also write the same weights as whisper.cpp's F16 model file here");
  app.add_option("--layout", layout, "directory of Whisper's id-layout files (default: tests/fixtures/whisper)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  const whisper_size& s = find_size(size_name);
  if (dtype_name != "bf16" && dtype_name != "f16") throw error("--dtype must be bf16 or f16");
  const bool bf16 = dtype_name == "bf16";
  if (layout.empty()) throw error("--layout: no default was compiled in; name tests/fixtures/whisper");
  std::filesystem::create_directories(out_dir);
  write_json(out_dir + "/config.json", whisper_config(s, bf16 ? "bfloat16" : "float16"), 2);
  write_layout_files(layout, out_dir, s);

  const std::vector<tensor_spec> specs = tensor_list(s);
  json header = {{"__metadata__", {{"format", "pt"}}}};
  uint64_t offset = 0;
  for (const tensor_spec& t : specs) {
    const uint64_t bytes = uint64_t(t.numel()) * 2;
    header[t.name] = {{"dtype", bf16 ? "BF16" : "F16"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8) h += ' ';
  const std::string st_path = out_dir + "/model.safetensors";
  std::ofstream st(st_path, std::ios::binary);
  const uint64_t h_len = h.size();
  st.write(reinterpret_cast<const char*>(&h_len), 8);
  st.write(h.data(), std::streamsize(h.size()));

  std::unique_ptr<whisper_ggml_writer> ggml;
  if (!ggml_path.empty()) {
    const int32_t n_fft = 400, n_bins = n_fft / 2 + 1;
    const std::vector<double> filters = mel_filter_bank_slaney(s.mel_bins, n_fft, 16000);
    const whisper_ggml_hparams hp{s.vocab,  k_source_positions, s.d_model, s.heads,          s.encoder_layers,
                                  k_target_positions, s.d_model, s.heads,  s.decoder_layers, s.mel_bins};
    ggml = std::make_unique<whisper_ggml_writer>(ggml_path, hp, std::vector<float>(filters.begin(), filters.end()),
                                                 n_bins, regular_token_bytes(out_dir));
  }
  std::vector<float> values;
  std::vector<uint16_t> half;
  uint64_t index = 0;
  for (const tensor_spec& t : specs) {
    fill_values(values, t, ++index);
    half.resize(values.size());
    for (size_t i = 0; i < values.size(); ++i) half[i] = bf16 ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
    st.write(reinterpret_cast<const char*>(half.data()), std::streamsize(half.size() * 2));
    if (ggml) ggml->add(t.name, t.shape, values.data());
  }
  st.flush();
  if (!st) throw error(st_path + ": write failed (disk full?)");
  std::fprintf(stderr, "random-weight whisper-%s: %zu tensors, %.1f M parameters, %s in %s\n", s.name, specs.size(),
               double(offset / 2) / 1e6, dtype_name.c_str(), out_dir.c_str());
  if (ggml) std::fprintf(stderr, "whisper.cpp model file (F16): %s, %.2f GB\n", ggml_path.c_str(), double(ggml->finish()) / 1e9);
  return 0;
}

}  // namespace

AUTOGLM_COMMAND("random-whisper", "write a random-weight Whisper checkpoint with a released size's dimensions",
                run_random_whisper);

}  // namespace autoglm::cli

// tools/cli_whisper_ggml.cpp: writes whisper.cpp's model file (see cli_whisper_ggml.h).
#include "cli_whisper_ggml.h"

#include <utility>

#include "core/dtype.h"
#include "core/error.h"

namespace autoglm::cli {

namespace {

void put_i32(std::ofstream& out, int32_t v) { out.write(reinterpret_cast<const char*>(&v), 4); }

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
}

bool is_conv_bias(const std::string& name) { return name == "encoder.conv1.bias" || name == "encoder.conv2.bias"; }

}  // namespace

std::string whisper_ggml_name(const std::string& hf_name) {
  static const std::pair<const char*, const char*> whole[] = {
      {"model.encoder.embed_positions.weight", "encoder.positional_embedding"},
      {"model.decoder.embed_positions.weight", "decoder.positional_embedding"},
      {"model.decoder.embed_tokens.weight", "decoder.token_embedding.weight"},
  };
  for (const auto& [from, to] : whole)
    if (hf_name == from) return to;
  std::string s = hf_name.rfind("model.", 0) == 0 ? hf_name.substr(6) : hf_name;
  // Longer keys first: "self_attn_layer_norm" before "self_attn.".
  static const std::pair<const char*, const char*> parts[] = {
      {"encoder.layer_norm.", "encoder.ln_post."}, {"decoder.layer_norm.", "decoder.ln."}, {".layers.", ".blocks."},
      {"self_attn_layer_norm", "attn_ln"}, {"encoder_attn_layer_norm", "cross_attn_ln"},
      {"final_layer_norm", "mlp_ln"}, {"self_attn.", "attn."}, {"encoder_attn.", "cross_attn."},
      {"q_proj", "query"}, {"k_proj", "key"}, {"v_proj", "value"}, {"out_proj", "out"}, {"fc1", "mlp.0"},
      {"fc2", "mlp.2"},
  };
  for (const auto& [from, to] : parts) replace_all(s, from, to);
  return s;
}

whisper_ggml_writer::whisper_ggml_writer(const std::string& path, const whisper_ggml_hparams& hp,
                                         const std::vector<float>& mel_filters, int32_t n_bins,
                                         const std::vector<std::string>& words)
    : path_(path), out_(path, std::ios::binary) {
  if (!out_) throw error(path + ": cannot open for writing");
  if (mel_filters.size() != size_t(hp.n_mels) * size_t(n_bins))
    throw error(path + ": mel filters hold " + std::to_string(mel_filters.size()) + " values, not n_mels x n_bins");
  put_i32(out_, 0x67676d6c);
  for (int32_t v : {hp.n_vocab, hp.n_audio_ctx, hp.n_audio_state, hp.n_audio_head, hp.n_audio_layer, hp.n_text_ctx,
                    hp.n_text_state, hp.n_text_head, hp.n_text_layer, hp.n_mels, int32_t(1)})
    put_i32(out_, v);
  put_i32(out_, hp.n_mels);
  put_i32(out_, n_bins);
  out_.write(reinterpret_cast<const char*>(mel_filters.data()), std::streamsize(mel_filters.size() * 4));
  put_i32(out_, int32_t(words.size()));
  for (const std::string& w : words) {
    put_i32(out_, int32_t(w.size()));
    out_.write(w.data(), std::streamsize(w.size()));
  }
}

void whisper_ggml_writer::add(const std::string& hf_name, const std::vector<int64_t>& shape, const float* values) {
  const std::string name = whisper_ggml_name(hf_name);
  std::vector<int64_t> dims = shape;
  if (is_conv_bias(name)) dims.push_back(1);  // [D] -> [D, 1], as the converter reshapes it
  const bool f32 = dims.size() < 2 || is_conv_bias(name) || name == "encoder.positional_embedding" ||
                   name == "decoder.positional_embedding";
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  put_i32(out_, int32_t(dims.size()));
  put_i32(out_, int32_t(name.size()));
  put_i32(out_, f32 ? 0 : 1);
  for (size_t i = dims.size(); i-- > 0;) put_i32(out_, int32_t(dims[i]));
  out_.write(name.data(), std::streamsize(name.size()));
  if (f32) {
    out_.write(reinterpret_cast<const char*>(values), std::streamsize(n * 4));
    return;
  }
  half_.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) half_[size_t(i)] = f32_to_f16(values[i]);
  out_.write(reinterpret_cast<const char*>(half_.data()), std::streamsize(n * 2));
}

uint64_t whisper_ggml_writer::finish() {
  out_.flush();
  if (!out_) throw error(path_ + ": write failed (disk full?)");
  const uint64_t bytes = uint64_t(out_.tellp());
  out_.close();
  return bytes;
}

}  // namespace autoglm::cli

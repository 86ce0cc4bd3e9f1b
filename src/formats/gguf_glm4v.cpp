// formats/gguf_glm4v.cpp: the HF <-> llama.cpp name maps, the q/k row permutation, and the tensor_source over
// llama.cpp's GLM-4.1V GGUF files (see gguf_glm4v.h). The writer is in gguf_glm4v_write.cpp.
#include "formats/gguf_glm4v.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/file_io.h"

namespace autoglm::glm4v_gguf {

namespace {

using json = nlohmann::json;

struct name_pair {
  const char* hf;
  const char* gguf;
};

// Per layer: HF "<layer prefix>.N.<hf>" <-> GGUF "<prefix>.N.<gguf>".
constexpr name_pair k_text_layer[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"post_self_attn_layernorm.weight", "post_attention_norm.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_up_proj.weight", "ffn_up.weight"},  // fused [2 * ffn, hidden]: gate rows first, as ggml's swiglu
    {"mlp.down_proj.weight", "ffn_down.weight"},
    {"post_mlp_layernorm.weight", "post_ffw_norm.weight"},
};
constexpr name_pair k_text_global[] = {
    {"model.language_model.embed_tokens.weight", "token_embd.weight"},
    {"model.language_model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};
constexpr const char* k_text_layer_prefix = "model.language_model.layers.";

constexpr name_pair k_vision_layer[] = {
    {"attn.qkv.weight", "attn_qkv.weight"}, {"attn.qkv.bias", "attn_qkv.bias"},
    {"attn.proj.weight", "attn_out.weight"}, {"attn.proj.bias", "attn_out.bias"},
    {"norm1.weight", "ln1.weight"},          {"norm2.weight", "ln2.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"}, {"mlp.gate_proj.bias", "ffn_gate.bias"},
    {"mlp.up_proj.weight", "ffn_up.weight"},     {"mlp.up_proj.bias", "ffn_up.bias"},
    {"mlp.down_proj.weight", "ffn_down.weight"}, {"mlp.down_proj.bias", "ffn_down.bias"},
};
constexpr name_pair k_vision_global[] = {
    {"model.visual.patch_embed.proj.bias", "v.patch_embd.bias"},
    {"model.visual.post_conv_layernorm.weight", "v.norm_embd.weight"},
    {"model.visual.embeddings.position_embedding.weight", "v.position_embd.weight"},
    {"model.visual.post_layernorm.weight", "v.post_ln.weight"},
    {"model.visual.downsample.weight", "mm.patch_merger.weight"},
    {"model.visual.downsample.bias", "mm.patch_merger.bias"},
    {"model.visual.merger.proj.weight", "mm.model.fc.weight"},
    {"model.visual.merger.proj.bias", "mm.model.fc.bias"},
    {"model.visual.merger.post_projection_norm.weight", "mm.post_norm.weight"},
    {"model.visual.merger.post_projection_norm.bias", "mm.post_norm.bias"},
    {"model.visual.merger.up_proj.weight", "mm.up.weight"},
    {"model.visual.merger.up_proj.bias", "mm.up.bias"},
    {"model.visual.merger.gate_proj.weight", "mm.gate.weight"},
    {"model.visual.merger.gate_proj.bias", "mm.gate.bias"},
    {"model.visual.merger.down_proj.weight", "mm.down.weight"},
    {"model.visual.merger.down_proj.bias", "mm.down.bias"},
};
constexpr const char* k_vision_layer_prefix = "model.visual.blocks.";
constexpr const char* k_patch_weight = "model.visual.patch_embed.proj.weight";

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

// "P<digits>.<rest>" -> (index, rest); false when `s` does not have that form.
bool split_layer(const std::string& s, const std::string& prefix, int64_t& index, std::string& rest) {
  if (!starts_with(s, prefix)) return false;
  size_t i = prefix.size(), j = i;
  while (j < s.size() && j - i < 6 && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
  if (j == i || j >= s.size() || s[j] != '.' || (s[i] == '0' && j - i > 1)) return false;
  index = std::stoll(s.substr(i, j - i));
  rest = s.substr(j + 1);
  return true;
}

template <size_t NL, size_t NG>
std::string map_name(const std::string& name, bool to_gguf, const name_pair (&layer)[NL], const name_pair (&global)[NG],
                     const std::string& hf_prefix, const std::string& gguf_prefix) {
  for (const name_pair& p : global)
    if (name == (to_gguf ? p.hf : p.gguf)) return to_gguf ? p.gguf : p.hf;
  int64_t idx;
  std::string rest;
  if (!split_layer(name, to_gguf ? hf_prefix : gguf_prefix, idx, rest)) return "";
  for (const name_pair& p : layer)
    if (rest == (to_gguf ? p.hf : p.gguf))
      return (to_gguf ? gguf_prefix : hf_prefix) + std::to_string(idx) + "." + (to_gguf ? p.gguf : p.hf);
  return "";
}

// Older transformers releases stored GLM-4.1V without the "language_model." level ("model.layers.0...") and
// the vision tower at top level ("visual.blocks.0..."); names are brought to today's layout first.
std::string modern_hf_name(const std::string& hf) {
  if (starts_with(hf, "model.language_model.") || starts_with(hf, "model.visual.") || hf == "lm_head.weight") return hf;
  if (starts_with(hf, "visual.")) return "model." + hf;
  if (starts_with(hf, "model.")) return "model.language_model." + hf.substr(6);
  return hf;
}

std::string q(const std::string& s) { return "'" + s + "'"; }

// The first token id whose text is `text`, or -1.
int64_t token_id(const std::vector<std::string>& tokens, const std::string& text) {
  auto it = std::find(tokens.begin(), tokens.end(), text);
  return it == tokens.end() ? -1 : int64_t(it - tokens.begin());
}

}  // namespace

std::string text_to_gguf(const std::string& hf) {
  return map_name(modern_hf_name(hf), true, k_text_layer, k_text_global, k_text_layer_prefix, "blk.");
}
std::string text_from_gguf(const std::string& gguf) {
  return map_name(gguf, false, k_text_layer, k_text_global, k_text_layer_prefix, "blk.");
}
std::string vision_to_gguf(const std::string& hf) {
  return map_name(modern_hf_name(hf), true, k_vision_layer, k_vision_global, k_vision_layer_prefix, "v.blk.");
}
std::string vision_from_gguf(const std::string& gguf) {
  return map_name(gguf, false, k_vision_layer, k_vision_global, k_vision_layer_prefix, "v.blk.");
}

void permute_qk_rows(const uint8_t* src, uint8_t* dst, int64_t n_heads, int64_t head_dim, int64_t rot_dim,
                     size_t row_bytes, bool to_neox) {
  AG_CHECK(rot_dim >= 0 && rot_dim <= head_dim && rot_dim % 2 == 0, "permute_qk_rows: bad rotary dimension");
  const int64_t half = rot_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    const uint8_t* s = src + size_t(h * head_dim) * row_bytes;
    uint8_t* d = dst + size_t(h * head_dim) * row_bytes;
    for (int64_t r = 0; r < head_dim; ++r) {
      // NeoX row r of the rotary part holds interleaved row 2r (first half) or 2(r - half) + 1 (second half).
      int64_t neox = r, inter = r;
      if (r < rot_dim) inter = r < half ? 2 * r : 2 * (r - half) + 1;
      const int64_t from = to_neox ? inter : neox, to = to_neox ? neox : inter;
      std::memcpy(d + size_t(to) * row_bytes, s + size_t(from) * row_bytes, row_bytes);
    }
  }
}

// ------------------------------------------------------------------------------------------------ source

std::unique_ptr<source> source::open(const std::string& text_path, const std::string& mmproj_path) {
  return from_files(std::make_unique<gguf_file>(text_path),
                    mmproj_path.empty() ? nullptr : std::make_unique<gguf_file>(mmproj_path));
}

std::unique_ptr<source> source::from_files(std::unique_ptr<gguf_file> text, std::unique_ptr<gguf_file> mmproj) {
  auto s = std::unique_ptr<source>(new source());
  s->location_ = text->path() + (mmproj ? " + " + mmproj->path() : " (no mmproj file)");
  s->text_ = std::move(text);
  s->mmproj_ = std::move(mmproj);
  s->load_text();
  if (s->mmproj_) s->load_vision();
  return s;
}

std::unique_ptr<source> source::open_dir(const std::string& dir) {
  std::vector<std::string> paths;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.path().extension() == ".gguf") paths.push_back(e.path().string());
  if (paths.empty()) return nullptr;
  std::sort(paths.begin(), paths.end());
  std::unique_ptr<gguf_file> text, mmproj;
  for (const std::string& p : paths) {
    auto f = std::make_unique<gguf_file>(p);
    const bool is_mmproj = f->find("general.architecture") && f->get_string("general.architecture") == "clip";
    std::unique_ptr<gguf_file>& slot = is_mmproj ? mmproj : text;
    if (slot)
      throw error(dir + ": two " + (is_mmproj ? "mmproj" : "text model") + " GGUF files, " + slot->path() + " and " + p +
                  "; keep one");
    slot = std::move(f);
  }
  if (!text) throw error(dir + ": only an mmproj GGUF file (" + mmproj->path() + "), no text model GGUF");
  return from_files(std::move(text), std::move(mmproj));
}

const tensor_source::entry* source::find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

void source::release(const std::string& name) const {
  auto it = entries_.find(name);
  if (it != entries_.end() && it->second.private_copy) it->second.data = tensor();
}

std::vector<std::string> source::names() const {
  std::vector<std::string> out;
  for (auto& [n, _] : entries_) out.push_back(n);
  return out;
}

void source::load_text() {
  const gguf_file& f = *text_;
  const std::string& path = f.path();
  const std::string arch = f.get_string("general.architecture");
  if (arch != "glm4")
    throw error(path + ": architecture '" + arch + "' is not llama.cpp's 'glm4' (the GLM-4.1V text model)");
  const int64_t hidden = f.get_int("glm4.embedding_length");
  const int64_t n_heads = f.get_int("glm4.attention.head_count");
  const int64_t n_kv = f.find("glm4.attention.head_count_kv") ? f.get_int("glm4.attention.head_count_kv") : n_heads;
  // Bounds far above any real model (9B: 4096 / 32 / 2 / 128) keep every product below in range.
  constexpr int64_t k_max = int64_t(1) << 20;
  if (hidden <= 0 || n_heads <= 0 || n_kv <= 0 || hidden > k_max || n_heads > k_max || n_heads % n_kv != 0)
    throw error(path + ": embedding_length " + std::to_string(hidden) + ", head_count " + std::to_string(n_heads) +
                " and head_count_kv " + std::to_string(n_kv) + " are inconsistent");
  const int64_t head_dim = f.find("glm4.attention.key_length") ? f.get_int("glm4.attention.key_length") : hidden / n_heads;
  const int64_t rot = f.find("glm4.rope.dimension_count") ? f.get_int("glm4.rope.dimension_count") : head_dim;
  if (head_dim <= 0 || head_dim > k_max || rot < 0 || rot > head_dim || rot % 2 != 0)
    throw error(path + ": rope.dimension_count " + std::to_string(rot) + " does not fit head size " +
                std::to_string(head_dim));
  // llama.cpp permutes q/k exactly when it runs M-RoPE (sections 0 and 1 non-zero: hparams.use_mrope()).
  std::vector<int64_t> sections;
  if (f.find("glm4.rope.dimension_sections")) sections = f.get_int_array("glm4.rope.dimension_sections");
  const bool mrope = sections.size() >= 2 && sections[0] > 0 && sections[1] > 0;

  for (const gguf_tensor_info& t : f.tensors()) {
    const std::string hf = text_from_gguf(t.name);
    if (hf.empty()) continue;  // not part of the GLM-4.1V decoder (e.g. rope_freqs): not served
    entry e;
    e.name = hf;
    e.file = path;
    e.shape = t.shape();
    e.data = f.view(t);
    const bool is_q = t.name.find(".attn_q.") != std::string::npos, is_k = t.name.find(".attn_k.") != std::string::npos;
    if (mrope && (is_q || is_k)) {
      if (e.shape.empty() || e.shape.size() > 2)
        throw error(path + ": tensor " + q(t.name) + " must have 1 or 2 dimensions, not " + std::to_string(e.shape.size()));
      const int64_t rows = e.shape[0];
      const int64_t heads = is_q ? n_heads : n_kv;
      if (rows != heads * head_dim)
        throw error(path + ": tensor " + q(t.name) + " has " + std::to_string(rows) + " rows, expected " +
                    std::to_string(heads) + " heads x " + std::to_string(head_dim));
      const tensor& v = e.data;
      size_t row_bytes;
      if (e.shape.size() == 1) {
        if (dtype_is_block(v.type())) throw error(path + ": tensor " + q(t.name) + " is a bias in a block type");
        row_bytes = dtype_size(v.type());
      } else {
        row_bytes = dtype_row_bytes(v.type(), v.cols());
      }
      tensor owned = tensor::empty_host(v.type(), v.shape());
      permute_qk_rows(static_cast<const uint8_t*>(v.data()), static_cast<uint8_t*>(owned.data()), heads, head_dim,
                      rot, row_bytes, /*to_neox=*/false);
      // The mapped pages are not read again: resident memory holds the copy only (0.4 GB of a 9B Q4_K model's q/k
      // would otherwise count twice).
      release_file_pages(t.data, t.n_bytes);
      e.data = owned;
      e.private_copy = true;
    }
    entries_.emplace(hf, std::move(e));
  }

  // config.json's text part, as Hugging Face writes it for GLM-4.1V.
  const gguf_tensor_info* embd = f.find_tensor("token_embd.weight");
  if (!embd || embd->ne.size() != 2) throw error(path + ": missing 2-D tensor 'token_embd.weight'");
  json rope = {{"rope_type", "default"}, {"partial_rotary_factor", double(rot) / double(head_dim)},
               {"rope_theta", f.find("glm4.rope.freq_base") ? f.get_float("glm4.rope.freq_base") : 10000.0}};
  if (mrope) {
    json sec = json::array();
    for (size_t i = 0; i < 3 && i < sections.size(); ++i) sec.push_back(sections[i]);
    rope["mrope_section"] = sec;
  }
  json text = {{"model_type", "glm4v_text"},
               {"hidden_size", hidden},
               {"intermediate_size", f.get_int("glm4.feed_forward_length")},
               {"num_hidden_layers", f.get_int("glm4.block_count")},
               {"num_attention_heads", n_heads},
               {"num_key_value_heads", n_kv},
               {"max_position_embeddings", f.get_int("glm4.context_length")},
               {"rms_norm_eps", f.get_float("glm4.attention.layer_norm_rms_epsilon")},
               {"vocab_size", embd->ne[1]},
               {"hidden_act", "silu"},
               {"attention_bias", f.find_tensor("blk.0.attn_q.bias") != nullptr},
               {"partial_rotary_factor", rope["partial_rotary_factor"]},
               {"rope_theta", rope["rope_theta"]},
               {"rope_parameters", rope}};
  if (f.find("glm4.attention.key_length")) text["head_dim"] = head_dim;
  json eos = json::array();
  for (const char* key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"})
    if (f.find(key)) eos.push_back(f.get_int(key));
  if (!eos.empty()) text["eos_token_id"] = eos;
  if (f.find("tokenizer.ggml.padding_token_id")) text["pad_token_id"] = f.get_int("tokenizer.ggml.padding_token_id");
  config_ = {{"architectures", {"Glm4vForConditionalGeneration"}},
             {"model_type", "glm4v"},
             {"tie_word_embeddings", f.find_tensor("output.weight") == nullptr},
             {"text_config", text}};
  if (f.find("tokenizer.ggml.tokens")) {
    const std::vector<std::string> tokens = f.get_string_array("tokenizer.ggml.tokens");
    const std::pair<const char*, const char*> specials[] = {
        {"image_token_id", "<|image|>"},           {"image_start_token_id", "<|begin_of_image|>"},
        {"image_end_token_id", "<|end_of_image|>"}, {"video_token_id", "<|video|>"},
        {"video_start_token_id", "<|begin_of_video|>"}, {"video_end_token_id", "<|end_of_video|>"}};
    for (auto& [key, text_of] : specials)
      if (int64_t id = token_id(tokens, text_of); id >= 0) config_[key] = id;
  }
}

void source::load_vision() {
  const gguf_file& f = *mmproj_;
  const std::string& path = f.path();
  const std::string arch = f.get_string("general.architecture");
  std::string proj = f.find("clip.projector_type") ? f.get_string("clip.projector_type") : "";
  if (proj.empty() && f.find("clip.vision.projector_type")) proj = f.get_string("clip.vision.projector_type");
  if (arch != "clip" || proj != "glm4v")
    throw error(path + ": not a GLM-4.1V mmproj file (architecture '" + arch + "', projector '" + proj +
                "'; expected 'clip' and 'glm4v')");
  for (const gguf_tensor_info& t : f.tensors()) {
    const std::string hf = vision_from_gguf(t.name);
    if (hf.empty()) continue;
    entry e;
    e.name = hf;
    e.file = path;
    e.shape = t.shape();
    e.data = f.view(t);
    entries_.emplace(hf, std::move(e));
  }
  // The Conv3d patch embedding [out, in, 2, p, p] comes back from its two frames [out, in, p, p].
  const gguf_tensor_info* f0 = f.find_tensor("v.patch_embd.weight");
  const gguf_tensor_info* f1 = f.find_tensor("v.patch_embd.weight.1");
  if (!f0 || !f1) throw error(path + ": the patch embedding needs both 'v.patch_embd.weight' and 'v.patch_embd.weight.1'");
  const std::vector<int64_t> s0 = f0->shape();
  if (s0.size() != 4 || f1->shape() != s0 || f0->type != f1->type)
    throw error(path + ": 'v.patch_embd.weight' and 'v.patch_embd.weight.1' must be two [out, in, p, p] tensors of one type");
  if (f0->n_elements() == 0) throw error(path + ": the patch embedding 'v.patch_embd.weight' is empty");
  const tensor v0 = f.view(*f0), v1 = f.view(*f1);
  if (dtype_is_block(v0.type())) throw error(path + ": the patch embedding must be F32, F16 or BF16");
  const size_t esz = dtype_size(v0.type());
  const int64_t frame = s0[2] * s0[3];  // elements of one [p, p] kernel
  entry e;
  e.name = k_patch_weight;
  e.file = path;
  e.shape = {s0[0], s0[1], 2, s0[2], s0[3]};
  e.data = tensor::empty_host(v0.type(), {s0[0], s0[1] * 2 * frame});
  const auto* a = static_cast<const uint8_t*>(v0.data());
  const auto* b = static_cast<const uint8_t*>(v1.data());
  auto* d = static_cast<uint8_t*>(e.data.data());
  const size_t block = size_t(frame) * esz;
  for (int64_t oc = 0; oc < s0[0] * s0[1]; ++oc) {
    std::memcpy(d + size_t(2 * oc) * block, a + size_t(oc) * block, block);
    std::memcpy(d + size_t(2 * oc + 1) * block, b + size_t(oc) * block, block);
  }
  entries_.emplace(e.name, std::move(e));

  const int64_t patch = f.get_int("clip.vision.patch_size");
  std::vector<double> mean = f.get_float_array("clip.vision.image_mean");
  std::vector<double> std_dev = f.get_float_array("clip.vision.image_std");
  json vision = {{"model_type", "glm4v"},
                 {"depth", f.get_int("clip.vision.block_count")},
                 {"hidden_size", f.get_int("clip.vision.embedding_length")},
                 {"intermediate_size", f.get_int("clip.vision.feed_forward_length")},
                 {"out_hidden_size", f.get_int("clip.vision.projection_dim")},
                 {"num_heads", f.get_int("clip.vision.attention.head_count")},
                 {"image_size", f.get_int("clip.vision.image_size")},
                 {"patch_size", patch},
                 {"in_channels", s0[1]},
                 {"temporal_patch_size", 2},
                 {"spatial_merge_size", f.find("clip.vision.spatial_merge_size")
                                            ? f.get_int("clip.vision.spatial_merge_size") : 2},
                 {"rms_norm_eps", f.find("clip.vision.attention.layer_norm_epsilon")
                                      ? f.get_float("clip.vision.attention.layer_norm_epsilon") : 1e-5},
                 {"hidden_act", f.find("clip.use_silu") && f.get_bool("clip.use_silu") ? "silu" : "gelu"},
                 {"attention_bias", f.find_tensor("v.blk.0.attn_qkv.bias") != nullptr},
                 {"image_mean", mean},
                 {"image_std", std_dev}};
  if (s0[2] != patch || s0[3] != patch)
    throw error(path + ": the patch embedding kernel is " + std::to_string(s0[2]) + "x" + std::to_string(s0[3]) +
                " but clip.vision.patch_size is " + std::to_string(patch));
  config_["vision_config"] = vision;
}

}  // namespace autoglm::glm4v_gguf

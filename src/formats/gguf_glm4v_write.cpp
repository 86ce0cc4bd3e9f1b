// formats/gguf_glm4v_write.cpp: writes a GLM-4.1V Hugging Face directory as llama.cpp's two GGUF files (text
// decoder "glm4" and mmproj "clip"/"glm4v"), with the metadata convert_hf_to_gguf.py writes for this model
// (Glm4Model / Glm4VVisionModel; sources in /work/notes/gguf_layout.md). Tensors are converted one at a time
// while the file streams, so memory holds one tensor beside the mapped checkpoint.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/file_io.h"
#include "core/quant_blocks.h"
#include "formats/gguf_glm4v.h"
#include "formats/json_file.h"
#include "formats/json_limits.h"
#include "formats/quantize.h"
#include "formats/safetensors.h"

namespace autoglm::glm4v_gguf {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// llama.cpp's LLAMA_FTYPE of a file whose matrices are `t` (informational: general.file_type).
uint32_t file_type_of(dtype t) {
  switch (t) {
    case dtype::F32: return 0;
    case dtype::F16: return 1;
    case dtype::Q4_0: return 2;
    case dtype::Q4_1: return 3;
    case dtype::Q8_0: return 7;
    case dtype::Q5_0: return 8;
    case dtype::Q5_1: return 9;
    case dtype::Q4_K: return 14;  // MOSTLY_Q4_K_S: every matrix Q4_K
    case dtype::Q5_K: return 16;  // MOSTLY_Q5_K_S
    case dtype::Q6_K: return 18;
    case dtype::BF16: return 32;
    default: throw error(std::string("gguf: cannot write matrices as ") + dtype_name(t));
  }
}

uint32_t ggml_id(dtype t) {
  uint32_t id;
  if (!ggml_from_dtype(t, id)) throw error(std::string("gguf: ") + dtype_name(t) + " has no GGUF type");
  return id;
}

// '*' matches any run of characters; everything else literally.
bool glob_match(const std::string& pat, const std::string& s) {
  size_t p = 0, i = 0, star = std::string::npos, mark = 0;
  while (i < s.size()) {
    if (p < pat.size() && pat[p] == '*') {
      star = p++;
      mark = i;
    } else if (p < pat.size() && pat[p] == s[i]) {
      ++p;
      ++i;
    } else if (star != std::string::npos) {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

bool ends_with(const std::string& s, const std::string& e) {
  return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0;
}

// The HF config with text_config's keys over the top level (as convert_hf_to_gguf.py reads hparams).
struct hf_model {
  std::string dir;
  std::unique_ptr<tensor_store> store;
  json config, text;
};

hf_model open_model(const std::string& dir) {
  hf_model m;
  m.dir = dir;
  m.config = read_json_file((fs::path(dir) / "config.json").string());
  if (!m.config.is_object()) throw error(dir + "/config.json: not a JSON object");
  m.text = m.config;
  if (m.config.contains("text_config") && m.config["text_config"].is_object())
    for (auto& [k, v] : m.config["text_config"].items()) m.text[k] = v;
  m.store = tensor_store::open_dir(dir);
  return m;
}

// Reads a tensor (F32 / F16 / BF16) into floats.
std::vector<float> to_f32(const tensor& t) {
  std::vector<float> out(size_t(t.n_elements()));
  const int64_t rows = t.rows(), cols = t.cols();
  for (int64_t r = 0; r < rows; ++r) quant::dequantize_row(t.type(), t.row(r), out.data() + r * cols, cols);
  return out;
}

// Writes floats as `t` (F32 / F16 / BF16 only).
void store_floats(const float* x, size_t n, dtype t, uint8_t* dst) {
  if (t == dtype::F32) {
    std::memcpy(dst, x, n * 4);
  } else {
    for (size_t i = 0; i < n; ++i) {
      const uint16_t h = t == dtype::F16 ? f32_to_f16(x[i]) : f32_to_bf16(x[i]);
      std::memcpy(dst + 2 * i, &h, 2);
    }
  }
}

std::string shape_str(const std::vector<int64_t>& s) { return tensor_source::shape_str(s); }

// Sort key: globals before layers before the output, layers in numeric order.
std::pair<int64_t, std::string> order_key(const std::string& gguf) {
  if (gguf == "token_embd.weight") return {-1, gguf};
  if (gguf == "output_norm.weight" || gguf == "output.weight") return {1 << 30, gguf};
  for (const char* prefix : {"blk.", "v.blk."}) {
    const std::string p = prefix;
    if (gguf.compare(0, p.size(), p) == 0) {
      size_t end = gguf.find('.', p.size());
      return {std::stoll(gguf.substr(p.size(), end - p.size())), gguf};
    }
  }
  return {-1, gguf};
}

void add_tokenizer(gguf_writer& w, const hf_model& m, const std::string& tokenizer_dir, int64_t vocab_size) {
  const fs::path dir(tokenizer_dir.empty() ? m.dir : tokenizer_dir);
  const std::string tok_path = (dir / "tokenizer.json").string();
  if (!fs::exists(fs::symlink_status(tok_path)))
    throw error(tok_path + ": not found; llama.cpp needs a vocabulary in the GGUF file (a random-weight checkpoint can "
                "borrow one: `autoglm quantize --tokenizer DIR`)");
  // A real tokenizer.json (151k tokens, 318k merges) is ~7 MB and ~1.3M JSON values.
  const json tok = read_json_file_bounded(tok_path, uint64_t(256) << 20, json_limits{64, 32'000'000});
  if (!tok.is_object() || !tok.contains("model") || !tok["model"].is_object() || !tok["model"].contains("vocab") ||
      !tok["model"]["vocab"].is_object())
    throw error(tok_path + ": missing object model.vocab (a BPE tokenizer is expected)");
  std::vector<std::string> tokens(static_cast<size_t>(vocab_size));
  std::vector<int64_t> types(size_t(vocab_size), 5);  // UNUSED: ids no token uses ([PADn] as convert writes)
  for (int64_t i = 0; i < vocab_size; ++i) tokens[size_t(i)] = "[PAD" + std::to_string(i) + "]";
  auto place = [&](int64_t id, const std::string& text, int64_t type, const std::string& what) {
    if (id < 0 || id >= vocab_size)
      throw error(tok_path + ": " + what + " id " + std::to_string(id) + " is outside the model's vocab_size " +
                  std::to_string(vocab_size));
    tokens[size_t(id)] = text;
    types[size_t(id)] = type;
  };
  for (auto& [text, id] : tok["model"]["vocab"].items()) {
    if (!id.is_number_integer()) throw error(tok_path + ": model.vocab['" + text + "'] is not an integer");
    place(id.get<int64_t>(), text, 1, "token '" + text + "'");  // NORMAL
  }
  std::map<std::string, int64_t> added;
  if (tok.contains("added_tokens") && tok["added_tokens"].is_array())
    for (const json& a : tok["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
          !a["content"].is_string())
        throw error(tok_path + ": added_tokens entries need an integer 'id' and a string 'content'");
      const std::string text = a["content"].get<std::string>();
      const bool special = a.value("special", false);
      // CONTROL for special tokens and those that look special (<|...|>), else USER_DEFINED: convert's rule.
      const bool looks_special = text.size() >= 4 && text.compare(0, 2, "<|") == 0 && ends_with(text, "|>");
      place(a["id"].get<int64_t>(), text, special || looks_special ? 3 : 4, "added token '" + text + "'");
      added[text] = a["id"].get<int64_t>();
    }
  std::vector<std::string> merges;
  if (tok["model"].contains("merges") && tok["model"]["merges"].is_array())
    for (const json& mg : tok["model"]["merges"]) {
      if (mg.is_string()) merges.push_back(mg.get<std::string>());
      else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string())
        merges.push_back(mg[0].get<std::string>() + " " + mg[1].get<std::string>());
      else throw error(tok_path + ": model.merges entries must be \"a b\" strings or [a, b] pairs");
    }
  w.set("tokenizer.ggml.model", gguf_value::of_string("gpt2"));
  w.set("tokenizer.ggml.pre", gguf_value::of_string("glm4"));
  w.set("tokenizer.ggml.tokens", gguf_value::of_strings(std::move(tokens)));
  w.set("tokenizer.ggml.token_type", gguf_value::of_ints(gguf_type::I32, types));
  w.set("tokenizer.ggml.merges", gguf_value::of_strings(std::move(merges)));
  // Glm4Model.set_vocab: <|endoftext|> is eos, unk and bos; <|user|> ends a turn.
  const std::pair<const char*, const char*> specials[] = {{"tokenizer.ggml.eos_token_id", "<|endoftext|>"},
                                                          {"tokenizer.ggml.eot_token_id", "<|user|>"},
                                                          {"tokenizer.ggml.unknown_token_id", "<|endoftext|>"},
                                                          {"tokenizer.ggml.bos_token_id", "<|endoftext|>"}};
  for (auto& [key, text] : specials)
    if (auto it = added.find(text); it != added.end()) w.set(key, gguf_value::of_uint(gguf_type::U32, uint64_t(it->second)));
  if (m.text.contains("pad_token_id") && m.text["pad_token_id"].is_number_integer() && m.text["pad_token_id"].get<int64_t>() >= 0)
    w.set("tokenizer.ggml.padding_token_id", gguf_value::of_uint(gguf_type::U32, m.text["pad_token_id"].get<uint64_t>()));
  // The chat template: chat_template.jinja beside the checkpoint, else tokenizer_config.json's.
  const fs::path jinja = dir / "chat_template.jinja";
  if (fs::exists(jinja)) {
    w.set("tokenizer.chat_template", gguf_value::of_string(read_regular_file(jinja.string(), uint64_t(4) << 20)));
  } else if (auto tc = read_json_file_if_exists((dir / "tokenizer_config.json").string(), uint64_t(64) << 20)) {
    if (tc->is_object() && tc->contains("chat_template") && (*tc)["chat_template"].is_string())
      w.set("tokenizer.chat_template", gguf_value::of_string((*tc)["chat_template"].get<std::string>()));
  }
}

// Adds one HF tensor under `gguf_name`, converted to its stored type; `permute` reorders q/k rows to NeoX.
struct qk_permutation {
  int64_t n_heads = 0, head_dim = 0, rot = 0;
};

void add_converted(gguf_writer& w, const tensor_source::entry& e, const std::string& gguf_name, dtype type,
                   const qk_permutation* perm, thread_pool* pool) {
  const tensor_source::entry* src = &e;
  w.add_tensor(gguf_name, ggml_id(type), e.shape, [src, type, perm, pool](uint8_t* dst, size_t n_bytes) {
    const tensor& t = src->data;
    tensor q = quant::quantize_tensor(t, type, nullptr, pool);
    AG_CHECK(q.n_bytes() == n_bytes, "gguf writer: converted size differs from the declared size");
    if (!perm) {
      std::memcpy(dst, q.data(), n_bytes);
      return;
    }
    const size_t row_bytes = src->shape.size() == 1 ? dtype_size(type) : dtype_row_bytes(type, q.cols());
    permute_qk_rows(static_cast<const uint8_t*>(q.data()), dst, perm->n_heads, perm->head_dim, perm->rot, row_bytes,
                    /*to_neox=*/true);
  });
}

void log_tensor(const write_log& log, const std::string& gguf_name, const tensor_source::entry& e, dtype type) {
  if (log) log(gguf_name + " " + dtype_name(e.data.type()) + " " + shape_str(e.shape) + " -> " + dtype_name(type));
}

int64_t get_int(const json& obj, const std::string& key, const std::string& file, int64_t lo, int64_t hi) {
  return json_fields(obj, file).integer(key, lo, hi);
}

}  // namespace

dtype stored_type(const std::string& hf, const std::vector<int64_t>& shape, const write_options& opt) {
  if (shape.size() <= 1 || ends_with(hf, "norm.weight")) return dtype::F32;
  // The convolutions and the position table stay in float, as convert writes them (F16 only in an F16 file).
  if (ends_with(hf, "patch_embed.proj.weight") || ends_with(hf, "downsample.weight"))
    return opt.type == dtype::F16 ? dtype::F16 : dtype::F32;
  if (ends_with(hf, "position_embedding.weight")) return dtype::F32;
  dtype t = opt.type;
  for (auto& [pattern, kept] : opt.keep)
    if (glob_match(pattern, hf)) {
      t = kept;
      break;
    }
  return quant::fallback_type(t, shape.back());
}

uint64_t write_text(const std::string& hf_dir, const std::string& out_path, const write_options& opt,
                    const write_log& log) {
  hf_model m = open_model(hf_dir);
  const std::string cfg = hf_dir + "/config.json";
  const json& t = m.text;
  const int64_t hidden = get_int(t, "hidden_size", cfg, 1, 1 << 20);
  const int64_t n_heads = get_int(t, "num_attention_heads", cfg, 1, 1 << 16);
  const int64_t n_kv = t.contains("num_key_value_heads") ? get_int(t, "num_key_value_heads", cfg, 1, n_heads) : n_heads;
  const int64_t head_dim = t.contains("head_dim") ? get_int(t, "head_dim", cfg, 1, 1 << 16) : hidden / n_heads;
  const int64_t n_layers = get_int(t, "num_hidden_layers", cfg, 1, 1 << 16);
  const int64_t vocab = get_int(t, "vocab_size", cfg, 1, int64_t(1) << 31);
  // rope_parameters (transformers >= 5) or rope_scaling (older), with the top-level keys as fallbacks.
  json rope = t.contains("rope_parameters") && t["rope_parameters"].is_object() ? t["rope_parameters"]
              : t.contains("rope_scaling") && t["rope_scaling"].is_object() ? t["rope_scaling"] : json::object();
  json_fields rf(rope, cfg, "rope_parameters."), tf(t, cfg);
  const double partial = rf.number_or("partial_rotary_factor", tf.number_or("partial_rotary_factor", 0.5, 0, 1), 0, 1);
  const double theta = rf.number_or("rope_theta", tf.number_or("rope_theta", 10000.0, 1, 1e12), 1, 1e12);
  const int64_t rot = int64_t(double(head_dim) * partial);
  if (rot % 2 != 0) throw error(cfg + ": the rotary dimension " + std::to_string(rot) + " is odd");
  std::vector<int64_t> sections;
  if (rope.contains("mrope_section")) {
    if (!rope["mrope_section"].is_array()) throw error(cfg + ": mrope_section must be an array of integers");
    for (const json& s : rope["mrope_section"]) {
      if (!s.is_number_integer() || s.get<int64_t>() < 0) throw error(cfg + ": mrope_section must hold integers >= 0");
      sections.push_back(s.get<int64_t>());
    }
    if (sections.size() > 4) throw error(cfg + ": mrope_section has more than 4 entries");
    sections.resize(4, 0);
  }
  const bool mrope = !sections.empty();

  gguf_writer w;
  w.set("general.architecture", gguf_value::of_string("glm4"));
  w.set("general.type", gguf_value::of_string("model"));
  w.set("general.name", gguf_value::of_string(opt.name.empty() ? fs::path(hf_dir).filename().string() : opt.name));
  w.set("general.quantization_version", gguf_value::of_uint(gguf_type::U32, 2));
  w.set("general.file_type", gguf_value::of_uint(gguf_type::U32, file_type_of(opt.type)));
  auto u32 = [](int64_t v) { return gguf_value::of_uint(gguf_type::U32, uint64_t(v)); };
  w.set("glm4.block_count", u32(n_layers));
  w.set("glm4.context_length", u32(get_int(t, "max_position_embeddings", cfg, 1, int64_t(1) << 31)));
  w.set("glm4.embedding_length", u32(hidden));
  w.set("glm4.feed_forward_length", u32(get_int(t, "intermediate_size", cfg, 1, int64_t(1) << 31)));
  w.set("glm4.attention.head_count", u32(n_heads));
  w.set("glm4.attention.head_count_kv", u32(n_kv));
  if (mrope) w.set("glm4.rope.dimension_sections", gguf_value::of_ints(gguf_type::I32, sections));
  w.set("glm4.rope.freq_base", gguf_value::of_float(gguf_type::F32, theta));
  w.set("glm4.attention.layer_norm_rms_epsilon",
        gguf_value::of_float(gguf_type::F32, tf.number_or("rms_norm_eps", 1e-5, 0, 1)));
  if (t.contains("head_dim")) {
    w.set("glm4.attention.key_length", u32(head_dim));
    w.set("glm4.attention.value_length", u32(head_dim));
  }
  w.set("glm4.rope.dimension_count", u32(rot));
  add_tokenizer(w, m, opt.tokenizer_dir, vocab);

  std::vector<std::pair<std::pair<int64_t, std::string>, std::string>> order;  // (key, hf name)
  for (const std::string& hf : m.store->names()) {
    const std::string gg = text_to_gguf(hf);
    if (!gg.empty()) order.push_back({order_key(gg), hf});
    else if (vision_to_gguf(hf).empty() && hf.find("patch_embed.proj.weight") == std::string::npos)
      throw error(m.store->at(hf).file + ": tensor '" + hf + "' is not part of GLM-4.1V's layout");
  }
  std::sort(order.begin(), order.end());
  // The producers run inside w.write() below, while these live.
  const qk_permutation perms[2] = {{n_heads, head_dim, rot}, {n_kv, head_dim, rot}};
  for (auto& [key, hf] : order) {
    const tensor_source::entry& e = m.store->at(hf);
    const std::string gg = key.second;
    const dtype type = stored_type(hf, e.shape, opt);
    const qk_permutation* perm = nullptr;
    if (mrope && gg.find(".attn_q.") != std::string::npos) perm = &perms[0];
    if (mrope && gg.find(".attn_k.") != std::string::npos) perm = &perms[1];
    if (perm && e.shape[0] != perm->n_heads * head_dim)
      throw error(e.file + ": tensor '" + hf + "' has " + std::to_string(e.shape[0]) + " rows, expected " +
                  std::to_string(perm->n_heads * head_dim));
    add_converted(w, e, gg, type, perm, opt.pool);
    log_tensor(log, gg, e, type);
  }
  return w.write(out_path);
}

uint64_t write_mmproj(const std::string& hf_dir, const std::string& out_path, const write_options& opt,
                      const write_log& log) {
  hf_model m = open_model(hf_dir);
  const std::string cfg = hf_dir + "/config.json";
  if (!m.config.contains("vision_config") || !m.config["vision_config"].is_object())
    throw error(cfg + ": no vision_config: nothing to write to an mmproj file");
  const json& v = m.config["vision_config"];
  const json pre = read_json_file((fs::path(hf_dir) / "preprocessor_config.json").string());
  auto floats = [&](const char* key) {
    std::vector<double> out;
    if (!pre.contains(key) || !pre[key].is_array()) throw error(hf_dir + "/preprocessor_config.json: missing array '" + key + "'");
    for (const json& x : pre[key]) {
      if (!x.is_number()) throw error(hf_dir + "/preprocessor_config.json: " + key + " must hold numbers");
      out.push_back(x.get<double>());
    }
    return out;
  };
  auto u32 = [](int64_t x) { return gguf_value::of_uint(gguf_type::U32, uint64_t(x)); };
  const std::string vf = cfg + " vision_config";
  gguf_writer w;
  w.set("general.architecture", gguf_value::of_string("clip"));
  w.set("general.type", gguf_value::of_string("mmproj"));
  w.set("general.name", gguf_value::of_string(opt.name.empty() ? fs::path(hf_dir).filename().string() : opt.name));
  w.set("general.quantization_version", gguf_value::of_uint(gguf_type::U32, 2));
  w.set("general.file_type", gguf_value::of_uint(gguf_type::U32, file_type_of(opt.type)));
  w.set("clip.has_vision_encoder", gguf_value::of_bool(true));
  w.set("clip.vision.projection_dim", u32(get_int(m.text, "hidden_size", cfg, 1, 1 << 20)));
  w.set("clip.vision.image_size", u32(get_int(v, "image_size", vf, 1, 1 << 20)));
  w.set("clip.vision.patch_size", u32(get_int(v, "patch_size", vf, 1, 1 << 10)));
  w.set("clip.vision.embedding_length", u32(get_int(v, "hidden_size", vf, 1, 1 << 20)));
  w.set("clip.vision.feed_forward_length", u32(get_int(v, "intermediate_size", vf, 1, 1 << 24)));
  w.set("clip.vision.block_count", u32(get_int(v, "depth", vf, 1, 1 << 12)));
  w.set("clip.vision.attention.head_count", u32(get_int(v, "num_heads", vf, 1, 1 << 12)));
  w.set("clip.vision.image_mean", gguf_value::of_floats(gguf_type::F32, floats("image_mean")));
  w.set("clip.vision.image_std", gguf_value::of_floats(gguf_type::F32, floats("image_std")));
  w.set("clip.projector_type", gguf_value::of_string("glm4v"));
  const std::string act = v.value("hidden_act", "silu");
  if (act == "silu") w.set("clip.use_silu", gguf_value::of_bool(true));
  if (act == "gelu") w.set("clip.use_gelu", gguf_value::of_bool(true));
  w.set("clip.vision.attention.layer_norm_epsilon",
        gguf_value::of_float(gguf_type::F32, json_fields(v, vf).number_or("rms_norm_eps", 1e-5, 0, 1)));

  std::vector<std::pair<std::pair<int64_t, std::string>, std::string>> order;
  const tensor_source::entry* patch = nullptr;
  for (const std::string& hf : m.store->names()) {
    if (hf == "model.visual.patch_embed.proj.weight" || hf == "visual.patch_embed.proj.weight") {
      patch = &m.store->at(hf);
      continue;
    }
    const std::string gg = vision_to_gguf(hf);
    if (!gg.empty()) order.push_back({order_key(gg), hf});
  }
  if (!patch) throw error(hf_dir + ": no tensor 'model.visual.patch_embed.proj.weight'");
  // The Conv3d kernel [out, in, 2, p, p] becomes two Conv2d kernels, one per temporal frame.
  const std::vector<int64_t>& ps = patch->shape;
  if (ps.size() != 5 || ps[2] != 2)
    throw error(patch->file + ": patch_embed.proj.weight has shape " + shape_str(ps) + ", expected [out, in, 2, p, p]");
  const dtype ptype = stored_type(patch->name, ps, opt);
  for (int frame = 0; frame < 2; ++frame) {
    const std::string gg = frame == 0 ? "v.patch_embd.weight" : "v.patch_embd.weight.1";
    w.add_tensor(gg, ggml_id(ptype), {ps[0], ps[1], ps[3], ps[4]}, [patch, ps, ptype, frame](uint8_t* dst, size_t) {
      const std::vector<float> all = to_f32(patch->data);
      const size_t k = size_t(ps[3] * ps[4]);
      std::vector<float> one(size_t(ps[0] * ps[1]) * k);
      for (size_t oc = 0; oc < size_t(ps[0] * ps[1]); ++oc)
        std::memcpy(one.data() + oc * k, all.data() + (2 * oc + size_t(frame)) * k, k * 4);
      store_floats(one.data(), one.size(), ptype, dst);
    });
    if (log) log(gg + " " + dtype_name(patch->data.type()) + " " + shape_str(ps) + " frame " + std::to_string(frame) +
                 " -> " + dtype_name(ptype));
  }
  std::sort(order.begin(), order.end());
  for (auto& [key, hf] : order) {
    const tensor_source::entry& e = m.store->at(hf);
    const dtype type = stored_type(hf, e.shape, opt);
    if (e.shape.size() > 2) {
      // The 2x2 downsampling convolution keeps its 4-D shape; floats only (stored_type says F32 / F16).
      const tensor_source::entry* src = &e;
      w.add_tensor(key.second, ggml_id(type), e.shape, [src, type](uint8_t* dst, size_t) {
        const std::vector<float> all = to_f32(src->data);
        store_floats(all.data(), all.size(), type, dst);
      });
    } else {
      add_converted(w, e, key.second, type, nullptr, opt.pool);
    }
    log_tensor(log, key.second, e, type);
  }
  return w.write(out_path);
}

}  // namespace autoglm::glm4v_gguf

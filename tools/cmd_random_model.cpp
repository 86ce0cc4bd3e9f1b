// tools/cmd_random_model.cpp: `autoglm random-model`: writes a Glm4vForConditionalGeneration checkpoint with
// random weights in the real Hugging Face layout (config.json + safetensors shards + index), for benchmarks:
// speed does not depend on weight values, and the real weights cannot be downloaded here.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "command.h"
#include "core/dtype.h"
#include "core/error.h"

namespace autoglm::cli {

namespace {

using json = nlohmann::json;

struct tensor_spec {
  std::string name;
  std::vector<int64_t> shape;
  enum kind_t { MATRIX, NORM, BIAS } kind;
};

// The text decoder's shape; the defaults are GLM-4.1V-9B's (spec section 1). Smaller shapes (e.g. 1.5B-class:
// hidden 2048, 16 heads, ffn 6848) are for benchmarks against peers at those sizes.
struct text_dims {
  int hidden = 4096, intermediate = 13696, heads = 32, kv_heads = 2;
};

// The GLM-4.1V-9B dimensions (spec section 1), with the layer counts and text dimensions overridable.
json real_config(int n_layers, int vision_depth, int vocab, const text_dims& d) {
  // Special ids keep GLM-4's offsets from <|endoftext|> (151329 in the real vocabulary).
  const int b = std::min(151329, vocab - 32);
  json text = {{"vocab_size", vocab}, {"hidden_size", d.hidden}, {"intermediate_size", d.intermediate}, {"num_hidden_layers", n_layers},
               {"num_attention_heads", d.heads}, {"num_key_value_heads", d.kv_heads}, {"hidden_act", "silu"},
               {"max_position_embeddings", 65536}, {"rms_norm_eps", 1e-5}, {"rope_theta", 10000.0},
               {"partial_rotary_factor", 0.5}, {"attention_bias", true},
               {"rope_scaling", {{"type", "default"}, {"mrope_section", {8, 12, 12}}}},
               {"eos_token_id", {b, b + 7, b + 9}}, {"pad_token_id", b}, {"model_type", "glm4v_text"}};
  json vision = {{"depth", vision_depth}, {"hidden_size", 1536}, {"num_heads", 12}, {"patch_size", 14},
                 {"temporal_patch_size", 2}, {"spatial_merge_size", 2}, {"image_size", 336}, {"in_channels", 3},
                 {"out_hidden_size", d.hidden}, {"intermediate_size", d.intermediate}, {"hidden_act", "silu"}, {"rms_norm_eps", 1e-5},
                 {"attention_bias", false}, {"model_type", "glm4v"}};
  return {{"architectures", {"Glm4vForConditionalGeneration"}}, {"model_type", "glm4v"}, {"torch_dtype", "bfloat16"},
          {"text_config", text}, {"vision_config", vision}, {"image_token_id", b + 14}, {"video_token_id", b + 15},
          {"image_start_token_id", b + 10}, {"image_end_token_id", b + 11}, {"video_start_token_id", b + 12},
          {"video_end_token_id", b + 13}, {"tie_word_embeddings", false}};
}

std::vector<tensor_spec> tensor_list(const json& cfg) {
  const json& t = cfg["text_config"];
  const json& v = cfg["vision_config"];
  int64_t H = t["hidden_size"], I = t["intermediate_size"], V = t["vocab_size"], L = t["num_hidden_layers"];
  int64_t nh = t["num_attention_heads"], nkv = t["num_key_value_heads"], hd = H / nh;
  std::vector<tensor_spec> s;
  s.push_back({"model.language_model.embed_tokens.weight", {V, H}, tensor_spec::MATRIX});
  for (int64_t i = 0; i < L; ++i) {
    std::string p = "model.language_model.layers." + std::to_string(i) + ".";
    for (auto n : {"input_layernorm", "post_self_attn_layernorm", "post_attention_layernorm", "post_mlp_layernorm"})
      s.push_back({p + n + ".weight", {H}, tensor_spec::NORM});
    s.push_back({p + "self_attn.q_proj.weight", {nh * hd, H}, tensor_spec::MATRIX});
    s.push_back({p + "self_attn.q_proj.bias", {nh * hd}, tensor_spec::BIAS});
    s.push_back({p + "self_attn.k_proj.weight", {nkv * hd, H}, tensor_spec::MATRIX});
    s.push_back({p + "self_attn.k_proj.bias", {nkv * hd}, tensor_spec::BIAS});
    s.push_back({p + "self_attn.v_proj.weight", {nkv * hd, H}, tensor_spec::MATRIX});
    s.push_back({p + "self_attn.v_proj.bias", {nkv * hd}, tensor_spec::BIAS});
    s.push_back({p + "self_attn.o_proj.weight", {H, nh * hd}, tensor_spec::MATRIX});
    s.push_back({p + "mlp.gate_up_proj.weight", {2 * I, H}, tensor_spec::MATRIX});
    s.push_back({p + "mlp.down_proj.weight", {H, I}, tensor_spec::MATRIX});
  }
  s.push_back({"model.language_model.norm.weight", {H}, tensor_spec::NORM});
  s.push_back({"lm_head.weight", {V, H}, tensor_spec::MATRIX});
  int64_t D = v["depth"], VH = v["hidden_size"], VO = v["out_hidden_size"], VI = v["intermediate_size"];
  int64_t P = v["patch_size"], T = v["temporal_patch_size"], C = v["in_channels"], G = int64_t(v["image_size"]) / P;
  s.push_back({"model.visual.patch_embed.proj.weight", {VH, C, T, P, P}, tensor_spec::MATRIX});
  s.push_back({"model.visual.patch_embed.proj.bias", {VH}, tensor_spec::BIAS});
  s.push_back({"model.visual.post_conv_layernorm.weight", {VH}, tensor_spec::NORM});
  s.push_back({"model.visual.embeddings.position_embedding.weight", {G * G, VH}, tensor_spec::MATRIX});
  for (int64_t j = 0; j < D; ++j) {
    std::string p = "model.visual.blocks." + std::to_string(j) + ".";
    s.push_back({p + "norm1.weight", {VH}, tensor_spec::NORM});
    s.push_back({p + "norm2.weight", {VH}, tensor_spec::NORM});
    s.push_back({p + "attn.qkv.weight", {3 * VH, VH}, tensor_spec::MATRIX});
    s.push_back({p + "attn.proj.weight", {VH, VH}, tensor_spec::MATRIX});
    s.push_back({p + "mlp.gate_proj.weight", {VO, VH}, tensor_spec::MATRIX});
    s.push_back({p + "mlp.up_proj.weight", {VO, VH}, tensor_spec::MATRIX});
    s.push_back({p + "mlp.down_proj.weight", {VH, VO}, tensor_spec::MATRIX});
  }
  s.push_back({"model.visual.post_layernorm.weight", {VH}, tensor_spec::NORM});
  s.push_back({"model.visual.downsample.weight", {VO, VH, 2, 2}, tensor_spec::MATRIX});
  s.push_back({"model.visual.downsample.bias", {VO}, tensor_spec::BIAS});
  s.push_back({"model.visual.merger.proj.weight", {VO, VO}, tensor_spec::MATRIX});
  s.push_back({"model.visual.merger.post_projection_norm.weight", {VO}, tensor_spec::NORM});
  s.push_back({"model.visual.merger.post_projection_norm.bias", {VO}, tensor_spec::BIAS});
  s.push_back({"model.visual.merger.gate_proj.weight", {VI, VO}, tensor_spec::MATRIX});
  s.push_back({"model.visual.merger.up_proj.weight", {VI, VO}, tensor_spec::MATRIX});
  s.push_back({"model.visual.merger.down_proj.weight", {VO, VI}, tensor_spec::MATRIX});
  return s;
}

// Fills bf16 values uniformly in [-a, a] (a = sqrt(3 / fan_in): unit-variance outputs) with a fast PRNG.
void fill_random(uint16_t* out, int64_t n, const tensor_spec& t, uint64_t seed) {
  if (t.kind == tensor_spec::NORM) {
    std::fill(out, out + n, f32_to_bf16(1.0f));
    return;
  }
  int64_t fan_in = 1;
  for (size_t i = 1; i < t.shape.size(); ++i) fan_in *= t.shape[i];
  const float a = t.kind == tensor_spec::BIAS ? 0.02f : std::sqrt(3.0f / float(std::max<int64_t>(fan_in, 1)));
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t i = 0; i < n; ++i) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    float u = float(s >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
    out[i] = f32_to_bf16(u * a);
  }
}

int run_random_model(int argc, char** argv) {
  CLI::App app{"Write a random-weight GLM-4.1V checkpoint with the real 9B dimensions (for benchmarks)"};
  std::string out_dir;
  int layers = 40, vision_depth = 24, vocab = 151552;
  text_dims dims;
  double shard_gb = 5.0;
  bool config_only = false;
  app.add_option("-o,--out", out_dir, "output directory")->required();
  app.add_option("--layers", layers, "text decoder layers (real: 40)");
  app.add_option("--vision-depth", vision_depth, "ViT blocks (real: 24)");
  app.add_option("--vocab", vocab, "vocabulary rows (real: 151552; must exceed the special token ids 151329..151344 for real prompts)");
  app.add_option("--hidden", dims.hidden, "text hidden size (real: 4096; also the vision merger's output)");
  app.add_option("--intermediate", dims.intermediate, "text MLP width (real: 13696)");
  app.add_option("--heads", dims.heads, "attention heads (real: 32; head dim = hidden / heads, 128 for the real M-RoPE sections)");
  app.add_option("--kv-heads", dims.kv_heads, "key/value heads (real: 2)");
  app.add_option("--shard-gb", shard_gb, "maximum shard size in GB");
  app.add_flag("--config-only", config_only, "write only the JSON files (config, generation and preprocessor configs)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // The special ids sit 0..15 above vocab - 32 (or above 151329), so a smaller vocabulary could not hold them.
  if (layers < 1 || layers > 1024 || vision_depth < 1 || vision_depth > 1024 || vocab < 32 || vocab > (1 << 24))
    throw error("--layers and --vision-depth must be between 1 and 1024, --vocab between 32 and 16777216");
  if (!(shard_gb > 0.0)) throw error("--shard-gb must be positive");
  // The M-RoPE sections (8, 12, 12) cover half of a 128-wide head; other head sizes would need other sections.
  if (dims.heads < 1 || dims.kv_heads < 1 || dims.heads % dims.kv_heads != 0 || dims.hidden != dims.heads * 128 ||
      dims.intermediate < 1 || dims.intermediate > (1 << 20))
    throw error("--hidden must be 128 x --heads, --heads a multiple of --kv-heads, --intermediate between 1 and 1048576");
  std::filesystem::create_directories(out_dir);
  json cfg = real_config(layers, vision_depth, vocab, dims);
  std::ofstream(out_dir + "/config.json") << cfg.dump(2);
  std::ofstream(out_dir + "/generation_config.json")
      << json{{"do_sample", true}, {"temperature", 0.8}, {"top_p", 0.6}, {"top_k", 2}, {"eos_token_id", cfg["text_config"]["eos_token_id"]}}.dump(2);
  std::ofstream(out_dir + "/preprocessor_config.json")
      << json{{"image_processor_type", "Glm4vImageProcessor"}, {"size", {{"shortest_edge", 12544}, {"longest_edge", 9633792}}},
              {"patch_size", 14}, {"temporal_patch_size", 2}, {"merge_size", 2},
              {"image_mean", {0.48145466, 0.4578275, 0.40821073}}, {"image_std", {0.26862954, 0.26130258, 0.27577711}}}
             .dump(2);
  if (config_only) return 0;

  auto specs = tensor_list(cfg);
  // Group tensors into shards of at most shard_gb.
  std::vector<std::vector<const tensor_spec*>> shards(1);
  uint64_t cur = 0, total = 0;
  const uint64_t limit = uint64_t(shard_gb * 1e9);
  for (auto& t : specs) {
    uint64_t bytes = 2;
    for (int64_t d : t.shape) bytes *= uint64_t(d);
    if (cur > 0 && cur + bytes > limit) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back().push_back(&t);
    cur += bytes;
    total += bytes;
  }
  json weight_map = json::object();
  uint64_t seed = 1;
  for (size_t si = 0; si < shards.size(); ++si) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", si + 1, shards.size());
    json header = json::object();
    uint64_t off = 0;
    for (auto* t : shards[si]) {
      uint64_t bytes = 2;
      for (int64_t d : t->shape) bytes *= uint64_t(d);
      header[t->name] = {{"dtype", "BF16"}, {"shape", t->shape}, {"data_offsets", {off, off + bytes}}};
      off += bytes;
      weight_map[t->name] = name;
    }
    std::string h = header.dump();
    while ((h.size() + 8) % 8) h += ' ';  // align the data section
    std::ofstream out(out_dir + "/" + name, std::ios::binary);
    uint64_t len = h.size();
    out.write(reinterpret_cast<const char*>(&len), 8);
    out.write(h.data(), std::streamsize(h.size()));
    std::vector<uint16_t> buf;
    for (auto* t : shards[si]) {
      int64_t n = 1;
      for (int64_t d : t->shape) n *= d;
      buf.resize(size_t(n));
      // Split the fill over the cores: the PRNG dominates otherwise.
      int nt = int(std::max(1u, std::thread::hardware_concurrency()));
      std::vector<std::thread> th;
      for (int k = 0; k < nt; ++k)
        th.emplace_back([&, k] {
          int64_t a = n * k / nt, b = n * (k + 1) / nt;
          fill_random(buf.data() + a, b - a, *t, seed * 1000 + uint64_t(k));
        });
      for (auto& x : th) x.join();
      ++seed;
      out.write(reinterpret_cast<const char*>(buf.data()), std::streamsize(n * 2));
    }
    if (!out) throw error(out_dir + "/" + name + ": write failed (disk full?)");
    std::fprintf(stderr, "wrote %s (%.2f GB)\n", name, double(off) / 1e9);
  }
  std::ofstream(out_dir + "/model.safetensors.index.json") << json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(1);
  std::fprintf(stderr, "random-weight GLM-4.1V checkpoint: %zu tensors, %.2f GB in %s\n", specs.size(), double(total) / 1e9, out_dir.c_str());
  return 0;
}

}  // namespace

AUTOGLM_COMMAND("random-model", "write a random-weight checkpoint with the real 9B dimensions (benchmarks)", run_random_model);

}  // namespace autoglm::cli

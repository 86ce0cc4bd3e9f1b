// GLM-4.1V in llama.cpp's GGUF layout: the demo checkpoint written as the text + mmproj GGUF files and read back
// through the GGUF tensor_source gives every Hugging Face tensor back with its name, shape and values (the q/k
// permutation and the patch-embedding split undone); the files carry the names, types and metadata llama.cpp's
// loader reads (convert_hf_to_gguf.py's, see /work/notes/gguf_layout.md); quantized files keep the layout.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <tuple>

#include "core/error.h"
#include "core/quant_blocks.h"
#include "formats/gguf_glm4v.h"
#include "formats/safetensors.h"

using namespace autoglm;
namespace fs = std::filesystem;
namespace g = autoglm::glm4v_gguf;

namespace {

std::string temp_dir() {
  auto d = fs::temp_directory_path() / ("autoglm_gguf4v_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

const std::string k_demo = std::string(AUTOGLM_SOURCE_DIR) + "/models/demo";

std::vector<float> floats(const tensor& t) {
  std::vector<float> out(size_t(t.n_elements()));
  const int64_t rows = t.rows(), cols = t.cols();
  for (int64_t r = 0; r < rows; ++r) quant::dequantize_row(t.type(), t.row(r), out.data() + r * cols, cols);
  return out;
}

}  // namespace

TEST(gguf_glm4v, name_maps_round_trip_every_demo_tensor) {
  auto store = tensor_store::open_dir(k_demo);
  int n_text = 0, n_vision = 0;
  for (const std::string& hf : store->names()) {
    const std::string t = g::text_to_gguf(hf), v = g::vision_to_gguf(hf);
    if (hf == "model.visual.patch_embed.proj.weight") {
      EXPECT_TRUE(t.empty() && v.empty());  // two GGUF tensors, handled by the writer and the source
      continue;
    }
    ASSERT_NE(t.empty(), v.empty()) << hf << " must map to exactly one of the two files";
    if (!t.empty()) {
      EXPECT_EQ(g::text_from_gguf(t), hf);
      EXPECT_LE(t.size(), gguf_file::max_name_bytes);
      ++n_text;
    } else {
      EXPECT_EQ(g::vision_from_gguf(v), hf);
      ++n_vision;
    }
  }
  EXPECT_EQ(n_text, 3 + 2 * 13);
  EXPECT_EQ(n_vision, 12 + 2 * 7);
  EXPECT_EQ(g::text_to_gguf("model.language_model.layers.11.mlp.gate_up_proj.weight"), "blk.11.ffn_up.weight");
  EXPECT_EQ(g::text_to_gguf("model.language_model.layers.0.post_self_attn_layernorm.weight"),
            "blk.0.post_attention_norm.weight");
  EXPECT_EQ(g::text_to_gguf("model.layers.2.self_attn.q_proj.bias"), "blk.2.attn_q.bias");  // older HF layout
  EXPECT_EQ(g::vision_to_gguf("model.visual.merger.proj.weight"), "mm.model.fc.weight");
  EXPECT_EQ(g::vision_to_gguf("visual.downsample.weight"), "mm.patch_merger.weight");
  EXPECT_EQ(g::text_from_gguf("blk.01.attn_q.weight"), "");  // leading zero: not a layer index llama.cpp writes
  EXPECT_EQ(g::text_from_gguf("blk.3.unknown.weight"), "");
  EXPECT_EQ(g::text_from_gguf("rope_freqs.weight"), "");
}

TEST(gguf_glm4v, qk_permutation_matches_llama_cpp_and_inverts) {
  // One head of 8 rows, 4 rotary: interleaved pairs (0,1), (2,3) become NeoX halves (0,2 | 1,3); rows 4-7 stay.
  uint8_t rows[16], neox[16], back[16];
  for (int i = 0; i < 16; ++i) rows[i] = uint8_t(i);
  g::permute_qk_rows(rows, neox, 2, 8, 4, 1, true);
  const uint8_t expect[16] = {0, 2, 1, 3, 4, 5, 6, 7, 8, 10, 9, 11, 12, 13, 14, 15};
  EXPECT_EQ(std::memcmp(neox, expect, 16), 0);
  g::permute_qk_rows(neox, back, 2, 8, 4, 1, false);
  EXPECT_EQ(std::memcmp(back, rows, 16), 0);
  // head_dim 32 / rot 16 (the demo), multi-byte rows: new row j = old 2j, new row 8 + j = old 2j + 1.
  std::vector<uint32_t> src(64 * 3), dst(64 * 3), inv(64 * 3);
  for (size_t i = 0; i < src.size(); ++i) src[i] = uint32_t(i);
  g::permute_qk_rows(reinterpret_cast<uint8_t*>(src.data()), reinterpret_cast<uint8_t*>(dst.data()), 2, 32, 16, 12, true);
  for (int h = 0; h < 2; ++h)
    for (int j = 0; j < 8; ++j) {
      EXPECT_EQ(dst[size_t(h * 32 + j) * 3], uint32_t(h * 32 + 2 * j) * 3);
      EXPECT_EQ(dst[size_t(h * 32 + 8 + j) * 3 + 2], uint32_t(h * 32 + 2 * j + 1) * 3 + 2);
    }
  g::permute_qk_rows(reinterpret_cast<uint8_t*>(dst.data()), reinterpret_cast<uint8_t*>(inv.data()), 2, 32, 16, 12, false);
  EXPECT_EQ(inv, src);
}

TEST(gguf_glm4v, f32_files_give_back_every_hf_tensor_exactly) {
  const std::string dir = temp_dir();
  g::write_options opt;
  opt.type = dtype::F32;
  g::write_text(k_demo, dir + "/text.gguf", opt);
  g::write_mmproj(k_demo, dir + "/mmproj.gguf", opt);
  auto src = g::source::open(dir + "/text.gguf", dir + "/mmproj.gguf");
  auto store = tensor_store::open_dir(k_demo);
  ASSERT_EQ(src->names(), store->names());
  for (const std::string& name : store->names()) {
    const tensor_source::entry& want = store->at(name);
    const tensor_source::entry& got = src->at(name);
    EXPECT_EQ(got.shape, want.shape) << name;
    EXPECT_EQ(got.data.type(), dtype::F32) << name;
    // BF16 -> F32 is exact, so every value must come back bit for bit.
    EXPECT_EQ(floats(got.data), floats(want.data)) << name;
  }
  // The file itself holds q/k in llama.cpp's order: GGUF row j of head 0 is HF row 2j (j < rot / 2 = 8).
  const gguf_file& f = src->text_file();
  const gguf_tensor_info* q = f.find_tensor("blk.1.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->ne, (std::vector<int64_t>{128, 128}));  // ggml order: row length first
  const std::vector<float> hf_q = floats(store->at("model.language_model.layers.1.self_attn.q_proj.weight").data);
  const float* file_q = reinterpret_cast<const float*>(q->data);
  for (int j = 0; j < 8; ++j) {
    EXPECT_EQ(std::memcmp(file_q + j * 128, hf_q.data() + 2 * j * 128, 128 * 4), 0) << j;
    EXPECT_EQ(std::memcmp(file_q + (8 + j) * 128, hf_q.data() + (2 * j + 1) * 128, 128 * 4), 0) << j;
  }
  EXPECT_EQ(std::memcmp(file_q + 20 * 128, hf_q.data() + 20 * 128, 128 * 4), 0);  // past rot: unchanged
  const gguf_tensor_info* kb = f.find_tensor("blk.0.attn_k.bias");
  const std::vector<float> hf_kb = floats(store->at("model.language_model.layers.0.self_attn.k_proj.bias").data);
  EXPECT_EQ(reinterpret_cast<const float*>(kb->data)[32 + 9], hf_kb[32 + 3]);  // head 1, NeoX row 9 = HF row 3
}

TEST(gguf_glm4v, text_metadata_is_what_llama_cpp_reads) {
  const std::string dir = temp_dir();
  g::write_options opt;  // F16 matrices
  g::write_text(k_demo, dir + "/text.gguf", opt);
  gguf_file f(dir + "/text.gguf");
  EXPECT_EQ(f.get_string("general.architecture"), "glm4");
  EXPECT_EQ(f.get_string("general.type"), "model");
  EXPECT_EQ(f.get_string("general.name"), "demo");
  EXPECT_EQ(f.at("general.file_type").type(), gguf_type::U32);
  EXPECT_EQ(f.get_uint("general.file_type"), 1u);  // MOSTLY_F16
  EXPECT_EQ(f.get_uint("general.quantization_version"), 2u);
  for (const char* key : {"glm4.block_count", "glm4.context_length", "glm4.embedding_length", "glm4.feed_forward_length",
                          "glm4.attention.head_count", "glm4.attention.head_count_kv", "glm4.rope.dimension_count"})
    EXPECT_EQ(f.at(key).type(), gguf_type::U32) << key;
  EXPECT_EQ(f.get_uint("glm4.block_count"), 2u);
  EXPECT_EQ(f.get_uint("glm4.embedding_length"), 128u);
  EXPECT_EQ(f.get_uint("glm4.feed_forward_length"), 180u);
  EXPECT_EQ(f.get_uint("glm4.attention.head_count"), 4u);
  EXPECT_EQ(f.get_uint("glm4.attention.head_count_kv"), 2u);
  EXPECT_EQ(f.get_uint("glm4.context_length"), 4096u);
  EXPECT_EQ(f.get_uint("glm4.rope.dimension_count"), 16u);  // head_dim 32 x partial_rotary_factor 0.5
  EXPECT_EQ(f.at("glm4.rope.dimension_sections").elem_type(), gguf_type::I32);
  EXPECT_EQ(f.get_int_array("glm4.rope.dimension_sections"), (std::vector<int64_t>{2, 3, 3, 0}));
  EXPECT_EQ(f.at("glm4.rope.freq_base").type(), gguf_type::F32);
  EXPECT_DOUBLE_EQ(f.get_float("glm4.rope.freq_base"), 10000.0);
  EXPECT_FLOAT_EQ(float(f.get_float("glm4.attention.layer_norm_rms_epsilon")), 1e-5f);
  EXPECT_EQ(f.find("glm4.attention.key_length"), nullptr);  // only when config.json has head_dim
  // Tokenizer: gpt2 BPE, the GLM-4 pre-tokenizer, the list padded to vocab_size (1503) as convert does.
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), "glm4");
  const std::vector<std::string> tokens = f.get_string_array("tokenizer.ggml.tokens");
  const std::vector<int64_t> types = f.get_int_array("tokenizer.ggml.token_type");
  ASSERT_EQ(tokens.size(), 1503u);
  ASSERT_EQ(types.size(), 1503u);
  EXPECT_EQ(f.at("tokenizer.ggml.token_type").elem_type(), gguf_type::I32);
  EXPECT_EQ(tokens[1456], "<|endoftext|>");
  EXPECT_EQ(types[1456], 3);  // CONTROL
  EXPECT_EQ(tokens[1478], "<|mytool|>");
  EXPECT_EQ(types[1478], 3);  // not special in tokenizer.json, but looks special: CONTROL, as convert decides
  EXPECT_EQ(tokens[1500], "[PAD1500]");
  EXPECT_EQ(types[1500], 5);  // UNUSED
  EXPECT_EQ(types[100], 1);   // NORMAL
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.merges").size(), 1200u);
  EXPECT_EQ(f.get_uint("tokenizer.ggml.eos_token_id"), 1456u);
  EXPECT_EQ(f.get_uint("tokenizer.ggml.eot_token_id"), 1463u);
  EXPECT_EQ(f.get_uint("tokenizer.ggml.padding_token_id"), 1456u);
  EXPECT_NE(f.get_string("tokenizer.chat_template").find("[gMASK]"), std::string::npos);
  // Types as llama.cpp's convert stores them: norms and biases F32, matrices F16, shapes in ggml order.
  EXPECT_EQ(f.find_tensor("blk.0.attn_norm.weight")->type, ggml_type_id::F32);
  EXPECT_EQ(f.find_tensor("blk.0.attn_q.bias")->type, ggml_type_id::F32);
  EXPECT_EQ(f.find_tensor("blk.0.ffn_up.weight")->type, ggml_type_id::F16);
  EXPECT_EQ(f.find_tensor("blk.0.ffn_up.weight")->ne, (std::vector<int64_t>{128, 360}));
  EXPECT_EQ(f.find_tensor("token_embd.weight")->ne, (std::vector<int64_t>{128, 1503}));
  EXPECT_EQ(f.tensors().front().name, "token_embd.weight");
  EXPECT_EQ(f.tensors().size(), 3u + 2 * 13);

  // The source rebuilds config.json's fields from this metadata.
  auto src = g::source::open(dir + "/text.gguf");
  const nlohmann::json& c = src->hf_config();
  const nlohmann::json& t = c["text_config"];
  EXPECT_EQ(t["hidden_size"], 128);
  EXPECT_EQ(t["intermediate_size"], 180);
  EXPECT_EQ(t["num_hidden_layers"], 2);
  EXPECT_EQ(t["num_key_value_heads"], 2);
  EXPECT_EQ(t["vocab_size"], 1503);
  EXPECT_EQ(t["attention_bias"], true);
  EXPECT_EQ(t["rope_parameters"]["mrope_section"], nlohmann::json({2, 3, 3}));
  EXPECT_DOUBLE_EQ(t["partial_rotary_factor"].get<double>(), 0.5);
  EXPECT_EQ(t["eos_token_id"], nlohmann::json({1456, 1463}));
  EXPECT_EQ(c["image_token_id"], 1470);
  EXPECT_EQ(c["image_start_token_id"], 1466);
  EXPECT_EQ(c["video_end_token_id"], 1469);
  EXPECT_EQ(c["tie_word_embeddings"], false);
  EXPECT_FALSE(c.contains("vision_config"));
}

TEST(gguf_glm4v, mmproj_metadata_and_layout) {
  const std::string dir = temp_dir();
  g::write_options opt;
  opt.type = dtype::Q8_0;
  g::write_mmproj(k_demo, dir + "/mmproj.gguf", opt);
  gguf_file f(dir + "/mmproj.gguf");
  EXPECT_EQ(f.get_string("general.architecture"), "clip");
  EXPECT_EQ(f.get_string("general.type"), "mmproj");
  EXPECT_EQ(f.get_string("clip.projector_type"), "glm4v");
  EXPECT_TRUE(f.get_bool("clip.has_vision_encoder"));
  EXPECT_TRUE(f.get_bool("clip.use_silu"));
  EXPECT_EQ(f.get_uint("clip.vision.projection_dim"), 128u);
  EXPECT_EQ(f.get_uint("clip.vision.embedding_length"), 64u);
  EXPECT_EQ(f.get_uint("clip.vision.feed_forward_length"), 180u);
  EXPECT_EQ(f.get_uint("clip.vision.block_count"), 2u);
  EXPECT_EQ(f.get_uint("clip.vision.attention.head_count"), 2u);
  EXPECT_EQ(f.get_uint("clip.vision.patch_size"), 14u);
  EXPECT_EQ(f.get_uint("clip.vision.image_size"), 336u);
  EXPECT_EQ(f.get_float_array("clip.vision.image_mean").size(), 3u);
  // The Conv3d kernel [64, 3, 2, 14, 14] as two F32 Conv2d kernels (ggml order: 14, 14, 3, 64).
  for (const char* n : {"v.patch_embd.weight", "v.patch_embd.weight.1"}) {
    ASSERT_NE(f.find_tensor(n), nullptr) << n;
    EXPECT_EQ(f.find_tensor(n)->ne, (std::vector<int64_t>{14, 14, 3, 64}));
    EXPECT_EQ(f.find_tensor(n)->type, ggml_type_id::F32);
  }
  EXPECT_EQ(f.find_tensor("mm.patch_merger.weight")->ne, (std::vector<int64_t>{2, 2, 64, 128}));
  EXPECT_EQ(f.find_tensor("mm.patch_merger.weight")->type, ggml_type_id::F32);
  EXPECT_EQ(f.find_tensor("v.position_embd.weight")->type, ggml_type_id::F32);
  EXPECT_EQ(f.find_tensor("v.blk.0.attn_qkv.weight")->type, ggml_type_id::Q8_0);  // rows of 64
  EXPECT_EQ(f.find_tensor("mm.down.weight")->type, ggml_type_id::F16);            // rows of 180: not 32-blocks
  EXPECT_EQ(f.find_tensor("mm.post_norm.bias")->type, ggml_type_id::F32);
  // Read back: the kernel is whole again and the vision config is rebuilt.
  auto store = tensor_store::open_dir(k_demo);
  g::write_text(k_demo, dir + "/text.gguf", opt);
  auto src = g::source::open(dir + "/text.gguf", dir + "/mmproj.gguf");
  const tensor_source::entry& patch = src->at("model.visual.patch_embed.proj.weight");
  EXPECT_EQ(patch.shape, (std::vector<int64_t>{64, 3, 2, 14, 14}));
  EXPECT_EQ(floats(patch.data), floats(store->at("model.visual.patch_embed.proj.weight").data));
  const nlohmann::json& v = src->hf_config()["vision_config"];
  EXPECT_EQ(v["depth"], 2);
  EXPECT_EQ(v["hidden_size"], 64);
  EXPECT_EQ(v["out_hidden_size"], 128);
  EXPECT_EQ(v["intermediate_size"], 180);
  EXPECT_EQ(v["num_heads"], 2);
  EXPECT_EQ(v["in_channels"], 3);
  EXPECT_EQ(v["hidden_act"], "silu");
}

TEST(gguf_glm4v, quantized_text_keeps_layout_and_values) {
  const std::string dir = temp_dir();
  g::write_options opt;
  opt.type = dtype::Q8_0;
  opt.keep = {{"*embed_tokens*", dtype::BF16}, {"lm_head*", dtype::F16}};
  g::write_text(k_demo, dir + "/q8.gguf", opt);
  auto src = g::source::open(dir + "/q8.gguf");
  const gguf_file& f = src->text_file();
  EXPECT_EQ(f.get_uint("general.file_type"), 7u);  // MOSTLY_Q8_0
  EXPECT_EQ(f.find_tensor("token_embd.weight")->type, ggml_type_id::BF16);
  EXPECT_EQ(f.find_tensor("output.weight")->type, ggml_type_id::F16);
  EXPECT_EQ(f.find_tensor("blk.0.attn_q.weight")->type, ggml_type_id::Q8_0);
  EXPECT_EQ(f.find_tensor("blk.0.ffn_down.weight")->type, ggml_type_id::F16);  // rows of 180 fall back
  auto store = tensor_store::open_dir(k_demo);
  for (const std::string& name : store->names()) {
    if (name.find("visual") != std::string::npos) continue;
    const std::vector<float> want = floats(store->at(name).data);
    const std::vector<float> got = floats(src->at(name).data);
    ASSERT_EQ(got.size(), want.size()) << name;
    double err = 0, ref = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      err += double(got[i] - want[i]) * double(got[i] - want[i]);
      ref += double(want[i]) * double(want[i]);
    }
    // Q8_0 keeps ~0.5% relative RMSE; the permutation undone wrongly would give ~140% (rows of other values).
    EXPECT_LT(std::sqrt(err / std::max(ref, 1e-30)), 0.01) << name;
  }
  // A file of another architecture is refused by the GLM-4.1V source, naming it.
  gguf_writer w;
  w.set("general.architecture", gguf_value::of_string("llama"));
  w.write(dir + "/llama.gguf");
  try {
    g::source::open(dir + "/llama.gguf");
    FAIL();
  } catch (const error& e) {
    EXPECT_NE(std::string(e.what()).find("architecture 'llama' is not llama.cpp's 'glm4'"), std::string::npos);
  }
  EXPECT_THROW(g::source::open(dir + "/q8.gguf", dir + "/q8.gguf"), error);  // a text file is not an mmproj
}

TEST(gguf_glm4v, keep_patterns_and_fallbacks) {
  g::write_options opt;
  opt.type = dtype::Q4_K;
  opt.keep = {{"*.layers.0.*", dtype::Q8_0}, {"lm_head.weight", dtype::F16}};
  EXPECT_EQ(g::stored_type("model.language_model.layers.0.mlp.down_proj.weight", {4096, 13696}, opt), dtype::Q8_0);
  EXPECT_EQ(g::stored_type("model.language_model.layers.1.mlp.down_proj.weight", {4096, 13696}, opt), dtype::Q5_0);
  EXPECT_EQ(g::stored_type("model.language_model.layers.1.self_attn.q_proj.weight", {4096, 4096}, opt), dtype::Q4_K);
  // llama.cpp's fallbacks for the 9B ffn_down (rows of 13696 = 53.5 x 256) under each k-quant.
  for (auto [want, got] : {std::pair{dtype::Q4_K, dtype::Q5_0}, std::pair{dtype::Q5_K, dtype::Q5_1},
                           std::pair{dtype::Q6_K, dtype::Q8_0}}) {
    g::write_options k;
    k.type = want;
    EXPECT_EQ(g::stored_type("model.language_model.layers.7.mlp.down_proj.weight", {4096, 13696}, k), got);
    EXPECT_EQ(g::stored_type("model.language_model.layers.7.mlp.gate_up_proj.weight", {27392, 4096}, k), want);
  }
  EXPECT_EQ(g::stored_type("lm_head.weight", {151552, 4096}, opt), dtype::F16);
  EXPECT_EQ(g::stored_type("model.language_model.layers.0.input_layernorm.weight", {4096}, opt), dtype::F32);
  EXPECT_EQ(g::stored_type("model.visual.patch_embed.proj.weight", {1536, 3, 2, 14, 14}, opt), dtype::F32);
  EXPECT_EQ(g::stored_type("model.visual.blocks.0.attn.qkv.weight", {4608, 1536}, opt), dtype::Q4_K);
}

// The demo's rows (128 wide) hold no 256-element k-quant block: a q4_k file stores its matrices in llama.cpp's
// fallback Q5_0 and a q5_k file in Q5_1 (ffn_down, rows of 180, in F16); read back, the values are the
// checkpoint's within the 5-bit types' error.
TEST(gguf_glm4v, k_quant_files_fall_back_to_q5_0_and_q5_1) {
  const std::string dir = temp_dir();
  auto store = tensor_store::open_dir(k_demo);
  using row = std::tuple<dtype, dtype, uint32_t>;  // --type, the type stored, general.file_type
  for (auto [want, got, file_type] : {row{dtype::Q4_K, dtype::Q5_0, 14u}, row{dtype::Q5_K, dtype::Q5_1, 16u},
                                      row{dtype::Q5_0, dtype::Q5_0, 8u}, row{dtype::Q4_1, dtype::Q4_1, 3u}}) {
    g::write_options opt;
    opt.type = want;
    const std::string path = dir + "/" + dtype_name(want) + ".gguf";
    g::write_text(k_demo, path, opt);
    auto src = g::source::open(path);
    const gguf_file& f = src->text_file();
    uint32_t id = 0;
    ASSERT_TRUE(ggml_from_dtype(got, id));
    EXPECT_EQ(f.get_uint("general.file_type"), file_type) << dtype_name(want);
    EXPECT_EQ(f.find_tensor("token_embd.weight")->type, id) << dtype_name(want);
    EXPECT_EQ(f.find_tensor("blk.1.attn_q.weight")->type, id) << dtype_name(want);
    EXPECT_EQ(f.find_tensor("blk.1.ffn_up.weight")->type, id) << dtype_name(want);
    EXPECT_EQ(f.find_tensor("blk.0.ffn_down.weight")->type, ggml_type_id::F16) << dtype_name(want);
    for (const std::string name : {"model.language_model.embed_tokens.weight", "lm_head.weight",
                                   "model.language_model.layers.0.self_attn.q_proj.weight",
                                   "model.language_model.layers.1.mlp.gate_up_proj.weight"}) {
      const std::vector<float> want_v = floats(store->at(name).data), got_v = floats(src->at(name).data);
      ASSERT_EQ(got_v.size(), want_v.size()) << name;
      double err = 0, ref = 0;
      for (size_t i = 0; i < want_v.size(); ++i) {
        err += double(got_v[i] - want_v[i]) * double(got_v[i] - want_v[i]);
        ref += double(want_v[i]) * double(want_v[i]);
      }
      // 5-bit types keep ~4% relative RMSE on Gaussian weights, Q4_1 ~7%; a wrong layout gives ~100% or more.
      EXPECT_LT(std::sqrt(err / ref), got == dtype::Q4_1 ? 0.09 : 0.052) << dtype_name(got) << " " << name;
    }
  }
}

TEST(gguf_glm4v, fuzz_seeds_are_valid_and_reach_the_source) {
  // The fuzz target's seeds (tests/fuzz/make_gguf_seeds.py) must stay valid, or fuzzing starts from rejections.
  const std::string dir = std::string(AUTOGLM_SOURCE_DIR) + "/tests/fuzz/corpus/gguf";
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    EXPECT_NO_THROW(gguf_file f(e.path().string())) << e.path();
    ++n;
  }
  EXPECT_GE(n, 6);
  auto src = g::source::open(dir + "/glm4_text", dir + "/glm4v_mmproj");
  // head_dim 4, rotary 4: the file's k bias (NeoX order) is [-1.5, 0.25, -1.25, 0.5]; HF row 2j = NeoX row j,
  // HF row 2j + 1 = NeoX row 2 + j. The seed's k weight is Q8_0 (rows of 34 bytes) and must come back in shape.
  const tensor kb = src->at("model.language_model.layers.0.self_attn.k_proj.bias").data;
  EXPECT_EQ(std::vector<float>(kb.ptr<float>(), kb.ptr<float>() + 4), (std::vector<float>{-1.5f, -1.25f, 0.25f, 0.5f}));
  EXPECT_EQ(src->at("model.language_model.layers.0.self_attn.k_proj.weight").shape, (std::vector<int64_t>{4, 32}));
  EXPECT_EQ(src->at("model.visual.patch_embed.proj.weight").shape, (std::vector<int64_t>{2, 1, 2, 2, 2}));
  EXPECT_EQ(src->hf_config()["image_token_id"], 3);
  EXPECT_EQ(src->hf_config()["vision_config"]["patch_size"], 2);
}

TEST(gguf_glm4v, open_dir_finds_text_and_mmproj_by_architecture) {
  const std::string dir = temp_dir();
  EXPECT_EQ(g::source::open_dir(dir), nullptr);  // no .gguf: the caller uses safetensors
  g::write_options opt;
  // llama.cpp's own file names: the architecture, not the name, says which file is which.
  g::write_mmproj(k_demo, dir + "/mmproj-demo-F16.gguf", opt);
  try {
    g::source::open_dir(dir);
    FAIL();
  } catch (const error& e) {
    EXPECT_NE(std::string(e.what()).find("only an mmproj GGUF file"), std::string::npos) << e.what();
  }
  g::write_text(k_demo, dir + "/demo-F16.gguf", opt);
  auto src = g::source::open_dir(dir);
  ASSERT_NE(src, nullptr);
  ASSERT_NE(src->mmproj_file(), nullptr);
  EXPECT_EQ(src->mmproj_file()->path(), dir + "/mmproj-demo-F16.gguf");
  EXPECT_TRUE(src->has("model.visual.patch_embed.proj.weight"));
  EXPECT_TRUE(src->has("lm_head.weight"));
  g::write_text(k_demo, dir + "/demo-Q8_0.gguf", opt);
  try {
    g::source::open_dir(dir);
    FAIL();
  } catch (const error& e) {
    EXPECT_NE(std::string(e.what()).find("two text model GGUF files"), std::string::npos) << e.what();
  }
}

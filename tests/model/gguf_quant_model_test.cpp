// tests/model/gguf_quant_model_test.cpp: GLM-4.1V from GGUF files in the types community files use, run through
// the GGUF tensor_source on a tiny text model whose widths look like the 9B's: hidden 256 (a k-quant block per
// row) and an intermediate size of 320, which is whole 32-blocks but not whole 256-blocks (the 9B's 13696 is
// 53.5 x 256). Written here as an F32 safetensors checkpoint with random weights, then as GGUF files by the
// `autoglm quantize` writer:
//  - token_embd in a block type (Q8_0 / Q4_K / Q6_K / Q5_0, the rest F32) loads, and its logits equal bit for bit
//    those of the F32 file with the table replaced by its dequantized values (the gather is exact), and stay close
//    to the F32 file's (the table's quantization error, bounded below);
//  - a q4_k file stores ffn_down (rows of 320) as Q5_0 and a q5_k file as Q5_1, as llama.cpp does; both load and
//    run, with logits close to the F32 file's.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/quant_blocks.h"
#include "formats/gguf_glm4v.h"
#include "model/glm4v/config.h"
#include "model/glm4v/glm4v.h"
#include "model_driver.h"
#include "model_files_util.h"

using namespace autoglm;
namespace fs = std::filesystem;
namespace g = autoglm::glm4v_gguf;

namespace {

const std::string k_demo = std::string(AUTOGLM_SOURCE_DIR) + "/models/demo";
constexpr int64_t k_hidden = 256, k_inter = 320, k_heads = 8, k_kv_heads = 2, k_head_dim = 32, k_layers = 2;
const std::string k_embed = "model.language_model.embed_tokens.weight";

// An F32 safetensors file: 8-byte header length, the JSON header, then the tensors in order.
void write_safetensors(const std::string& path,
                       const std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    header[name] = {{"dtype", "F32"}, {"shape", t.first}, {"data_offsets", {offset, offset + 4 * t.second.size()}}};
    offset += 4 * t.second.size();
  }
  const std::string h = header.dump();
  const uint64_t len = h.size();
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&len), 8);
  out << h;
  for (const auto& [name, t] : tensors)
    out.write(reinterpret_cast<const char*>(t.second.data()), std::streamsize(4 * t.second.size()));
}

// The demo's config and tokenizer with the text model widened (hidden 256, 8 heads of 32, intermediate 320) and
// no vision tower; random weights (matrices N(0, 1 / fan_in), norms near 1, biases small).
std::string make_checkpoint(const std::string& dir, int32_t& vocab) {
  nlohmann::json cfg = autoglm::test::read_json(k_demo + "/config.json");
  nlohmann::json& t = cfg["text_config"];
  t["hidden_size"] = k_hidden;
  t["intermediate_size"] = k_inter;
  t["num_attention_heads"] = k_heads;
  t["num_key_value_heads"] = k_kv_heads;
  t["num_hidden_layers"] = k_layers;
  cfg.erase("vision_config");
  vocab = t["vocab_size"].get<int32_t>();
  autoglm::test::write_text(dir + "/config.json", cfg.dump(2));
  fs::copy_file(k_demo + "/tokenizer.json", dir + "/tokenizer.json");
  fs::copy_file(k_demo + "/tokenizer_config.json", dir + "/tokenizer_config.json");

  std::mt19937_64 gen(2024);
  auto normal = [&](size_t n, float sd, float mean = 0.0f) {
    std::normal_distribution<float> d(mean, sd);
    std::vector<float> v(n);
    for (float& x : v) x = d(gen);
    return v;
  };
  std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> w;
  auto matrix = [&](const std::string& name, int64_t rows, int64_t cols) {
    w[name] = {{rows, cols}, normal(size_t(rows * cols), 1.0f / std::sqrt(float(cols)))};
  };
  const int64_t V = vocab, H = k_hidden, q = k_heads * k_head_dim, kv = k_kv_heads * k_head_dim;
  w[k_embed] = {{V, H}, normal(size_t(V * H), 1.0f)};
  matrix("lm_head.weight", V, H);
  w["model.language_model.norm.weight"] = {{H}, normal(size_t(H), 0.1f, 1.0f)};
  for (int64_t l = 0; l < k_layers; ++l) {
    const std::string p = "model.language_model.layers." + std::to_string(l) + ".";
    for (const char* n :
         {"input_layernorm", "post_self_attn_layernorm", "post_attention_layernorm", "post_mlp_layernorm"})
      w[p + n + ".weight"] = {{H}, normal(size_t(H), 0.1f, 1.0f)};
    matrix(p + "self_attn.q_proj.weight", q, H);
    matrix(p + "self_attn.k_proj.weight", kv, H);
    matrix(p + "self_attn.v_proj.weight", kv, H);
    matrix(p + "self_attn.o_proj.weight", H, q);
    w[p + "self_attn.q_proj.bias"] = {{q}, normal(size_t(q), 0.1f)};
    w[p + "self_attn.k_proj.bias"] = {{kv}, normal(size_t(kv), 0.1f)};
    w[p + "self_attn.v_proj.bias"] = {{kv}, normal(size_t(kv), 0.1f)};
    matrix(p + "mlp.gate_up_proj.weight", 2 * k_inter, H);
    matrix(p + "mlp.down_proj.weight", H, k_inter);
  }
  write_safetensors(dir + "/model.safetensors", w);
  return dir;
}

// The GGUF source with one tensor replaced (an F32 copy owned here).
class replaced_source : public tensor_source {
 public:
  replaced_source(const tensor_source& base, const std::string& name, tensor data) : base_(base) {
    e_ = base.at(name);
    e_.data = std::move(data);
  }
  const std::string& location() const override { return base_.location(); }
  const entry* find(const std::string& name) const override { return name == e_.name ? &e_ : base_.find(name); }
  std::vector<std::string> names() const override { return base_.names(); }

 private:
  const tensor_source& base_;
  entry e_;
};

tensor dequantized(const tensor& t) {
  tensor out = tensor::empty_host(dtype::F32, t.shape());
  for (int64_t r = 0; r < t.rows(); ++r)
    quant::dequantize_row(t.type(), t.row(r), out.ptr<float>() + r * t.cols(), t.cols());
  return out;
}

class gguf_quant_model : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Named with the scratch prefix, so the binary's cleanup removes it (no test is running yet here).
    dir_ =
        new std::string((fs::temp_directory_path() / (autoglm::test::scratch_prefix() + "gguf_quant_model")).string());
    fs::remove_all(*dir_);
    const std::string hf = *dir_ + "/hf";
    fs::create_directories(hf);
    make_checkpoint(hf, vocab_);
    cfg_ = new glm4v::config(glm4v::config::load(hf));
    g::write_options opt;
    opt.type = dtype::F32;
    g::write_text(hf, *dir_ + "/f32.gguf", opt);
    ref_ = new std::vector<float>(run(*g::source::open(*dir_ + "/f32.gguf")));
  }
  static void TearDownTestSuite() {
    delete ref_;
    delete cfg_;
    delete dir_;
  }

  // Logits of every position of a fixed prompt (prefill in chunks of 5, so decode-sized and prefill-sized
  // linears both run).
  static std::vector<float> run(const tensor_source& src) {
    exec_context ctx(device{}, 2);
    glm4v::conditional_generation m(*cfg_, src, ctx);
    const std::vector<int32_t> prompt = {1458, 1460, 1463, 17, 250, 999, 1200, 3, 77, 640, 1501, 1464};
    autoglm::test::sequence_driver seq(m, ctx, int32_t(prompt.size()) + 4);
    return seq.prefill(prompt, {}, /*all_logits=*/true, /*chunk=*/5);
  }

  static std::string write(const std::string& file, const g::write_options& opt) {
    const std::string path = *dir_ + "/" + file;
    g::write_text(*dir_ + "/hf", path, opt);
    return path;
  }

  // Relative RMS difference from the F32 file's logits: sqrt(sum (a - ref)^2 / sum ref^2) over all positions.
  static double relative_rms(const std::vector<float>& a) {
    EXPECT_EQ(a.size(), ref_->size());
    double se = 0, sr = 0;
    for (size_t i = 0; i < a.size() && i < ref_->size(); ++i) {
      EXPECT_TRUE(std::isfinite(a[i])) << i;
      const double r = (*ref_)[i];
      se += (a[i] - r) * (a[i] - r);
      sr += r * r;
    }
    return std::sqrt(se / sr);
  }

  static std::string* dir_;
  static int32_t vocab_;
  static glm4v::config* cfg_;
  static std::vector<float>* ref_;
};

std::string* gguf_quant_model::dir_ = nullptr;
int32_t gguf_quant_model::vocab_ = 0;
glm4v::config* gguf_quant_model::cfg_ = nullptr;
std::vector<float>* gguf_quant_model::ref_ = nullptr;

TEST_F(gguf_quant_model, block_type_token_embeddings_load_and_run) {
  // Bounds on the logits' relative RMS difference from the F32 file: the table's own relative RMSE (Q8_0 ~0.5%,
  // Q6_K ~1.7%, Q5_0 ~4%, Q4_K ~7%) grows about 1.7x through this random model; measured 0.009, 0.028, 0.067,
  // 0.119, bounds 1.5x that.
  struct bound {
    dtype t;
    double max_err;
  };
  for (const bound b :
       {bound{dtype::Q8_0, 0.015}, bound{dtype::Q6_K, 0.045}, bound{dtype::Q5_0, 0.1}, bound{dtype::Q4_K, 0.18}}) {
    g::write_options opt;
    opt.type = dtype::F32;
    opt.keep = {{"*embed_tokens*", b.t}};
    const std::string path = write(std::string("embd_") + dtype_name(b.t) + ".gguf", opt);
    const std::unique_ptr<g::source> src = g::source::open(path);
    uint32_t id = 0;
    ASSERT_TRUE(ggml_from_dtype(b.t, id));
    EXPECT_EQ(src->text_file().find_tensor("token_embd.weight")->type, id) << dtype_name(b.t);
    EXPECT_EQ(src->text_file().find_tensor("blk.0.ffn_down.weight")->type, ggml_type_id::F32);
    const std::vector<float> got = run(*src);

    // The same file with the table's dequantized values in F32: the same logits, bit for bit.
    const replaced_source plain(*src, k_embed, dequantized(src->at(k_embed).data));
    const std::vector<float> want = run(plain);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0) << dtype_name(b.t);

    const double e = relative_rms(got);
    EXPECT_LT(e, b.max_err) << dtype_name(b.t);
    EXPECT_GT(e, 0.0) << dtype_name(b.t) << ": a quantized table that changes nothing was not quantized";
  }
}

TEST_F(gguf_quant_model, k_quant_files_store_ffn_down_in_llama_cpp_fallbacks_and_run) {
  // Every matrix quantized: the error is that of 4-5 bit weights everywhere plus 8-bit activations; measured
  // 0.226 (Q4_K) and 0.111 (Q5_K), bounds 1.5x that.
  struct expect {
    dtype asked, down;
    double max_err;
  };
  for (const expect x : {expect{dtype::Q4_K, dtype::Q5_0, 0.33}, expect{dtype::Q5_K, dtype::Q5_1, 0.17}}) {
    g::write_options opt;
    opt.type = x.asked;
    const std::string path = write(std::string("all_") + dtype_name(x.asked) + ".gguf", opt);
    const std::unique_ptr<g::source> src = g::source::open(path);
    const gguf_file& f = src->text_file();
    uint32_t asked = 0, down = 0;
    ASSERT_TRUE(ggml_from_dtype(x.asked, asked) && ggml_from_dtype(x.down, down));
    for (int l = 0; l < k_layers; ++l) {
      const std::string b = "blk." + std::to_string(l) + ".";
      EXPECT_EQ(f.find_tensor(b + "ffn_down.weight")->type, down) << dtype_name(x.asked);  // rows of 320
      EXPECT_EQ(f.find_tensor(b + "ffn_up.weight")->type, asked) << dtype_name(x.asked);   // rows of 256
      EXPECT_EQ(f.find_tensor(b + "attn_q.weight")->type, asked) << dtype_name(x.asked);
    }
    EXPECT_EQ(f.find_tensor("token_embd.weight")->type, asked);
    EXPECT_EQ(f.find_tensor("output.weight")->type, asked);
    const double e = relative_rms(run(*src));
    EXPECT_LT(e, x.max_err) << dtype_name(x.asked);
    EXPECT_GT(e, 0.0) << dtype_name(x.asked);
  }
}

}  // namespace

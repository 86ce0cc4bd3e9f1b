// tests/model/glm4v_model_test.cpp: the GLM-4.1V `model` (model/model.h) beyond parity: forward and encode_image
// on two exec_contexts at the same time give exactly what each gives alone (the model holds no state), several
// sequences in one batch give what each gives alone, the named intermediates, the KV geometry and decode
// bandwidth figures, and load-time errors (a dtype the device cannot run names tensor, dtype and device).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "fixture_io.h"
#include "formats/safetensors.h"
#include "model/glm4v/config.h"
#include "model/glm4v/glm4v.h"
#include "model/model.h"
#include "model_driver.h"
#include "ops/ops.h"

using namespace autoglm;

namespace {

const nlohmann::json& find_case(const nlohmann::json& cases, const std::string& name) {
  for (const auto& c : cases["cases"])
    if (c["name"] == name) return c;
  throw std::runtime_error("no fixture case " + name);
}

std::vector<float> host_values(exec_context& ctx, const tensor& t) {
  const tensor h = ops::host_f32(ctx, t);
  return std::vector<float>(h.ptr<float>(), h.ptr<float>() + h.n_elements());
}

// Prompt logits and 6 greedy decode steps of one case, concatenated (what a request's stream depends on).
std::vector<float> run_case(const model& m, exec_context& ctx, const nlohmann::json& c, int32_t chunk) {
  const std::vector<int32_t> tokens = c["tokens"].get<std::vector<int32_t>>();
  const std::vector<vision_input> images = test::fixture_images(c);
  test::sequence_driver seq(m, ctx, int32_t(tokens.size()) + 8);
  std::vector<float> out = seq.prefill(tokens, images, true, chunk);
  const int32_t vocab = m.info().vocab_size;
  int32_t next = int32_t(std::max_element(out.end() - vocab, out.end()) - (out.end() - vocab));
  for (int i = 0; i < 6; ++i) {
    const std::vector<float> l = seq.decode(next);
    out.insert(out.end(), l.begin(), l.end());
    next = int32_t(std::max_element(l.begin(), l.end()) - l.begin());
  }
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class glm4v_model : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ctx_ = new exec_context(device{}, 2);
    model_ = load_model(test::fixture_model_dir(), *ctx_).release();
    cases_ = new nlohmann::json(test::load_cases());
  }
  static void TearDownTestSuite() {
    delete cases_;
    delete model_;
    delete ctx_;
  }
  static exec_context* ctx_;
  static model* model_;
  static nlohmann::json* cases_;
};
exec_context* glm4v_model::ctx_ = nullptr;
model* glm4v_model::model_ = nullptr;
nlohmann::json* glm4v_model::cases_ = nullptr;

}  // namespace

TEST_F(glm4v_model, forward_and_encode_on_two_contexts_at_once_equal_each_alone) {
  const nlohmann::json& text = find_case(*cases_, "long");
  const nlohmann::json& image = find_case(*cases_, "two_images");
  const std::vector<vision_input> pixels = test::fixture_images(image);
  // Alone, one after the other, on one context.
  const std::vector<float> text_alone = run_case(*model_, *ctx_, text, 64);
  const std::vector<float> image_prompt_alone = run_case(*model_, *ctx_, image, 16);
  const std::vector<float> embeds_alone = host_values(*ctx_, model_->encode_image(*ctx_, pixels[1]));

  // At once: a decoder context runs the text sequence while a vision context encodes and runs an image prompt;
  // repeated so the two overlap many times on 2 cores.
  exec_context decoder(device{}, 2), vision(device{}, 1);
  std::vector<std::vector<float>> text_runs, image_runs, embed_runs;
  std::thread a([&] {
    for (int r = 0; r < 3; ++r) text_runs.push_back(run_case(*model_, decoder, text, 64));
  });
  std::thread b([&] {
    for (int r = 0; r < 3; ++r) {
      embed_runs.push_back(host_values(vision, model_->encode_image(vision, pixels[1])));
      image_runs.push_back(run_case(*model_, vision, image, 16));
    }
  });
  a.join();
  b.join();
  for (int r = 0; r < 3; ++r) {
    EXPECT_TRUE(same_bits(text_runs[size_t(r)], text_alone)) << "text run " << r;
    EXPECT_TRUE(same_bits(image_runs[size_t(r)], image_prompt_alone)) << "image prompt run " << r;
    EXPECT_TRUE(same_bits(embed_runs[size_t(r)], embeds_alone)) << "encode run " << r;
  }
}

TEST_F(glm4v_model, sequences_batched_together_equal_each_alone) {
  // One cache, two sequences with interleaved blocks: B's prompt and a decode step of A in one forward must give
  // the logits each gets alone (rows never mix across sequences).
  const int32_t vocab = model_->info().vocab_size;
  const std::vector<int32_t> pa = find_case(*cases_, "chat")["tokens"].get<std::vector<int32_t>>();
  const std::vector<int32_t> pb = find_case(*cases_, "short")["tokens"].get<std::vector<int32_t>>();
  const int32_t next_a = 17;
  std::vector<float> alone_a, alone_b;
  {
    test::sequence_driver sa(*model_, *ctx_, int32_t(pa.size()) + 1);
    sa.prefill(pa, {});
    alone_a = sa.decode(next_a);
    test::sequence_driver sb(*model_, *ctx_, int32_t(pb.size()));
    alone_b = sb.prefill(pb, {}, true);
  }
  const kv_layout kl = model_->kv_shape();
  // A takes the even blocks, B the odd ones, so their tables interleave in the one cache.
  const int32_t bs = 16, blocks_a = int32_t(pa.size() + 1 + bs - 1) / bs, blocks_b = int32_t(pb.size() + bs - 1) / bs;
  const int32_t n_blocks = 2 * std::max(blocks_a, blocks_b);
  std::vector<paged_kv_layer> kv;
  for (int32_t l = 0; l < kl.n_layers; ++l)
    kv.push_back({tensor::empty_host(dtype::F32, {n_blocks, bs, kl.n_kv_heads, kl.head_dim}),
                  tensor::empty_host(dtype::F32, {n_blocks, bs, kl.n_kv_heads, kl.head_dim})});
  std::vector<int32_t> table_a, table_b;
  for (int32_t i = 0; i < blocks_a; ++i) table_a.push_back(2 * i);
  for (int32_t i = 0; i < blocks_b; ++i) table_b.push_back(2 * i + 1);
  const prompt_positions pos_a = model_->compute_positions(pa, {}), pos_b = model_->compute_positions(pb, {});
  {  // A's prompt alone.
    forward_batch f;
    f.token_ids = pa;
    f.pos_t = pos_a.t;
    f.pos_h = pos_a.h;
    f.pos_w = pos_a.w;
    f.sequences.push_back({0, int32_t(pa.size()), 0, table_a.data(), blocks_a});
    model_->forward(*ctx_, f, kv, nullptr);
  }
  forward_batch f;  // B's whole prompt first, then A's decode token
  f.token_ids = pb;
  f.token_ids.push_back(next_a);
  f.pos_t = pos_b.t;
  f.pos_h = pos_b.h;
  f.pos_w = pos_b.w;
  const int32_t pa_next = int32_t(pa.size()) + pos_a.rope_delta;
  f.pos_t.push_back(pa_next);
  f.pos_h.push_back(pa_next);
  f.pos_w.push_back(pa_next);
  f.sequences.push_back({0, int32_t(pb.size()), 0, table_b.data(), int32_t(table_b.size())});
  f.sequences.push_back({int32_t(pb.size()), 1, int32_t(pa.size()), table_a.data(), blocks_a});
  for (int32_t i = 0; i <= int32_t(pb.size()); ++i) f.logits_rows.push_back(i);
  std::vector<float> logits(f.logits_rows.size() * size_t(vocab));
  model_->forward(*ctx_, f, kv, logits.data());
  EXPECT_TRUE(same_bits(std::vector<float>(logits.begin(), logits.end() - vocab), alone_b));
  // A's row ran alone as a 1-row decode and here among 7 rows. The CPU linear kernel's 1-2 row path and its
  // 3-row tiles round the tail of a row whose length is not a multiple of 8 differently (the tiny model's
  // intermediate size is 180), so A matches to float rounding rather than bit for bit; mixed rows would be off
  // by the size of the logits.
  double max_diff = 0, max_ref = 0;
  for (int32_t j = 0; j < vocab; ++j) {
    const float got = logits[logits.size() - size_t(vocab) + size_t(j)];
    max_diff = std::max(max_diff, double(std::fabs(got - alone_a[size_t(j)])));
    max_ref = std::max(max_ref, double(std::fabs(alone_a[size_t(j)])));
  }
  EXPECT_LE(max_diff, 1e-6 * max_ref);
}

TEST_F(glm4v_model, dumps_every_named_intermediate) {
  std::vector<std::string> names;
  exec_context ctx(device{}, 1);
  ctx.set_dump([&](const std::string& name, const tensor& t) {
    names.push_back(name);
    EXPECT_EQ(t.n_dims(), 2) << name;
  });
  test::sequence_driver seq(*model_, ctx, 8);
  seq.prefill({1, 2, 3}, {});
  std::vector<std::string> expect = {"hidden.0"};
  const int32_t n_layers = model_->info().n_layers;
  for (int32_t l = 0; l < n_layers; ++l) {
    for (const char* s : {"attn_norm", "q_rope", "k_rope", "attn", "attn_residual"})
      expect.push_back("layer." + std::to_string(l) + "." + s);
    expect.push_back("hidden." + std::to_string(l + 1));
  }
  EXPECT_EQ(names, expect);
}

TEST_F(glm4v_model, kv_layout_info_and_decode_bytes) {
  const glm4v::config cfg = glm4v::config::load(test::fixture_model_dir());
  const kv_layout kl = model_->kv_shape();
  EXPECT_EQ(kl.n_layers, cfg.text.n_layers);
  EXPECT_EQ(kl.n_kv_heads, cfg.text.n_kv_heads);
  EXPECT_EQ(kl.head_dim, cfg.text.head_dim);
  EXPECT_EQ(model_->info().vocab_size, cfg.text.vocab_size);
  EXPECT_TRUE(model_->info().has_vision);
  // Every decoder linear and lm_head, BF16 in the tiny checkpoint.
  const auto& t = cfg.text;
  const int64_t H = t.hidden_size, I = t.intermediate_size, qd = int64_t(t.n_heads) * t.head_dim,
                kvd = int64_t(t.n_kv_heads) * t.head_dim;
  const int64_t per_layer = qd * H + 2 * kvd * H + H * qd + 2 * I * H + H * I;
  EXPECT_EQ(model_->weight_bytes_per_token(), size_t(2 * (per_layer * t.n_layers + int64_t(t.vocab_size) * H)));
}

namespace {

// The tiny checkpoint with one tensor's dtype replaced (same name and shape): what another source could hold.
class patched_source : public tensor_source {
 public:
  patched_source(const tensor_source& base, const std::string& name, dtype type) : base_(base) {
    patched_ = base.at(name);
    patched_.data = tensor::empty_host(type, patched_.data.shape());
    std::memset(patched_.data.data(), 0, patched_.data.n_bytes());
  }
  const std::string& location() const override { return base_.location(); }
  const entry* find(const std::string& name) const override {
    return name == patched_.name ? &patched_ : base_.find(name);
  }
  std::vector<std::string> names() const override { return base_.names(); }

 private:
  const tensor_source& base_;
  entry patched_;
};

std::string load_error(const tensor_source& src) {
  const glm4v::config cfg = glm4v::config::load(test::fixture_model_dir());
  exec_context ctx(device{}, 1);
  try {
    glm4v::conditional_generation m(cfg, src, ctx);
  } catch (const error& e) {
    return e.what();
  }
  return {};
}

}  // namespace

TEST(glm4v_load, dtype_without_a_kernel_is_a_load_error_naming_tensor_dtype_and_device) {
  auto store = tensor_store::open_dir(test::fixture_model_dir());
  const std::string q = "model.language_model.layers.1.self_attn.q_proj.weight";
  const std::string msg = load_error(patched_source(*store, q, dtype::I32));
  EXPECT_NE(msg.find("model.safetensors: tensor '" + q + "' has dtype I32"), std::string::npos) << msg;
  EXPECT_NE(msg.find("no linear kernel for I32 on cpu"), std::string::npos) << msg;
  const std::string e = "model.language_model.embed_tokens.weight";
  const std::string msg2 = load_error(patched_source(*store, e, dtype::U8));
  EXPECT_NE(msg2.find("tensor '" + e + "' has dtype U8"), std::string::npos) << msg2;
  EXPECT_NE(msg2.find("no embedding kernel for U8 on cpu"), std::string::npos) << msg2;
  const std::string bias = "model.language_model.layers.0.self_attn.k_proj.bias";
  EXPECT_NE(load_error(patched_source(*store, bias, dtype::I32)).find("'" + bias + "' has dtype I32"),
            std::string::npos);
  // Other float formats of the same weight load: the model code does not care which one it runs.
  EXPECT_EQ(load_error(patched_source(*store, q, dtype::F16)), "");
  EXPECT_EQ(load_error(patched_source(*store, q, dtype::F32)), "");
}

TEST(glm4v_load, missing_directory_and_unknown_architecture) {
  exec_context ctx(device{}, 1);
  EXPECT_THROW(load_model("/nonexistent/model/dir", ctx), error);
  try {
    load_model(AUTOGLM_SOURCE_DIR "/tests/fixtures", ctx);  // a directory without config.json
    ADD_FAILURE() << "no error";
  } catch (const error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
  }
}

TEST(glm4v_load, a_text_only_model_refuses_images) {
  glm4v::config cfg = glm4v::config::load(test::fixture_model_dir());
  cfg.vision.present = false;
  auto store = tensor_store::open_dir(test::fixture_model_dir());
  exec_context ctx(device{}, 1);
  const glm4v::conditional_generation m(cfg, *store, ctx);
  EXPECT_FALSE(m.info().has_vision);
  vision_input v;
  v.grid_h = v.grid_w = 2;
  v.pixel_values.assign(size_t(4 * 3 * 2 * 14 * 14), 0.0f);
  EXPECT_THROW(m.encode_image(ctx, v), invalid_request);
}

// q/k/v stacked into one linear (the GPU default: one GEMV per layer instead of three) computes each output row
// as the separate projections do: the same logits, prompt and token by token, on the CPU where it can be forced.
TEST(glm4v_load, stacked_qkv_gives_the_separate_projections_logits) {
  const auto cases = test::load_cases();
  const std::vector<int32_t> tokens = cases["cases"][0]["tokens"].get<std::vector<int32_t>>();
  exec_context ctx(device{}, 2);
  model_load_options fused, separate;
  fused.fuse_qkv = true;
  separate.fuse_qkv = false;
  const std::unique_ptr<model> a = load_model(test::fixture_model_dir(), ctx, fused);
  const std::unique_ptr<model> b = load_model(test::fixture_model_dir(), ctx, separate);
  EXPECT_EQ(a->weight_bytes_per_token(), b->weight_bytes_per_token());
  test::sequence_driver sa(*a, ctx, int32_t(tokens.size()) + 4), sb(*b, ctx, int32_t(tokens.size()) + 4);
  EXPECT_EQ(sa.prefill(tokens, {}, true, 17), sb.prefill(tokens, {}, true, 17));
  EXPECT_EQ(sa.decode(7), sb.decode(7));
}

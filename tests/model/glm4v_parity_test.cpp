// tests/model/glm4v_parity_test.cpp: the GLM-4.1V model written over ops (load_model, model/model.h), driven
// through tests/model/model_driver.h, against Hugging Face (transformers 5.17, fp32 on the bf16 checkpoint):
//  - logits at every prompt position within 1e-3 x max|ref logit| of that position (measured worst: 1.25e-6 text,
//    4.1e-6 image + text), identical 32-token greedy continuations through the paged KV cache;
//  - HF's hidden states layer by layer through the dump callback (same names as before);
//  - end to end from the PNG files through our preprocessing.
// (Before the old model_runner implementation was deleted, the new model reproduced its prompt and decode logits
// bit for bit on every case: commit 12762f8, test_glm4v_vs_old.) The engine-level parity is tests/runtime.
// All of the above on the exact CPU GEMM (kernels/cpu/gemm_bf16.h: EXACT, pinned for the suite). The default
// precision where the CPU has AVX-512 BF16 rounds prefill's linear inputs to bf16 (as torch's bf16 model does):
// deployment_precision_is_within_transformers_bf16_deviation holds that to transformers' own bf16 deviation from
// these fp32 fixtures (tests/fixtures/ref/hf_bf16_error.json, the bound of the CUDA backend's deployment test).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

#include "fixture_io.h"
#include "kernels/cpu/gemm_bf16.h"
#include "media/glm4v_preprocess.h"
#include "media/image.h"
#include "model/model.h"
#include "model_driver.h"

using namespace autoglm;

namespace {

// max over positions of max|ours - ref| / max|ref|; every position must be within `tol`.
double worst_ratio(const std::vector<float>& ours, const std::vector<float>& ref, int64_t n_pos, int64_t vocab,
                   double tol, const std::string& name) {
  double worst = 0;
  for (int64_t p = 0; p < n_pos; ++p) {
    double mr = 0, md = 0;
    for (int64_t j = 0; j < vocab; ++j) {
      mr = std::max(mr, double(std::fabs(ref[size_t(p * vocab + j)])));
      md = std::max(md, double(std::fabs(ours[size_t(p * vocab + j)] - ref[size_t(p * vocab + j)])));
    }
    EXPECT_LE(md, tol * mr) << name << " position " << p;
    worst = std::max(worst, md / mr);
  }
  return worst;
}

class glm4v_parity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    process_precision_ = cpu::get_cpu_gemm_precision();
    cpu::set_cpu_gemm_precision(cpu::cpu_gemm_precision::EXACT);  // fp32 parity
    ctx_ = new exec_context(device{}, 2);
    model_ = load_model(test::fixture_model_dir(), *ctx_).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete ctx_;
    cpu::set_cpu_gemm_precision(process_precision_);
  }
  static exec_context* ctx_;
  static model* model_;
  static inline cpu::cpu_gemm_precision process_precision_ = cpu::cpu_gemm_precision::EXACT;
};
exec_context* glm4v_parity::ctx_ = nullptr;
model* glm4v_parity::model_ = nullptr;

}  // namespace

TEST_F(glm4v_parity, text_cases_logits_and_greedy) {
  const auto cases = test::load_cases();
  const int32_t vocab = model_->info().vocab_size;
  ASSERT_EQ(vocab, cases["vocab_size"].get<int32_t>());
  int n_checked = 0;
  for (const auto& c : cases["cases"]) {
    if (c.contains("images")) continue;
    const std::string name = c["name"];
    const std::vector<int32_t> tokens = c["tokens"].get<std::vector<int32_t>>();
    const std::vector<float> ref = test::load_f32(c["logits"]);
    test::sequence_driver seq(*model_, *ctx_, int32_t(tokens.size()) + 40);
    // Chunked prefill (chunk 17) must give the same logits as one pass.
    const std::vector<float> ours = seq.prefill(tokens, {}, true, 17);
    const double w = worst_ratio(ours, ref, int64_t(tokens.size()), vocab, 1e-3, name);
    std::printf("[parity] %-6s %4zu positions: worst max|diff|/max|ref| = %.3g\n", name.c_str(), tokens.size(), w);
    const std::vector<int32_t> got = test::greedy_continuation(
        seq, ours.data() + (tokens.size() - 1) * size_t(vocab), vocab, c["eos_token_ids"].get<std::vector<int32_t>>());
    EXPECT_EQ(got, c["greedy"].get<std::vector<int32_t>>()) << name << ": greedy continuation differs";
    ++n_checked;
  }
  EXPECT_GE(n_checked, 3);
}

TEST_F(glm4v_parity, hidden_states_match_layer_by_layer) {
  // HF's hidden_states tuple: embeddings, each layer's output, the final norm.
  const auto cases = test::load_cases();
  const auto& c = cases["cases"][0];
  const std::vector<int32_t> tokens = c["tokens"].get<std::vector<int32_t>>();
  std::vector<int64_t> shape;
  const std::vector<float> ref = test::load_f32(c["hidden_states"], &shape);  // [n_layers+1, n, hidden]
  const int64_t n = int64_t(tokens.size()), H = shape[2];
  exec_context ctx(device{}, 2);
  std::map<std::string, std::vector<float>> dumps;
  ctx.set_dump([&](const std::string& name, const tensor& t) {
    if (name.rfind("hidden.", 0) == 0) dumps[name].assign(t.ptr<float>(), t.ptr<float>() + t.n_elements());
  });
  test::sequence_driver seq(*model_, ctx, int32_t(n));
  seq.prefill(tokens, {}, true);
  for (int64_t l = 0; l < shape[0]; ++l) {
    const auto& ours = dumps["hidden." + std::to_string(l)];
    ASSERT_EQ(int64_t(ours.size()), n * H) << "hidden." << l;
    double max_ref = 0, max_diff = 0;
    for (int64_t i = 0; i < n * H; ++i) {
      max_ref = std::max(max_ref, double(std::fabs(ref[size_t(l * n * H + i)])));
      max_diff = std::max(max_diff, double(std::fabs(ours[size_t(i)] - ref[size_t(l * n * H + i)])));
    }
    EXPECT_LE(max_diff, 1e-4 * max_ref) << "hidden state " << l;
  }
}

TEST_F(glm4v_parity, image_cases_hf_pixels_logits_and_greedy) {
  const auto cases = test::load_cases();
  const int32_t vocab = model_->info().vocab_size;
  int n_checked = 0;
  for (const auto& c : cases["cases"]) {
    if (!c.contains("images")) continue;
    const std::string name = c["name"];
    const std::vector<int32_t> tokens = c["tokens"].get<std::vector<int32_t>>();
    const std::vector<vision_input> images = test::fixture_images(c);
    test::sequence_driver seq(*model_, *ctx_, int32_t(tokens.size()) + 40);
    // Chunks of 13 split images across forwards: spans start mid-image.
    const std::vector<float> ours = seq.prefill(tokens, images, true, 13);
    const double w = worst_ratio(ours, test::load_f32(c["logits"]), int64_t(tokens.size()), vocab, 1e-3, name);
    std::printf("[parity] %-20s %3zu positions, %zu images: worst max|diff|/max|ref| = %.3g\n", name.c_str(),
                tokens.size(), images.size(), w);
    const std::vector<int32_t> got = test::greedy_continuation(
        seq, ours.data() + (tokens.size() - 1) * size_t(vocab), vocab, c["eos_token_ids"].get<std::vector<int32_t>>());
    EXPECT_EQ(got, c["greedy"].get<std::vector<int32_t>>()) << name << ": greedy continuation differs";
    ++n_checked;
  }
  EXPECT_EQ(n_checked, 3);
}

TEST_F(glm4v_parity, image_cases_end_to_end_from_png_files) {
  const auto cases = test::load_cases();
  const int32_t vocab = model_->info().vocab_size;
  const glm4v_preprocess_config pre = glm4v_preprocess_config::load(test::fixture_model_dir());
  for (const auto& c : cases["cases"]) {
    if (!c.contains("images")) continue;
    std::vector<vision_input> images;
    for (const auto& f : c["images"]) {
      glm4v_pixels px = glm4v_preprocess(decode_image_file(test::ref_dir() + "/" + f.get<std::string>()), pre);
      vision_input v;
      v.grid_t = px.grid_t;
      v.grid_h = px.grid_h;
      v.grid_w = px.grid_w;
      v.pixel_values = std::move(px.values);
      images.push_back(std::move(v));
    }
    const std::vector<int32_t> tokens = c["tokens"].get<std::vector<int32_t>>();
    test::sequence_driver seq(*model_, *ctx_, int32_t(tokens.size()));
    const std::vector<float> ours = seq.prefill(tokens, images, true);
    worst_ratio(ours, test::load_f32(c["logits"]), int64_t(tokens.size()), vocab, 1e-3, c["name"]);
  }
}

// The CPU's deployment precision (ROUNDED: BF16-weight linears with 8+ rows take x rounded to bf16) on every case,
// text and images from HF's pixels, in one prefill pass: each position's logits within transformers' own bf16
// deviation for that case. Measured (Zen 4): chat 0.0082, short 9e-7 (6 rows: the exact GEMM), long 0.0076,
// one_image 0.023, two_images 0.019, image_between_text 0.016, against transformers' 0.018, 0.013, 0.015, 0.045,
// 0.044, 0.046. Greedy agreement with the fp32 fixtures is printed, not asserted: at bf16 precision a near-tie may
// go the other way (one_image's does after 17 of 32 tokens; the others give all 32).
TEST_F(glm4v_parity, deployment_precision_is_within_transformers_bf16_deviation) {
  if (!cpu::bf16_gemm_available()) GTEST_SKIP() << "no AVX-512 BF16 on this CPU: LINEAR runs the exact GEMM";
  const cpu::cpu_gemm_precision_scope rounded(cpu::cpu_gemm_precision::ROUNDED);
  const nlohmann::json hf_bf16 = nlohmann::json::parse(std::ifstream(test::ref_dir() + "/hf_bf16_error.json"));
  const auto cases = test::load_cases();
  const int32_t vocab = model_->info().vocab_size;
  int n_rounded = 0;
  for (const auto& c : cases["cases"]) {
    const std::string name = c["name"];
    const std::vector<int32_t> tokens = c["tokens"].get<std::vector<int32_t>>();
    const std::vector<vision_input> images = test::fixture_images(c);
    const double tol = hf_bf16.at("cases").at(name).at("worst_rel_max_diff").get<double>();
    test::sequence_driver seq(*model_, *ctx_, int32_t(tokens.size()) + 40);
    const std::vector<float> ours = seq.prefill(tokens, images, true);
    const double w = worst_ratio(ours, test::load_f32(c["logits"]), int64_t(tokens.size()), vocab, tol, name);
    const std::vector<int32_t> got = test::greedy_continuation(
        seq, ours.data() + (tokens.size() - 1) * size_t(vocab), vocab, c["eos_token_ids"].get<std::vector<int32_t>>());
    const std::vector<int32_t> ref = c["greedy"].get<std::vector<int32_t>>();
    size_t same = 0;
    while (same < got.size() && same < ref.size() && got[same] == ref[same]) ++same;
    std::printf("[cpu bf16 gemm] %-20s %3zu positions: worst %.3g (transformers in bf16: %.3g), greedy: first %zu of "
                "%zu tokens as HF\n", name.c_str(), tokens.size(), w, tol, same, ref.size());
    n_rounded += int64_t(tokens.size()) >= cpu::bf16_gemm_min_rows() && w > 1e-5;  // the rounded path did run
  }
  EXPECT_GE(n_rounded, 5);
}

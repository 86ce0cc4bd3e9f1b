// Parity of the text decoder with Hugging Face (transformers 5.17, fp32 on the bf16 checkpoint):
// logits at every position within 1e-3 x max|ref logit| of that position, identical 32-token greedy
// continuations through our paged KV cache.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "fixture_io.h"
#include "model/model_loader.h"
#include "model/glm4v/glm4v_model.h"
#include "model/sequence_runner.h"
#include <map>

using namespace autoglm;

namespace {

struct parity_stats {
  double worst_ratio = 0;  // max over positions of max|diff| / max|ref|
};

parity_stats compare_logits(const std::vector<float>& ours, const std::vector<float>& ref, int64_t n_pos, int64_t vocab,
                            const std::string& name) {
  parity_stats st;
  for (int64_t p = 0; p < n_pos; ++p) {
    double max_ref = 0, max_diff = 0;
    for (int64_t j = 0; j < vocab; ++j) {
      max_ref = std::max(max_ref, double(std::fabs(ref[size_t(p * vocab + j)])));
      max_diff = std::max(max_diff, double(std::fabs(ours[size_t(p * vocab + j)] - ref[size_t(p * vocab + j)])));
    }
    st.worst_ratio = std::max(st.worst_ratio, max_diff / max_ref);
    EXPECT_LE(max_diff, 1e-3 * max_ref) << name << " position " << p << ": max diff " << max_diff << ", max |ref| " << max_ref;
  }
  return st;
}

class text_parity : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST(text_parity_all, every_text_case) {
  auto model = load_model_runner(test::fixture_model_dir(), 2);
  auto cases = test::load_cases();
  const int32_t vocab = model->info().vocab_size;
  ASSERT_EQ(vocab, cases["vocab_size"].get<int32_t>());
  int n_checked = 0;
  for (const auto& c : cases["cases"]) {
    if (c.contains("images")) continue;
    const std::string name = c["name"];
    std::vector<int32_t> tokens = c["tokens"].get<std::vector<int32_t>>();
    std::vector<int64_t> shape;
    std::vector<float> ref = test::load_f32(c["logits"], &shape);
    ASSERT_EQ(shape[0], int64_t(tokens.size()));

    sequence_runner seq(*model, int32_t(tokens.size()) + 40);
    // Chunked prefill (chunk 17) must give the same logits as one pass.
    std::vector<float> ours = seq.prefill(tokens, {}, true, 17);
    parity_stats st = compare_logits(ours, ref, int64_t(tokens.size()), vocab, name);
    std::printf("[parity] %-6s %4zu positions: worst max|diff|/max|ref| = %.3g\n", name.c_str(), tokens.size(), st.worst_ratio);

    // Greedy continuation through the KV cache, stopping at eos like HF generate.
    std::vector<int32_t> expect = c["greedy"].get<std::vector<int32_t>>();
    std::vector<int32_t> eos = c["eos_token_ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> got = test::greedy_continuation(seq, ours.data() + (tokens.size() - 1) * size_t(vocab), vocab, eos);
    EXPECT_EQ(got, expect) << name << ": greedy continuation differs";
    ++n_checked;
  }
  EXPECT_GE(n_checked, 3);
}

TEST(text_parity_all, hidden_states_match_layer_by_layer) {
  // Diagnostic granularity: HF's hidden_states tuple (embeddings, each layer's output, final norm).
  auto model = load_model_runner(test::fixture_model_dir(), 2);
  auto cases = test::load_cases();
  const auto& c = cases["cases"][0];
  std::vector<int32_t> tokens = c["tokens"].get<std::vector<int32_t>>();
  std::vector<int64_t> shape;
  std::vector<float> ref = test::load_f32(c["hidden_states"], &shape);  // [n_layers+1, n, hidden]
  const int64_t n = int64_t(tokens.size()), H = shape[2];
  auto* glm = dynamic_cast<glm4v::glm4v_model*>(model.get());
  ASSERT_NE(glm, nullptr);
  std::map<std::string, std::vector<float>> dumps;
  glm->text().set_dump([&](const std::string& name, const float* d, int64_t rows, int64_t cols) {
    if (name.rfind("hidden.", 0) == 0) dumps[name].assign(d, d + rows * cols);
  });
  sequence_runner seq(*model, int32_t(n));
  seq.prefill(tokens, {}, true);
  glm->text().set_dump(nullptr);
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

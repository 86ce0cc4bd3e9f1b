// tests/model/whisper_model_test.cpp: the Whisper model over ops (model/whisper) without reference fixtures:
// config.json / generation_config.json validation naming file and key; a checkpoint written by the test loads,
// encodes to finite states of the right shape, and decodes a prefix the same whether it runs in one pass or one
// token at a time through the decoder's KV cache (and whether its cross K/V come from one state or another); a
// missing or mis-shaped tensor names itself.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "model/whisper/whisper.h"
#include "ops/ops.h"
#include "whisper_fixture.h"

using namespace autoglm;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const error& e) {
    return e.what();
  }
  return "";
}

std::vector<float> features(uint64_t seed, int64_t n) {
  std::vector<float> f(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) f[size_t(i)] = test::fixture_value(seed, uint64_t(i), -0.2, 0.8);
  return f;
}

}  // namespace

TEST(whisper_config, reads_and_validates) {
  const std::string dir = test::temp_dir("whisper_cfg");
  nlohmann::json cfg = test::tiny_whisper_config(64, 2, 4);
  test::write_whisper_dir(dir, cfg, {});
  const whisper::config c = whisper::config::load(dir);
  EXPECT_EQ(c.d_model, 64);
  EXPECT_EQ(c.head_dim(), 16);
  EXPECT_EQ(c.n_frames(), 3000);
  const whisper::generation_config g = whisper::generation_config::load(dir, c.vocab_size);
  EXPECT_EQ(g.decoder_start_token_id, 50258);
  EXPECT_EQ(g.no_timestamps_token_id, 50363);
  EXPECT_EQ(g.timestamp_begin(), 50364);
  EXPECT_EQ(g.language_token("de"), 50261);
  EXPECT_EQ(g.language_token("xx"), -1);
  EXPECT_EQ(g.task_to_id.at("transcribe"), 50359);
  EXPECT_EQ(g.begin_suppress_tokens, (std::vector<int32_t>{220, 50257}));

  auto rewrite = [&](nlohmann::json j) { std::ofstream(dir + "/config.json") << j.dump(); };
  cfg["decoder_attention_heads"] = 5;
  rewrite(cfg);
  EXPECT_NE(error_of([&] { whisper::config::load(dir); }).find("decoder_attention_heads"), std::string::npos);
  cfg = test::tiny_whisper_config();
  cfg["activation_function"] = "relu";
  rewrite(cfg);
  EXPECT_NE(error_of([&] { whisper::config::load(dir); }).find("activation_function"), std::string::npos);
  cfg = test::tiny_whisper_config();
  cfg.erase("max_source_positions");
  rewrite(cfg);
  EXPECT_NE(error_of([&] { whisper::config::load(dir); }).find("max_source_positions"), std::string::npos);
  // A generation config whose ids lie outside the vocabulary.
  EXPECT_NE(error_of([&] { whisper::generation_config::load(dir, 50000); }).find("generation_config.json"),
            std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(whisper_model, missing_and_misshaped_tensors_name_themselves) {
  const std::string dir = test::temp_dir("whisper_bad_tensors");
  const nlohmann::json cfg = test::tiny_whisper_config(16, 1, 2);
  std::vector<test::fixture_tensor> ts = test::whisper_tensor_specs(cfg);
  std::vector<test::fixture_tensor> missing(ts.begin(), ts.end() - 1);  // no model.decoder.layer_norm.bias
  test::write_whisper_dir(dir, cfg, missing);
  exec_context ctx(device{}, 1);
  EXPECT_NE(error_of([&] { whisper::model::load(dir, ctx); }).find("model.decoder.layer_norm.bias"), std::string::npos);
  ts[0].shape = {16, 81, 3};  // conv1 with one mel bin too many
  test::write_whisper_dir(dir, cfg, ts);
  EXPECT_NE(error_of([&] { whisper::model::load(dir, ctx); }).find("model.encoder.conv1.weight"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(whisper_model, incremental_decoding_matches_one_pass) {
  const std::string dir = test::temp_dir("whisper_model");
  const nlohmann::json cfg = test::tiny_whisper_config(32, 2, 4);
  test::write_whisper_dir(dir, cfg, test::whisper_tensor_specs(cfg));
  exec_context ctx(device{}, 2);
  const auto m = whisper::model::load(dir, ctx);
  const whisper::config& c = m->cfg();
  const std::vector<float> f = features(77, int64_t(c.num_mel_bins) * c.n_frames());
  const tensor states = m->encoder().encode(ctx, f.data());
  ASSERT_EQ(states.rows(), 1500);
  ASSERT_EQ(states.cols(), 32);
  const tensor host = ops::host_f32(ctx, states);
  for (int64_t i = 0; i < host.n_elements(); ++i) ASSERT_TRUE(std::isfinite(host.ptr<float>()[i]));

  const std::vector<int32_t> ids = {50361, 440, 2068, 50258, 50259, 50359, 50363, 1000};
  const int64_t V = c.vocab_size, n = int64_t(ids.size());
  std::vector<int32_t> all(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) all[i] = int32_t(i);
  whisper::decoder_state one = m->decoder().start(ctx, states);
  const std::vector<float> full = m->decoder().forward(ctx, one, ids, all);
  ASSERT_EQ(int64_t(full.size()), n * V);
  EXPECT_EQ(one.n_past, n);
  // Token by token, with the prefix split 3 + 1 + 1 + ...: the same logits within F32 rounding.
  whisper::decoder_state inc = m->decoder().start(ctx, states);
  std::vector<float> stepwise = m->decoder().forward(ctx, inc, {ids[0], ids[1], ids[2]}, {0, 1, 2});
  for (int64_t i = 3; i < n; ++i) {
    const std::vector<float> l = m->decoder().forward(ctx, inc, {ids[size_t(i)]}, {0});
    stepwise.insert(stepwise.end(), l.begin(), l.end());
  }
  double max_ref = 0, max_diff = 0;
  for (size_t i = 0; i < full.size(); ++i) {
    max_ref = std::max(max_ref, double(std::fabs(full[i])));
    max_diff = std::max(max_diff, double(std::fabs(full[i] - stepwise[i])));
  }
  EXPECT_GT(max_ref, 0.1);
  EXPECT_LE(max_diff, 1e-5 * max_ref);
  // Another window's encoder states give other logits (the cross-attention is wired to the state it was given).
  const std::vector<float> g = features(78, int64_t(c.num_mel_bins) * c.n_frames());
  const tensor states2 = m->encoder().encode(ctx, g.data());
  whisper::decoder_state other = m->decoder().start(ctx, states2);
  const std::vector<float> l2 = m->decoder().forward(ctx, other, ids, {int32_t(n - 1)});
  double diff = 0;
  for (int64_t j = 0; j < V; ++j) diff = std::max(diff, double(std::fabs(l2[size_t(j)] - full[size_t((n - 1) * V + j)])));
  EXPECT_GT(diff, 1e-3);
  // Past max_target_positions: an error, not a write outside the cache.
  whisper::decoder_state full_state = m->decoder().start(ctx, states);
  full_state.n_past = c.max_target_positions - 1;
  EXPECT_THROW(m->decoder().forward(ctx, full_state, {1, 2}, {1}), error);
  std::filesystem::remove_all(dir);
}

// Sampler: greedy, truncation (top-k, top-p, min-p), penalties, seeding and raw-model logprobs.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "core/kernel_registry.h"
#include "kernels/cpu/sample.h"
#include "runtime/sampler.h"

using namespace autoglm;

namespace {

std::vector<float> logits_from_probs(const std::vector<double>& p) {
  std::vector<float> l;
  for (double x : p) l.push_back(float(std::log(x)));
  return l;
}

std::map<int32_t, int> histogram(const sampling_params& sp, const std::vector<float>& logits, int n,
                                 const std::vector<int32_t>& prompt = {}) {
  sampler s(sp, prompt);
  std::map<int32_t, int> h;
  for (int i = 0; i < n; ++i) {
    std::vector<float> row = logits;
    ++h[s.sample(row.data(), int32_t(row.size())).token];
  }
  return h;
}

sampling_params seeded(float temperature = 1.0f) {
  sampling_params sp;
  sp.temperature = temperature;
  sp.seed = 1234;
  return sp;
}

}  // namespace

TEST(sampler, greedy_picks_argmax_lowest_id_on_tie) {
  sampling_params sp;
  sp.temperature = 0.0f;
  sampler s(sp, {});
  std::vector<float> l = {0.5f, 3.0f, -1.0f, 3.0f};
  EXPECT_EQ(s.sample(l.data(), 4).token, 1);
  sampling_params k1 = seeded();
  k1.top_k = 1;
  sampler s1(k1, {});
  std::vector<float> l2 = {0.1f, 0.2f, 5.0f, 0.3f};
  EXPECT_EQ(s1.sample(l2.data(), 4).token, 2);
}

TEST(sampler, unrestricted_sampling_follows_the_distribution) {
  const std::vector<double> p = {0.5, 0.3, 0.2};
  auto h = histogram(seeded(), logits_from_probs(p), 20000);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(h[i] / 20000.0, p[size_t(i)], 0.02) << i;
}

TEST(sampler, temperature_sharpens) {
  const std::vector<double> p = {0.6, 0.4};
  auto h = histogram(seeded(0.5f), logits_from_probs(p), 20000);
  // T = 0.5 squares the probabilities: 0.36 / (0.36 + 0.16).
  EXPECT_NEAR(h[0] / 20000.0, 0.36 / 0.52, 0.02);
}

TEST(sampler, top_k_never_returns_a_third_token) {
  sampling_params sp = seeded();
  sp.top_k = 2;
  auto h = histogram(sp, logits_from_probs({0.1, 0.4, 0.05, 0.35, 0.1}), 5000);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_GT(h[1], 0);
  EXPECT_GT(h[3], 0);
  EXPECT_NEAR(h[1] / 5000.0, 0.4 / 0.75, 0.03);
}

TEST(sampler, top_p_keeps_the_minimal_nucleus) {
  sampling_params sp = seeded();
  sp.top_p = 0.8f;
  // Descending: 0.5, 0.25, 0.15, 0.1 -> 0.5 + 0.25 = 0.75 < 0.8, so the nucleus is {0, 1, 2}.
  auto h = histogram(sp, logits_from_probs({0.5, 0.25, 0.15, 0.1}), 10000);
  EXPECT_EQ(h.size(), 3u);
  EXPECT_EQ(h.count(3), 0u);
  EXPECT_NEAR(h[0] / 10000.0, 0.5 / 0.9, 0.03);
  sp.top_p = 0.75f;  // exactly reached by {0, 1}
  auto h2 = histogram(sp, logits_from_probs({0.5, 0.25, 0.15, 0.1}), 5000);
  EXPECT_EQ(h2.size(), 2u);
  sp.top_p = 0.1f;  // the top token alone
  auto h3 = histogram(sp, logits_from_probs({0.5, 0.25, 0.15, 0.1}), 1000);
  EXPECT_EQ(h3.size(), 1u);
  EXPECT_EQ(h3.begin()->first, 0);
}

TEST(sampler, min_p_drops_tokens_below_the_scaled_max) {
  sampling_params sp = seeded();
  sp.min_p = 0.3f;  // threshold 0.3 * 0.5 = 0.15: keeps 0.5, 0.3, 0.15; drops 0.05
  auto h = histogram(sp, logits_from_probs({0.5, 0.3, 0.15, 0.05}), 10000);
  EXPECT_EQ(h.size(), 3u);
  EXPECT_EQ(h.count(3), 0u);
}

TEST(sampler, min_p_applies_after_temperature) {
  // At T = 0.5 the probabilities are proportional to {0.16, 0.09, 0.04}: token 2 is 0.25 of the max, below
  // min_p 0.3, and is dropped (before temperature it was 0.5 of the max and would have stayed); token 1 stays.
  sampling_params sp = seeded(0.5f);
  sp.min_p = 0.3f;
  auto h = histogram(sp, logits_from_probs({0.4, 0.3, 0.2}), 5000);
  EXPECT_EQ(h.count(2), 0u);
  EXPECT_GT(h[1], 0);
}

TEST(sampler, repetition_penalty_hf_semantics) {
  sampling_params sp;
  sp.temperature = 0.0f;
  sp.repetition_penalty = 2.0f;
  // Token 0 (in the prompt) has the top positive logit 3 -> 1.5, below token 1's 2. A negative logit in the
  // prompt gets more negative (-1 -> -2) rather than less.
  sampler s(sp, {0, 2});
  std::vector<float> l = {3.0f, 2.0f, -1.0f, -1.5f};
  EXPECT_EQ(s.sample(l.data(), 4).token, 1);
  EXPECT_FLOAT_EQ(l[0], 1.5f);
  EXPECT_FLOAT_EQ(l[2], -2.0f);
  EXPECT_FLOAT_EQ(l[3], -1.5f);
  // Generated tokens count too.
  s.accept(1);
  std::vector<float> l2 = {3.0f, 2.0f, -1.0f, 1.6f};
  EXPECT_EQ(s.sample(l2.data(), 4).token, 3);
}

TEST(sampler, frequency_and_presence_count_generated_tokens_only) {
  sampling_params sp;
  sp.temperature = 0.0f;
  sp.frequency_penalty = 0.5f;
  sp.presence_penalty = 0.25f;
  sampler s(sp, {0, 0, 0});  // prompt tokens are not penalized
  std::vector<float> l = {2.0f, 1.9f};
  EXPECT_EQ(s.sample(l.data(), 2).token, 0);
  EXPECT_FLOAT_EQ(l[0], 2.0f);
  s.accept(0);
  s.accept(0);
  std::vector<float> l2 = {2.0f, 1.9f};
  EXPECT_EQ(s.sample(l2.data(), 2).token, 1);
  EXPECT_FLOAT_EQ(l2[0], 2.0f - 0.5f * 2 - 0.25f);
}

TEST(sampler, same_seed_same_sequence_different_seed_differs) {
  std::vector<float> logits(64);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = float(std::sin(double(i))) * 2.0f;
  auto run = [&](uint64_t seed) {
    sampling_params sp;
    sp.temperature = 1.0f;
    sp.seed = seed;
    sp.top_p = 0.95f;
    sampler s(sp, {});
    std::vector<int32_t> out;
    for (int i = 0; i < 200; ++i) {
      std::vector<float> row = logits;
      out.push_back(s.sample(row.data(), 64).token);
      s.accept(out.back());
    }
    return out;
  };
  EXPECT_EQ(run(7), run(7));
  EXPECT_NE(run(7), run(8));
}

TEST(sampler, logprobs_are_raw_model_log_softmax) {
  sampling_params sp;
  sp.temperature = 0.0f;
  sp.repetition_penalty = 10.0f;  // changes the choice but not the reported logprobs
  sp.top_logprobs = 2;
  sampler s(sp, {0});
  const std::vector<double> p = {0.6, 0.3, 0.1};
  std::vector<float> l = logits_from_probs(p);
  for (float& x : l) x += 5.0f;  // a shift does not change log-softmax
  sample_result r = s.sample(l.data(), 3);
  EXPECT_EQ(r.token, 1);
  EXPECT_NEAR(r.logprob, std::log(0.3), 1e-5);
  ASSERT_EQ(r.top_logprobs.size(), 2u);
  EXPECT_EQ(r.top_logprobs[0].token, 0);
  EXPECT_NEAR(r.top_logprobs[0].logprob, std::log(0.6), 1e-5);
  EXPECT_EQ(r.top_logprobs[1].token, 1);
  EXPECT_NEAR(r.top_logprobs[1].logprob, std::log(0.3), 1e-5);
}

TEST(sampler, sampled_logprob_unaffected_by_temperature) {
  sampling_params sp = seeded(0.3f);
  sp.top_logprobs = 0;
  sampler s(sp, {});
  const std::vector<double> p = {0.7, 0.2, 0.1};
  for (int i = 0; i < 50; ++i) {
    std::vector<float> l = logits_from_probs(p);
    sample_result r = s.sample(l.data(), 3);
    EXPECT_NEAR(r.logprob, std::log(p[size_t(r.token)]), 1e-5);
    EXPECT_TRUE(r.top_logprobs.empty());
  }
}

TEST(sampler, top_p_over_a_large_flat_vocabulary) {
  // 4000 equal tokens: the nucleus for top_p 0.5 is ids 0..1999 (ties keep the lowest ids), past the 1024-token
  // head the sampler sorts first.
  sampling_params sp = seeded();
  sp.top_p = 0.5f;
  sampler s(sp, {});
  std::set<int32_t> seen;
  for (int i = 0; i < 500; ++i) {
    std::vector<float> row(4000, 0.0f);
    seen.insert(s.sample(row.data(), 4000).token);
  }
  EXPECT_LT(*seen.rbegin(), 2000);
  EXPECT_GE(*seen.rbegin(), 1024);
  EXPECT_GT(seen.size(), 300u);
}

// The device path (SAMPLE op, kernels/cpu/sample.h's rule, here through its CPU implementation): the same
// distributions as the host sampler for the truncations it takes, and only requests without penalties or
// logprobs take it.
TEST(sampler, device_params_draw_the_same_distributions_as_the_host_sampler) {
  const std::vector<float> logits = logits_from_probs({0.05, 0.4, 0.1, 0.3, 0.15});
  struct setting { float t; int32_t k; float p; float min_p; };
  for (const setting st : {setting{1.0f, 0, 1.0f, 0.0f}, setting{0.7f, 0, 1.0f, 0.0f}, setting{1.0f, 2, 1.0f, 0.0f},
                           setting{1.0f, 0, 0.75f, 0.0f}, setting{1.0f, 0, 1.0f, 0.3f}, setting{1.3f, 3, 0.9f, 0.2f}}) {
    sampling_params sp = seeded(st.t);
    sp.top_k = st.k, sp.top_p = st.p, sp.min_p = st.min_p;
    const int n = 40000;
    const std::map<int32_t, int> host = histogram(sp, logits, n);
    sampler s(sp, {});
    ASSERT_TRUE(s.device_sampleable());
    std::map<int32_t, int> device;
    float row[k_sample_params];
    for (int i = 0; i < n; ++i) {
      s.device_params(row);
      ++device[cpu::sample_row(logits.data(), int64_t(logits.size()), row)];
    }
    for (int32_t t = 0; t < 5; ++t) {
      const double ph = host.count(t) ? host.at(t) / double(n) : 0.0, pd = device.count(t) ? device.at(t) / double(n) : 0.0;
      EXPECT_NEAR(pd, ph, 0.015) << "token " << t << " T=" << st.t << " k=" << st.k << " p=" << st.p << " min_p=" << st.min_p;
      if (ph == 0.0) {
        EXPECT_EQ(pd, 0.0) << "token " << t << " is truncated on the host but drawn on the device";
      }
    }
  }
}

TEST(sampler, device_params_greedy_repeatable_and_only_without_penalties_or_logprobs) {
  sampling_params greedy;
  greedy.temperature = 0.0f;
  sampler g(greedy, {});
  float row[k_sample_params];
  g.device_params(row);
  EXPECT_EQ(row[SP_TEMPERATURE], 0.0f);
  const std::vector<float> logits = {0.5f, 2.0f, 2.0f, -1.0f};
  EXPECT_EQ(cpu::sample_row(logits.data(), 4, row), 1);  // lowest id of the tie, as sample()

  sampler a(seeded(), {}), b(seeded(), {});
  for (int i = 0; i < 20; ++i) {
    float ra[k_sample_params], rb[k_sample_params];
    a.device_params(ra);
    b.device_params(rb);
    EXPECT_EQ(ra[SP_UNIFORM], rb[SP_UNIFORM]);
    EXPECT_GE(ra[SP_UNIFORM], 0.0f);
    EXPECT_LT(ra[SP_UNIFORM], 1.0f);
  }
  for (int which = 0; which < 4; ++which) {
    sampling_params sp = seeded();
    if (which == 0) sp.repetition_penalty = 1.1f;
    if (which == 1) sp.frequency_penalty = 0.5f;
    if (which == 2) sp.presence_penalty = 0.5f;
    if (which == 3) sp.top_logprobs = 0;
    EXPECT_FALSE(sampler(sp, {}).device_sampleable()) << which;
  }
}

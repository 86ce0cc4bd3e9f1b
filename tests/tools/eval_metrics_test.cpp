// The metric functions of `autoglm eval` (tools/cli_eval_metrics.h) against values worked out by hand in closed
// form: two-token distributions whose KL, cross-entropy and entropy are a few logarithms, a shift by 1000 that
// would overflow a float exp, a 150k-entry uniform row, ties for top-1, and the nearest-rank p99.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "cli_eval_metrics.h"

using namespace autoglm::cli;

namespace {

// p = softmax([0, ln 3]) = [1/4, 3/4]; q = softmax([0, 0]) = [1/2, 1/2].
const float k_ln3 = float(std::log(3.0));

}  // namespace

TEST(eval_metrics, log_softmax_of_a_two_token_row) {
  std::vector<double> out;
  const float x[] = {0.0f, k_ln3};
  log_softmax(x, 2, 1.0, out);
  // ln(1/4) and ln(3/4) up to the float rounding of ln 3 (relative 6e-8).
  EXPECT_NEAR(out[0], std::log(0.25), 1e-7);
  EXPECT_NEAR(out[1], std::log(0.75), 1e-7);
  // Shifted by 1000: exp(1000) overflows any float, the result must not move.
  const float y[] = {1000.0f, 1000.0f + k_ln3};
  std::vector<double> shifted;
  log_softmax(y, 2, 1.0, shifted);
  EXPECT_NEAR(shifted[0], std::log(0.25), 1e-4);  // 1000 + ln 3 in float: the ulp at 1000 is 6e-5
  EXPECT_NEAR(shifted[1], std::log(0.75), 1e-4);
  // Temperature 2: softmax([0, ln 3 / 2]) = [1, sqrt 3] / (1 + sqrt 3).
  log_softmax(x, 2, 2.0, out);
  EXPECT_NEAR(out[0], -std::log(1.0 + std::sqrt(3.0)), 1e-7);
  EXPECT_NEAR(out[1], std::log(std::sqrt(3.0) / (1.0 + std::sqrt(3.0))), 1e-7);
}

TEST(eval_metrics, a_uniform_row_of_a_real_vocabulary) {
  const std::vector<float> x(151552, -3.25f);
  std::vector<double> out;
  log_softmax(x.data(), int64_t(x.size()), 5.0, out);
  for (size_t i : {size_t(0), size_t(77777), x.size() - 1}) EXPECT_NEAR(out[i], -std::log(151552.0), 1e-12);
  EXPECT_NEAR(cross_entropy(out, out), std::log(151552.0), 1e-9);  // the entropy of a uniform distribution
  EXPECT_EQ(kl_divergence(out, out), 0.0);
}

TEST(eval_metrics, one_position_against_closed_forms) {
  const float ref[] = {0.0f, k_ln3}, quant[] = {0.0f, 0.0f};
  const position_measures m = measure_position(ref, quant, 2, /*next_token=*/1, /*temperature=*/2.0);
  // KL(p || q) = 1/4 ln((1/4)/(1/2)) + 3/4 ln((3/4)/(1/2)).
  EXPECT_NEAR(m.kl, 0.25 * std::log(0.5) + 0.75 * std::log(1.5), 1e-7);
  EXPECT_NEAR(m.nll_ref, std::log(4.0 / 3.0), 1e-7);
  EXPECT_NEAR(m.nll_quant, std::log(2.0), 1e-12);
  // argmax: 1 for ref, 0 for quant (a tie takes the first index).
  EXPECT_FALSE(m.top1_agree);
  // At T = 2, p = [1, sqrt 3] / (1 + sqrt 3), q stays uniform: CE = ln 2, entropy = -sum p ln p.
  const double s3 = std::sqrt(3.0), p0 = 1.0 / (1.0 + s3), p1 = s3 / (1.0 + s3);
  EXPECT_NEAR(m.soft_ce, std::log(2.0), 1e-12);
  EXPECT_NEAR(m.ref_entropy, -(p0 * std::log(p0) + p1 * std::log(p1)), 1e-7);
  // The same model twice: nothing moves.
  const position_measures same = measure_position(ref, ref, 2, 0, 5.0);
  EXPECT_EQ(same.kl, 0.0);
  EXPECT_TRUE(same.top1_agree);
  EXPECT_EQ(same.nll_ref, same.nll_quant);
  EXPECT_EQ(same.soft_ce, same.ref_entropy);
}

TEST(eval_metrics, summary_means_perplexity_and_p99) {
  eval_accumulator acc(5.0);
  // 200 positions with KL 1..200, nll_ref ln 2 and nll_quant ln 4 everywhere, agreeing on every other one.
  for (int i = 1; i <= 200; ++i) {
    position_measures m;
    m.kl = i;
    m.top1_agree = i % 2 == 0;
    m.nll_ref = std::log(2.0);
    m.nll_quant = std::log(4.0);
    m.soft_ce = 3.0;
    m.ref_entropy = 2.5;
    acc.add(m);
  }
  const eval_summary s = acc.summary();
  EXPECT_EQ(s.n_positions, 200);
  EXPECT_DOUBLE_EQ(s.kl_mean, 100.5);
  EXPECT_EQ(s.kl_p99, 198.0);  // nearest rank: ceil(0.99 * 200) = 198
  EXPECT_EQ(s.kl_max, 200.0);
  EXPECT_DOUBLE_EQ(s.top1_agreement, 0.5);
  EXPECT_NEAR(s.ppl_ref, 2.0, 1e-12);
  EXPECT_NEAR(s.ppl_quant, 4.0, 1e-12);
  EXPECT_DOUBLE_EQ(s.soft_ce, 3.0);
  EXPECT_DOUBLE_EQ(s.kl_at_t, 0.5);
  EXPECT_DOUBLE_EQ(s.soft_ce_scaled(), 75.0);  // the guide's soft_cross_entropy multiplies by T^2
  EXPECT_DOUBLE_EQ(s.kl_at_t_scaled(), 12.5);
  // 100 positions: rank 99; one position: itself.
  eval_accumulator hundred(1.0), one(1.0);
  for (int i = 100; i >= 1; --i) {
    position_measures m;
    m.kl = i;
    hundred.add(m);
  }
  EXPECT_EQ(hundred.summary().kl_p99, 99.0);
  position_measures m;
  m.kl = 0.25;
  one.add(m);
  EXPECT_EQ(one.summary().kl_p99, 0.25);
  EXPECT_EQ(eval_accumulator(1.0).summary().n_positions, 0);
}

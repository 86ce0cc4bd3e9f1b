// tools/cli_eval_metrics.cpp: see cli_eval_metrics.h.
#include "cli_eval_metrics.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace autoglm::cli {

void log_softmax(const float* logits, int64_t n, double temperature, std::vector<double>& out) {
  AG_CHECK(n > 0 && temperature > 0, "log_softmax: empty row or temperature <= 0");
  out.resize(size_t(n));
  const double inv_t = 1.0 / temperature;
  double mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) {
    out[size_t(i)] = double(logits[i]) * inv_t;
    mx = std::max(mx, out[size_t(i)]);
  }
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(out[size_t(i)] - mx);
  const double lse = mx + std::log(sum);
  for (double& v : out) v -= lse;
}

double kl_divergence(const std::vector<double>& log_p, const std::vector<double>& log_q) {
  AG_CHECK(log_p.size() == log_q.size(), "kl_divergence: sizes differ");
  double kl = 0;
  for (size_t i = 0; i < log_p.size(); ++i) {
    const double p = std::exp(log_p[i]);
    if (p > 0) kl += p * (log_p[i] - log_q[i]);
  }
  return kl;
}

double cross_entropy(const std::vector<double>& log_p, const std::vector<double>& log_q) {
  AG_CHECK(log_p.size() == log_q.size(), "cross_entropy: sizes differ");
  double ce = 0;
  for (size_t i = 0; i < log_p.size(); ++i) {
    const double p = std::exp(log_p[i]);
    if (p > 0) ce -= p * log_q[i];
  }
  return ce;
}

position_measures measure_position(const float* ref, const float* quant, int64_t n_vocab, int32_t next_token,
                                   double temperature) {
  AG_CHECK(next_token >= 0 && next_token < n_vocab, "measure_position: next token outside the vocabulary");
  std::vector<double> lp, lq;
  position_measures m;
  log_softmax(ref, n_vocab, 1.0, lp);
  log_softmax(quant, n_vocab, 1.0, lq);
  m.kl = kl_divergence(lp, lq);
  m.nll_ref = -lp[size_t(next_token)];
  m.nll_quant = -lq[size_t(next_token)];
  m.top1_agree = std::max_element(ref, ref + n_vocab) - ref == std::max_element(quant, quant + n_vocab) - quant;
  log_softmax(ref, n_vocab, temperature, lp);
  log_softmax(quant, n_vocab, temperature, lq);
  m.soft_ce = cross_entropy(lp, lq);
  m.ref_entropy = cross_entropy(lp, lp);
  return m;
}

void eval_accumulator::add(const position_measures& m) {
  kl_.push_back(m.kl);
  n_agree_ += m.top1_agree ? 1 : 0;
  sum_nll_ref_ += m.nll_ref;
  sum_nll_quant_ += m.nll_quant;
  sum_soft_ce_ += m.soft_ce;
  sum_kl_t_ += m.soft_ce - m.ref_entropy;
}

eval_summary eval_accumulator::summary() const {
  eval_summary s;
  s.temperature = temperature_;
  s.n_positions = int64_t(kl_.size());
  if (kl_.empty()) return s;
  const double n = double(kl_.size());
  std::vector<double> sorted = kl_;
  std::sort(sorted.begin(), sorted.end());
  double sum = 0;
  for (double v : sorted) sum += v;
  s.kl_mean = sum / n;
  s.kl_p99 = sorted[size_t((99 * s.n_positions + 99) / 100 - 1)];  // rank ceil(0.99 n), in integers
  s.kl_max = sorted.back();
  s.top1_agreement = double(n_agree_) / n;
  s.ppl_ref = std::exp(sum_nll_ref_ / n);
  s.ppl_quant = std::exp(sum_nll_quant_ / n);
  s.soft_ce = sum_soft_ce_ / n;
  s.kl_at_t = sum_kl_t_ / n;
  return s;
}

}  // namespace autoglm::cli

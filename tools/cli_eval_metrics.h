// tools/cli_eval_metrics.h: the measures `autoglm eval` reports when it compares a model with a reference over
// a text (one next-token distribution per position): KL(ref || quant), top-1 agreement, perplexity of each, and
// the deployment guide's distillation measure, the soft cross-entropy at temperature T. All in double, from
// log-softmax computed as x - max - log(sum exp(x - max)), so a vocabulary of 150k logits loses nothing.
#pragma once

#include <cstdint>
#include <vector>

namespace autoglm::cli {

// out[i] = log softmax(logits / temperature)[i] (temperature > 0).
void log_softmax(const float* logits, int64_t n, double temperature, std::vector<double>& out);

// sum_i p_i (log p_i - log q_i) for p = exp(log_p), q = exp(log_q); terms with p_i = 0 contribute 0.
double kl_divergence(const std::vector<double>& log_p, const std::vector<double>& log_q);
// -sum_i p_i log q_i (the cross-entropy of q against targets p); cross_entropy(p, p) is p's entropy.
double cross_entropy(const std::vector<double>& log_p, const std::vector<double>& log_q);

// One position: the reference's and the compared model's logits [n_vocab] and the token that follows.
struct position_measures {
  double kl = 0;            // KL(ref || quant) at T = 1, nats
  bool top1_agree = false;  // same argmax (the first index of the maximum)
  double nll_ref = 0;       // -log p_ref(next)
  double nll_quant = 0;     // -log p_quant(next)
  double soft_ce = 0;       // CE(softmax(ref / T), softmax(quant / T)), nats
  double ref_entropy = 0;   // entropy of softmax(ref / T): soft_ce - ref_entropy is the KL at T
};
position_measures measure_position(const float* ref, const float* quant, int64_t n_vocab, int32_t next_token,
                                   double temperature);

// Means over positions, and the 99th percentile of the KL.
struct eval_summary {
  int64_t n_positions = 0;
  double kl_mean = 0, kl_p99 = 0, kl_max = 0;
  double top1_agreement = 0;    // fraction of positions
  double ppl_ref = 0, ppl_quant = 0;  // exp(mean nll)
  double temperature = 0;
  double soft_ce = 0;           // mean CE at T, nats
  double kl_at_t = 0;           // mean (CE - ref entropy) at T
  // The guide's soft_cross_entropy multiplies by T^2 (so gradients keep their scale across T): soft_ce * T^2.
  double soft_ce_scaled() const { return soft_ce * temperature * temperature; }
  double kl_at_t_scaled() const { return kl_at_t * temperature * temperature; }
};

class eval_accumulator {
 public:
  explicit eval_accumulator(double temperature) : temperature_(temperature) {}
  void add(const position_measures& m);
  // p99: the nearest-rank percentile (the smallest KL that at least 99% of the positions do not exceed).
  eval_summary summary() const;

 private:
  double temperature_;
  std::vector<double> kl_;
  int64_t n_agree_ = 0;
  double sum_nll_ref_ = 0, sum_nll_quant_ = 0, sum_soft_ce_ = 0, sum_kl_t_ = 0;
};

}  // namespace autoglm::cli

// kernels/cpu/attention_cross.cpp: ATTENTION_CROSS on the CPU (see attention_cross.h). The (query row, head) pairs
// are shared out over the threads; each scores all nk keys of its KV head into a per-thread buffer, normalizes
// them and accumulates P.V into its output slice.
#include "kernels/cpu/attention_cross.h"

#include <algorithm>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/attention_common.h"
#include "kernels/cpu/kernel_util.h"

namespace autoglm::cpu {

void attention_cross_kernel(const kernel_context& kc, const tensor& q, const tensor& k, const tensor& v,
                            int32_t n_heads, int32_t n_kv_heads, int32_t head_dim, float scale, tensor& out) {
  const auto qr = f32_rows(q, "attention_cross q"), kr = f32_rows(k, "attention_cross k"),
             vr = f32_rows(v, "attention_cross v"), orow = f32_rows(out, "attention_cross out");
  const int64_t nq = q.rows(), nk = k.rows(), hd = head_dim, group = n_heads / n_kv_heads;
  if (nq == 0) return;
  // Grain: enough (row, head) pairs per task that each task reads a few hundred KB of K/V.
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, nk));
  parallel_for(kc.pool, nq * n_heads, grain, [&](int64_t p0, int64_t p1) {
    thread_local std::vector<float> scores;
    scores.resize(size_t(std::max<int64_t>(nk, 1)));
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t i = p / n_heads, h = p % n_heads, kcol = (h / group) * hd;
      float* o = orow[i] + h * hd;
      if (nk == 0) {  // nothing to attend to: a zero output, as a softmax over no keys has no weights
        std::fill(o, o + hd, 0.0f);
        continue;
      }
      const float* qi = qr[i] + h * hd;
      for (int64_t j = 0; j < nk; ++j) scores[size_t(j)] = attn::fast_dot(qi, kr[j] + kcol, hd) * scale;
      attn::softmax(scores.data(), nk);
      std::fill(o, o + hd, 0.0f);
      for (int64_t j = 0; j < nk; ++j) attn::axpy(scores[size_t(j)], vr[j] + kcol, o, hd);
    }
  });
}

}  // namespace autoglm::cpu

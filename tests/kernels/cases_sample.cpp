// tests/kernels/cases_sample.cpp: SAMPLE against a literal reading of kernels/cpu/sample.h's rule (every candidate
// sorted, weights summed in order), token for token. Rows of one case carry different parameters and draws:
// greedy, temperature only, top-k, top-p, min-p, all of them, top_k past the candidates, a tiny top_p; logits on
// a coarse grid so that many values tie exactly at the top-k and top-p boundaries (the lower ids must win);
// -inf and NaN entries, a fully masked row, greedy rows with a tied maximum far apart and -0 before +0;
// vocabularies of 1 token, under one draw tile, across tiles, and the real 151,552.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "harness.h"
#include "kernels/cpu/sample.h"
#include "ops/ops.h"

namespace autoglm::harness {

namespace {

constexpr float k_inf = std::numeric_limits<float>::infinity();

// The rule, read literally: sort every candidate by (value desc, id asc), cut, then walk ids in order.
int32_t reference_sample(const std::vector<float>& l, const float* p) {
  const int64_t v = int64_t(l.size());
  auto clean = [](float x) { return std::isnan(x) ? -k_inf : x; };
  const float temperature = p[SP_TEMPERATURE], top_p = p[SP_TOP_P], min_p = p[SP_MIN_P];
  const int64_t top_k = int64_t(p[SP_TOP_K]);
  std::vector<int32_t> ids(static_cast<size_t>(v));
  std::iota(ids.begin(), ids.end(), 0);
  if (!(temperature >= cpu::k_greedy_temperature) || top_k == 1) {
    std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return clean(l[size_t(a)]) > clean(l[size_t(b)]); });
    return ids[0];
  }
  std::vector<float> s(static_cast<size_t>(v));
  for (int64_t i = 0; i < v; ++i) s[size_t(i)] = clean(l[size_t(i)]) * (1.0f / temperature);
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return s[size_t(a)] > s[size_t(b)]; });
  const float mx = s[size_t(ids[0])];
  if (mx == -k_inf) return 0;
  const double thr = min_p > 0.0f ? double(mx) + std::log(double(min_p)) : -std::numeric_limits<double>::infinity();
  std::vector<int32_t> kept;
  for (int32_t i : ids)
    if (s[size_t(i)] > -k_inf && double(s[size_t(i)]) >= thr) kept.push_back(i);
  if (kept.empty()) return ids[0];
  if (top_k > 0 && top_k < int64_t(kept.size())) kept.resize(size_t(top_k));
  auto w = [&](int32_t i) { return uint64_t(double(std::exp(s[size_t(i)] - mx)) * cpu::k_sample_weight_scale); };
  if (top_p < 1.0f) {
    uint64_t total = 0;
    for (int32_t i : kept) total += w(i);
    uint64_t target = uint64_t(std::ceil(double(top_p) * double(total)));
    target = std::min(total, std::max<uint64_t>(1, target));
    uint64_t acc = 0;
    size_t n = 0;
    while (n < kept.size() && acc < target) acc += w(kept[n++]);
    kept.resize(std::max<size_t>(1, n));
  }
  std::sort(kept.begin(), kept.end());
  uint64_t total = 0;
  for (int32_t i : kept) total += w(i);
  const uint64_t draw = uint64_t(double(p[SP_UNIFORM]) * double(total));
  uint64_t acc = 0;
  for (int32_t i : kept)
    if ((acc += w(i)) > draw) return i;
  return kept.back();
}

struct sample_shape {
  int64_t vocab;
  bool ties;  // logits on a grid of 0.25: many exact ties
  bool perf;
};

}  // namespace

void add_sample_cases(std::vector<test_case>& out) {
  for (const sample_shape sh : {sample_shape{1, false, false}, sample_shape{7, true, false},
                                sample_shape{1000, false, false}, sample_shape{1000, true, false},
                                sample_shape{20000, true, false}, sample_shape{151552, false, false},
                                sample_shape{151552, false, true}}) {
    test_case c;
    c.op = op_id::SAMPLE;
    c.key = dtype::F32;
    c.perf = sh.perf;
    c.name = "vocab=" + std::to_string(sh.vocab) + (sh.ties ? " ties" : "") + (sh.perf ? " rows=8" : "");
    c.make = [sh, name = c.name](exec_context& ctx) {
      rng r(seed_of(name + "sample"));
      // {temperature, top_k, top_p, min_p}: each row one setting; draws cover [0, 1).
      const std::vector<std::array<float, 4>> settings = {
          {0.0f, 0, 1.0f, 0.0f},   {1.0f, 1, 1.0f, 0.0f},   {0.7f, 0, 1.0f, 0.0f},    {1.0f, 40, 1.0f, 0.0f},
          {0.8f, 0, 0.9f, 0.0f},   {1.0f, 0, 1.0f, 0.05f},  {0.6f, 20, 0.8f, 0.02f},  {1.3f, 5000000, 0.95f, 0.0f},
          {1.0f, 0, 0.001f, 0.0f}, {2.0f, 3, 0.5f, 0.0f},   {0.5f, 0, 1.0f, 1.5f},    {1.0f, 7, 1.0f, 0.0f},
          {1e-6f, 10, 0.5f, 0.0f}, {1.0f, 2, 0.999f, 0.0f}, {0.9f, 100, 0.7f, 0.01f}, {1.0f, 0, 0.3f, 0.1f}};
      const int64_t rows = sh.perf ? 8 : int64_t(settings.size()) + 2;
      std::vector<float> logits = r.normal(size_t(rows * sh.vocab), 3.0f);
      if (sh.ties)
        for (float& x : logits) x = std::round(x * 4.0f) / 4.0f;
      std::vector<float> params(size_t(rows * k_sample_params));
      const auto u = r.uniform(size_t(rows), 0.0f, 1.0f);
      for (int64_t i = 0; i < rows; ++i) {
        const auto& st = settings[size_t(i) % settings.size()];
        float* p = &params[size_t(i * k_sample_params)];
        p[SP_TEMPERATURE] = st[0], p[SP_TOP_K] = st[1], p[SP_TOP_P] = st[2], p[SP_MIN_P] = st[3];
        p[SP_UNIFORM] = std::min(u[size_t(i)], 0.99999994f);
      }
      if (!sh.perf && rows > 2) {
        // Masked entries in every row; a fully masked row; NaN.
        for (int64_t i = 0; i < rows; ++i)
          for (int64_t j = i % 3; j < sh.vocab; j += 5) logits[size_t(i * sh.vocab + j)] = -k_inf;
        for (int64_t j = 0; j < sh.vocab; ++j) logits[size_t((rows - 1) * sh.vocab + j)] = -k_inf;
        logits[size_t((rows - 2) * sh.vocab + sh.vocab / 2)] = std::numeric_limits<float>::quiet_NaN();
        params[size_t((rows - 2) * k_sample_params + SP_TEMPERATURE)] = 0.9f;
        if (sh.vocab >= 8) {
          // Greedy rows (0: temperature 0, 1: top_k 1), whose ids a GPU spreads over blocks: row 0 a NaN and its
          // maximum twice, a third and all the way in (the lower id wins); row 1's only maximum zero, -0 before +0
          // (one value: the lower id wins). Ids off the rows' masks (j % 5 == i % 3).
          auto unmasked = [](int64_t i, int64_t j) { return j % 5 == i % 3 ? j - 1 : j; };
          float mx = -k_inf;
          for (int64_t j = 0; j < sh.vocab; ++j) mx = std::max(mx, logits[size_t(j)]);
          logits[size_t(unmasked(0, 3))] = std::numeric_limits<float>::quiet_NaN();
          logits[size_t(unmasked(0, sh.vocab / 3))] = mx + 1.0f;
          logits[size_t(unmasked(0, sh.vocab - 2))] = mx + 1.0f;
          for (int64_t j = 0; j < sh.vocab; ++j)
            if (j % 5 != 1) logits[size_t(sh.vocab + j)] = -1.0f - float(j % 3);
          logits[size_t(sh.vocab + unmasked(1, sh.vocab / 2))] = -0.0f;
          logits[size_t(sh.vocab + unmasked(1, sh.vocab - 1))] = 0.0f;
        }
      }
      const tensor lt = upload_f(ctx, dtype::F32, {rows, sh.vocab}, logits);
      const tensor ot = upload_i32(ctx, {rows}, std::vector<int32_t>(size_t(rows), -7));
      instance inst;
      inst.run = [&ctx, lt, ot, params]() mutable { tensor o = ot; ops::sample(ctx, lt, params.data(), o); };
      inst.output = [&ctx, ot] { return download(ctx, ot); };
      inst.check = [&ctx, ot, logits, params, rows, sh]() -> std::string {
        const std::vector<uint8_t> bytes = download(ctx, ot);
        std::string problems;
        for (int64_t i = 0; i < rows; ++i) {
          int32_t got = 0;
          std::memcpy(&got, bytes.data() + size_t(i) * 4, 4);
          const std::vector<float> row(logits.begin() + i * sh.vocab, logits.begin() + (i + 1) * sh.vocab);
          const float* p = &params[size_t(i * k_sample_params)];
          const int32_t want = reference_sample(row, p);
          if (got != want)
            problems += "row " + std::to_string(i) + " (T=" + std::to_string(p[0]) + " k=" + std::to_string(p[1]) +
                        " p=" + std::to_string(p[2]) + " min_p=" + std::to_string(p[3]) + " u=" + std::to_string(p[4]) +
                        "): token " + std::to_string(got) + ", reference " + std::to_string(want) + "; ";
        }
        return problems;
      };
      inst.bytes = 4.0 * double(rows * sh.vocab);
      return inst;
    };
    out.push_back(std::move(c));
  }
}

}  // namespace autoglm::harness

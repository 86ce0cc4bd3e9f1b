// The vision tower's attention and bicubic position embedding moved from src/model/glm4v into the CPU backend
// (ATTENTION_DENSE, POS_EMBED_BICUBIC). Until the model runs over ops and its copies are deleted, this checks that
// the kernels give the model's results bit for bit (the vision parity tests were tuned on those bits). Delete
// this file together with model/glm4v/vision_attention.* and interpolate_pos_embed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "model/glm4v/vision.h"
#include "model/glm4v/vision_attention.h"
#include "ops/ops.h"

namespace autoglm {
namespace {

std::vector<float> normal(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

TEST(moved_kernels, attention_dense_is_the_models_vision_attention_bit_for_bit) {
  exec_context ctx(device{}, 3);
  struct shape { int64_t frame, frames, heads, hd; };
  for (const shape s : {shape{64, 1, 2, 16}, shape{100, 2, 3, 24}, shape{600, 1, 2, 80}, shape{48, 3, 1, 128}}) {
    const int64_t n = s.frame * s.frames, dim = s.heads * s.hd, stride = 3 * dim;
    const std::vector<float> qkv = normal(size_t(n * stride), uint32_t(n + dim));
    std::vector<float> expected(size_t(n * dim)), got(size_t(n * dim));
    for (int64_t f = 0; f < s.frames; ++f)
      glm4v::detail::vision_attention(qkv.data() + f * s.frame * stride, stride, s.frame, s.heads, s.hd,
                                      expected.data() + f * s.frame * dim, dim);
    const tensor all = tensor::view(qkv.data(), dtype::F32, {n, stride});
    std::vector<int32_t> seg;
    for (int64_t f = 0; f <= s.frames; ++f) seg.push_back(int32_t(f * s.frame));
    tensor out = tensor::view(got.data(), dtype::F32, {n, dim});
    ops::attention_dense(ctx, all.cols_view(0, dim), all.cols_view(dim, dim), all.cols_view(2 * dim, dim),
                         int32_t(s.heads), int32_t(s.hd), tensor::view(seg.data(), dtype::I32, {int64_t(seg.size())}),
                         1.0f / std::sqrt(float(s.hd)), out);
    EXPECT_EQ(std::memcmp(expected.data(), got.data(), expected.size() * 4), 0)
        << "frame " << s.frame << " x " << s.frames << ", heads " << s.heads << ", head_dim " << s.hd;
  }
}

TEST(moved_kernels, pos_embed_bicubic_is_the_models_interpolate_pos_embed_bit_for_bit) {
  exec_context ctx(device{}, 3);
  struct shape { int32_t g, dim, gh, gw; };
  for (const shape s : {shape{24, 64, 32, 48}, shape{6, 13, 4, 6}, shape{16, 32, 12, 2}, shape{24, 1536, 2, 2}}) {
    const std::vector<float> table = normal(size_t(s.g) * s.g * s.dim, uint32_t(s.g * s.dim));
    std::vector<int32_t> ph, pw;
    glm4v::vision_patch_positions(s.gh, s.gw, 2, ph, pw);
    const int64_t n = int64_t(ph.size());
    std::vector<float> expected(size_t(n * s.dim)), got(size_t(n * s.dim));
    glm4v::interpolate_pos_embed(table.data(), s.g, s.dim, s.gh, s.gw, ph.data(), pw.data(), n, expected.data());
    std::vector<int32_t> pos(ph);
    pos.insert(pos.end(), pw.begin(), pw.end());
    tensor out = tensor::view(got.data(), dtype::F32, {n, s.dim});
    ops::pos_embed_bicubic(ctx, tensor::view(table.data(), dtype::F32, {int64_t(s.g) * s.g, s.dim}), s.g, s.gh, s.gw,
                           tensor::view(pos.data(), dtype::I32, {2, n}), out);
    EXPECT_EQ(std::memcmp(expected.data(), got.data(), expected.size() * 4), 0)
        << "table " << s.g << " dim " << s.dim << " grid " << s.gh << "x" << s.gw;
  }
}

}  // namespace
}  // namespace autoglm

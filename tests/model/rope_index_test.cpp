// M-RoPE position rules (spec section 3) on hand-checked layouts.
#include <gtest/gtest.h>

#include "core/error.h"
#include "model/glm4v/rope_index.h"
#include "model/model.h"

using namespace autoglm;

namespace {
glm4v::config small_config() {
  glm4v::config c;
  c.vision.present = true;
  c.vision.spatial_merge_size = 2;
  c.image_token_id = 9;
  c.video_start_token_id = 7;
  c.video_end_token_id = 8;
  return c;
}
vision_input image(int gh, int gw) {
  vision_input v;
  v.grid_t = 1;
  v.grid_h = gh;
  v.grid_w = gw;
  return v;
}
}  // namespace

TEST(rope_index, text_only_is_sequential) {
  auto p = glm4v::compute_rope_positions(small_config(), {1, 2, 3, 4}, {});
  EXPECT_EQ(p.t, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(p.h, p.t);
  EXPECT_EQ(p.w, p.t);
  EXPECT_EQ(p.rope_delta, 0);
}

TEST(rope_index, image_grid_then_text_continues_from_max) {
  // 2 text tokens, an image of patch grid 4x6 -> llm grid 2x3 = 6 tokens, then 2 text tokens.
  std::vector<int32_t> ids = {1, 2, 9, 9, 9, 9, 9, 9, 3, 4};
  auto p = glm4v::compute_rope_positions(small_config(), ids, {image(4, 6)});
  EXPECT_EQ(p.t, (std::vector<int32_t>{0, 1, 2, 2, 2, 2, 2, 2, 5, 6}));
  EXPECT_EQ(p.h, (std::vector<int32_t>{0, 1, 2, 2, 2, 3, 3, 3, 5, 6}));
  EXPECT_EQ(p.w, (std::vector<int32_t>{0, 1, 2, 3, 4, 2, 3, 4, 5, 6}));
  EXPECT_EQ(p.rope_delta, 7 - 10);
}

TEST(rope_index, mismatched_placeholders_are_errors) {
  EXPECT_THROW(glm4v::compute_rope_positions(small_config(), {1, 9, 9}, {image(4, 6)}), invalid_request);
  EXPECT_THROW(glm4v::compute_rope_positions(small_config(), {1, 2}, {image(2, 2)}), invalid_request);
  EXPECT_THROW(glm4v::compute_rope_positions(small_config(), {9}, {}), invalid_request);
}

TEST(rope_index, image_tokens_inside_video_are_text) {
  auto p = glm4v::compute_rope_positions(small_config(), {7, 9, 8}, {});
  EXPECT_EQ(p.t, (std::vector<int32_t>{0, 1, 2}));
}

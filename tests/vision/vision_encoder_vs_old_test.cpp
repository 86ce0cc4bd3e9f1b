// tests/vision/vision_encoder_vs_old_test.cpp: TRANSITIONAL: the vision tower written over ops gives the old
// CPU-only vision_tower's embeddings bit for bit (same kernels, same order of arithmetic), one and two frames.
// Delete with model/glm4v/vision.*.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "formats/safetensors.h"
#include "model/glm4v/config.h"
#include "model/glm4v/vision.h"
#include "model/glm4v/vision_encoder.h"
#include "ops/ops.h"
#include "../model/fixture_io.h"  // the fixture cases and their images

using namespace autoglm;

TEST(vision_encoder_vs_old, bit_identical_to_the_old_vision_tower) {
  const glm4v::config cfg = glm4v::config::load(test::fixture_model_dir());
  auto store = tensor_store::open_dir(test::fixture_model_dir());
  exec_context ctx(device{}, 2);
  const glm4v::vision_encoder encoder(cfg.vision, glm4v::bind_vision_weights(cfg, *store, ctx));
  // Same kernels, same order of arithmetic: the rewrite over ops must not move a single bit. Two frames as well,
  // so the segments and the per-frame position add are covered.
  const glm4v::vision_tower old(cfg, *store);
  std::vector<vision_input> inputs;
  const nlohmann::json cases = test::load_cases();
  for (const auto& c : cases["cases"]) {
    const std::vector<vision_input> images = test::fixture_images(c);
    inputs.insert(inputs.end(), images.begin(), images.end());
  }
  ASSERT_GE(inputs.size(), 4u);
  // Two different frames of one grid: segments and the per-frame position add.
  vision_input two = inputs[0];
  two.grid_t = 2;
  for (float v : inputs[0].pixel_values) two.pixel_values.push_back(0.5f - v);
  inputs.push_back(two);
  for (const vision_input& img : inputs) {
    const std::vector<float> expect = old.encode(img);
    const tensor got = ops::host_f32(ctx, encoder.encode(ctx, img));
    ASSERT_EQ(size_t(got.n_elements()), expect.size());
    EXPECT_EQ(std::memcmp(got.data(), expect.data(), expect.size() * sizeof(float)), 0)
        << "grid " << img.grid_t << "x" << img.grid_h << "x" << img.grid_w;
  }
}


// Parity of image + text prompts with Hugging Face (transformers 5.17, fp32 on the bf16 checkpoint):
//  (a) HF's own pixel_values through our vision tower + decoder: logits within 1e-3 x max|ref| at every
//      position, identical 32-token greedy continuations (M-RoPE positions and rope_delta in decode);
//  (b) end to end from the PNG files: our decoding + preprocessing (torchvision-exact by default) must give the
//      same pixels, hence the same logits under the same tolerance.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "fixture_io.h"
#include "media/glm4v_preprocess.h"
#include "media/image.h"
#include "model/model_loader.h"
#include "model/sequence_runner.h"

using namespace autoglm;

namespace {

double worst_ratio(const std::vector<float>& ours, const std::vector<float>& ref, int64_t n_pos, int64_t vocab) {
  double worst = 0;
  for (int64_t p = 0; p < n_pos; ++p) {
    double mr = 0, md = 0;
    for (int64_t j = 0; j < vocab; ++j) {
      mr = std::max(mr, double(std::fabs(ref[size_t(p * vocab + j)])));
      md = std::max(md, double(std::fabs(ours[size_t(p * vocab + j)] - ref[size_t(p * vocab + j)])));
    }
    worst = std::max(worst, md / mr);
  }
  return worst;
}

std::vector<vision_input> fixture_pixels(const nlohmann::json& c) {
  std::vector<float> all = test::load_f32(c["pixel_values"]);
  std::vector<vision_input> out;
  size_t offset = 0;
  const size_t patch_dim = all.size() / size_t(c["pixel_values"]["shape"][0].get<int64_t>());
  for (const auto& g : c["image_grid_thw"]) {
    vision_input v;
    v.grid_t = g[0];
    v.grid_h = g[1];
    v.grid_w = g[2];
    size_t n = size_t(v.grid_t * v.grid_h * v.grid_w) * patch_dim;
    v.pixel_values.assign(all.begin() + long(offset), all.begin() + long(offset + n));
    offset += n;
    out.push_back(std::move(v));
  }
  EXPECT_EQ(offset, all.size());
  return out;
}

}  // namespace

TEST(image_parity, hf_pixels_logits_and_greedy) {
  auto model = load_model_runner(test::fixture_model_dir(), 2);
  auto cases = test::load_cases();
  const int32_t vocab = model->info().vocab_size;
  int n_checked = 0;
  for (const auto& c : cases["cases"]) {
    if (!c.contains("images")) continue;
    const std::string name = c["name"];
    std::vector<int32_t> tokens = c["tokens"].get<std::vector<int32_t>>();
    std::vector<float> ref = test::load_f32(c["logits"]);
    std::vector<vision_input> images = fixture_pixels(c);
    sequence_runner seq(*model, int32_t(tokens.size()) + 40);
    std::vector<float> ours = seq.prefill(tokens, images, true, 13);
    double w = worst_ratio(ours, ref, int64_t(tokens.size()), vocab);
    std::printf("[parity] %-20s %3zu positions, %zu images: worst max|diff|/max|ref| = %.3g\n", name.c_str(), tokens.size(),
                images.size(), w);
    EXPECT_LE(w, 1e-3) << name;

    std::vector<int32_t> expect = c["greedy"].get<std::vector<int32_t>>();
    std::vector<int32_t> eos = c["eos_token_ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> got = test::greedy_continuation(seq, ours.data() + (tokens.size() - 1) * size_t(vocab), vocab, eos);
    EXPECT_EQ(got, expect) << name << ": greedy continuation differs";
    ++n_checked;
  }
  EXPECT_EQ(n_checked, 3);
}

TEST(image_parity, end_to_end_from_png_files) {
  auto model = load_model_runner(test::fixture_model_dir(), 2);
  auto cases = test::load_cases();
  const int32_t vocab = model->info().vocab_size;
  glm4v_preprocess_config pre = glm4v_preprocess_config::load(test::fixture_model_dir());
  for (const auto& c : cases["cases"]) {
    if (!c.contains("images")) continue;
    std::vector<vision_input> images;
    for (const auto& f : c["images"]) {
      image_rgb8 img = decode_image_file(test::ref_dir() + "/" + f.get<std::string>());
      glm4v_pixels px = glm4v_preprocess(img, pre);
      vision_input v;
      v.grid_t = px.grid_t;
      v.grid_h = px.grid_h;
      v.grid_w = px.grid_w;
      v.pixel_values = std::move(px.values);
      images.push_back(std::move(v));
    }
    std::vector<vision_input> hf = fixture_pixels(c);
    ASSERT_EQ(images.size(), hf.size());
    for (size_t k = 0; k < images.size(); ++k) {
      ASSERT_EQ(images[k].grid_h, hf[k].grid_h);
      ASSERT_EQ(images[k].grid_w, hf[k].grid_w);
      float md = 0;
      for (size_t i = 0; i < hf[k].pixel_values.size(); ++i)
        md = std::max(md, std::fabs(images[k].pixel_values[i] - hf[k].pixel_values[i]));
      EXPECT_LE(md, 1e-6f) << c["name"] << " image " << k << ": our pixels differ from the HF processor's";
    }
    std::vector<int32_t> tokens = c["tokens"].get<std::vector<int32_t>>();
    sequence_runner seq(*model, int32_t(tokens.size()));
    std::vector<float> ours = seq.prefill(tokens, images, true);
    EXPECT_LE(worst_ratio(ours, test::load_f32(c["logits"]), int64_t(tokens.size()), vocab), 1e-3) << c["name"];
  }
}

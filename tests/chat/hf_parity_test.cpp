// tests/chat/hf_parity_test.cpp: prepare_chat against the Hugging Face reference (tests/fixtures/ref/cases.json,
// written by tests/fixtures/make_fixtures.py with transformers): the same conversation, sent as OpenAI messages
// with the reference PNGs as data URIs, must give the reference prompt text, the expanded input_ids,
// image_grid_thw and pixel_values. Loads everything from the tiny model directory, template included.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "chat/chat_session.h"
#include "media/image.h"
#include "test_util.h"

namespace autoglm {
namespace {

using nlohmann::json;

std::string ref_dir() { return test::source_dir() + "/tests/fixtures/ref"; }

std::vector<float> read_f32(const std::string& path) {
  std::string bytes = test::read_text(path);
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
  return out;
}

std::string png_uri(const std::string& file) {
  std::string bytes = test::read_text(ref_dir() + "/" + file);
  return "data:image/png;base64," + test::base64(std::vector<uint8_t>(bytes.begin(), bytes.end()));
}

json image_part(const std::string& file) {
  return {{"type", "image_url"}, {"image_url", {{"url", png_uri(file)}}}};
}
json text_part(const std::string& text) { return {{"type", "text"}, {"text", text}}; }

class HfParityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string cases_path = ref_dir() + "/cases.json";
    if (!std::filesystem::exists(cases_path) || !test::have_fixture_tokenizer()) {
      GTEST_SKIP() << "reference fixtures not present";
    }
    cases_ = json::parse(test::read_text(cases_path))["cases"];
    chat_context_options o;
    o.model_dir = test::fixture_model_dir();
    ctx_ = chat_context::load(o);
  }

  const json& find_case(const std::string& name) const {
    for (const json& c : cases_) {
      if (c["name"] == name) return c;
    }
    throw std::runtime_error("no reference case " + name);
  }

  // Prompt text, ids, grids and pixels of `messages` must equal the reference case.
  void check(const std::string& name, const json& messages) {
    const json& ref = find_case(name);
    prepared_prompt p = ctx_->prepare_chat(messages, {});
    EXPECT_EQ(p.prompt_text, ref["text"].get<std::string>());
    EXPECT_EQ(p.request.prompt, ref["tokens"].get<std::vector<int32_t>>());
    const json& grids = ref["image_grid_thw"];
    ASSERT_EQ(p.request.images.size(), grids.size());
    std::vector<float> want = read_f32(ref_dir() + "/" + ref["pixel_values"]["file"].get<std::string>());
    size_t row0 = 0;
    for (size_t k = 0; k < grids.size(); ++k) {
      const vision_input& v = p.request.images[k];
      EXPECT_EQ((std::vector<int32_t>{v.grid_t, v.grid_h, v.grid_w}), grids[k].get<std::vector<int32_t>>());
      // Images already at a multiple of 28 are only normalized: a few fp32 ulps. Resized ones go through
      // bicubic resampling, where the reference backend (torchvision in transformers 5.x) and Pillow may differ
      // by one uint8 level (1/255/std = 0.0152); bit-exact resampling is the media layer's test.
      image_rgb8 src = decode_image_file(ref_dir() + "/" + ref["images"][k].get<std::string>());
      bool resized = src.height != v.grid_h * 14 || src.width != v.grid_w * 14;
      float tol = resized ? 0.0153f : 1e-5f;
      ASSERT_LE(row0 * 1176 + v.pixel_values.size(), want.size());
      float max_diff = 0;
      for (size_t i = 0; i < v.pixel_values.size(); ++i) {
        max_diff = std::max(max_diff, std::fabs(v.pixel_values[i] - want[row0 * 1176 + i]));
      }
      EXPECT_LE(max_diff, tol) << name << " image " << k;
      row0 += size_t(v.grid_t) * v.grid_h * v.grid_w;
    }
    EXPECT_EQ(row0 * 1176, want.size());
  }

  json cases_;
  std::unique_ptr<chat_context> ctx_;
};

TEST_F(HfParityTest, OneImage) {
  check("one_image", json::array({{{"role", "user"},
                                   {"content", json::array({image_part("one_image_img0.png"),
                                                            text_part("What is on the screen?")})}}}));
}

TEST_F(HfParityTest, TwoImages) {
  check("two_images",
        json::array({{{"role", "user"},
                      {"content", json::array({image_part("two_images_img0.png"), text_part("compare"),
                                               image_part("two_images_img1.png"), text_part("which one?")})}}}));
}

TEST_F(HfParityTest, ImageBetweenText) {
  check("image_between_text",
        json::array({{{"role", "system"}, {"content", "agent"}},
                     {{"role", "user"},
                      {"content", json::array({text_part("look at this: "), image_part("image_between_text_img0.png"),
                                               text_part(" and tap the button")})}}}));
}

TEST_F(HfParityTest, TextOnlyChat) {
  const json& ref = find_case("chat");
  json messages = json::array({{{"role", "system"}, {"content", "You are a phone agent. Answer with one action."}},
                               {{"role", "user"}, {"content", "打开微信，给张三发消息：今晚 7 点见。"}}});
  prepared_prompt p = ctx_->prepare_chat(messages, {});
  EXPECT_EQ(p.prompt_text, ref["text"].get<std::string>());
  EXPECT_EQ(p.request.prompt, ref["tokens"].get<std::vector<int32_t>>());
}

}  // namespace
}  // namespace autoglm

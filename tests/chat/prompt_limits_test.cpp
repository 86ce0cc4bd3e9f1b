// tests/chat/prompt_limits_test.cpp: the request-size defences of prepare_chat / prepare_completion (issue 8,
// classes 4 and 5): image token counts from headers checked against max_prompt_tokens before anything is
// decoded, tokenizing that stops at the limit, exact limits with images counted, headers that lie, and the
// process-wide bound on concurrent image decodes.
#include <gtest/gtest.h>
#include <zlib.h>

#include <thread>

#include "chat/chat_session.h"
#include "core/error.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace autoglm {
namespace {

using nlohmann::json;

void be32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(uint8_t(x >> s));
}

void png_chunk(std::vector<uint8_t>& out, const char* type, const std::vector<uint8_t>& data) {
  be32(out, uint32_t(data.size()));
  std::vector<uint8_t> body(type, type + 4);
  body.insert(body.end(), data.begin(), data.end());
  out.insert(out.end(), body.begin(), body.end());
  be32(out, uint32_t(crc32(0, body.data(), uInt(body.size()))));
}

// An RGB PNG declaring w x h whose IDAT inflates to `rows` all-zero rows (rows == h: a valid black image; fewer:
// a header that lies). Deflated row by row, so an 8000x8000 bomb never exists uncompressed here either.
std::vector<uint8_t> zero_png(uint32_t w, uint32_t h, uint32_t rows) {
  z_stream zs{};
  if (deflateInit(&zs, Z_DEFAULT_COMPRESSION) != Z_OK) throw std::runtime_error("deflateInit");
  std::vector<uint8_t> row(size_t(w) * 3 + 1, 0), idat;
  std::vector<uint8_t> buf(1 << 16);
  for (uint32_t y = 0; y < rows; ++y) {
    zs.next_in = row.data();
    zs.avail_in = uInt(row.size());
    const int flush = y + 1 == rows ? Z_FINISH : Z_NO_FLUSH;
    do {
      zs.next_out = buf.data();
      zs.avail_out = uInt(buf.size());
      deflate(&zs, flush);
      idat.insert(idat.end(), buf.data(), buf.data() + (buf.size() - zs.avail_out));
    } while (zs.avail_out == 0);
  }
  deflateEnd(&zs);
  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> ihdr;
  be32(ihdr, w);
  be32(ihdr, h);
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});
  png_chunk(out, "IHDR", ihdr);
  png_chunk(out, "IDAT", idat);
  png_chunk(out, "IEND", {});
  return out;
}

json image_part(const std::string& uri) { return {{"type", "image_url"}, {"image_url", {{"url", uri}}}}; }

json user_message(json parts) { return json::array({{{"role", "user"}, {"content", std::move(parts)}}}); }

class PromptLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::have_fixture_tokenizer()) GTEST_SKIP() << "fixture tokenizer.json not present yet";
    ctx_ = load(0);
  }
  static std::unique_ptr<chat_context> load(int32_t decode_slots) {
    chat_context_options o;
    o.model_dir = test::fixture_model_dir();
    o.chat_template = test::glm_template();
    o.min_pixels = 112 * 112;
    o.max_pixels = 14 * 14 * 4 * 2 * 6144;  // the released model's longest_edge: at most 6144 tokens an image
    o.max_concurrent_image_decodes = decode_slots;
    return chat_context::load(o);
  }
  template <class F>
  static void expect_invalid(F&& fn, const std::string& param, const std::string& needle) {
    try {
      fn();
      ADD_FAILURE() << "no invalid_request thrown (param " << param << ")";
    } catch (const invalid_request& e) {
      EXPECT_EQ(e.param(), param) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
  std::unique_ptr<chat_context> ctx_;
};

// Issue 8's image bomb: 20 all-zero 8000x8000 PNGs (~190 KB each, 192 MB each decoded) against a 4096-token
// context. Each is 6084 tokens by its header, so the request is refused at the first image, before the template
// runs and before a single image is decoded (the decode gate never opened).
TEST_F(PromptLimitsTest, ImageBombRefusedFromHeadersWithoutDecoding) {
  const std::vector<uint8_t> png = zero_png(8000, 8000, 8000);
  EXPECT_LT(png.size(), 400u << 10);
  const std::string uri = "data:image/png;base64," + test::base64(png);
  json parts = json::array({{{"type", "text"}, {"text", "what is on these screens?"}}});
  for (int i = 0; i < 20; ++i) parts.push_back(image_part(uri));
  chat_options o;
  o.max_prompt_tokens = 4095;
  expect_invalid([&] { ctx_->prepare_chat(user_message(parts), o); }, "messages",
                 "the prompt has more than 4095 tokens (its images alone take at least 6084)");
  // With room for three, the fourth passes the limit: refused without probing the rest.
  o.max_prompt_tokens = 3 * 6084 + 100;
  expect_invalid([&] { ctx_->prepare_chat(user_message(parts), o); }, "messages",
                 "images alone take at least " + std::to_string(4 * 6084));
  EXPECT_EQ(ctx_->image_decode_stats().peak, 0);
}

// The limit is exact: a prompt of n tokens (image rows included) passes with max_prompt_tokens = n, identical to
// the unlimited result, and fails with n - 1.
TEST_F(PromptLimitsTest, LimitIsExactWithImagesCounted) {
  json parts = json::array({image_part(test::png_data_uri(168, 112)), {{"type", "text"}, {"text", "describe"}},
                            image_part(test::png_data_uri(56, 84, 3))});
  const json messages = user_message(parts);
  const prepared_prompt full = ctx_->prepare_chat(messages, {});
  ASSERT_EQ(full.n_images, 2);
  ASSERT_EQ(full.n_image_tokens, 24 + 12);  // 168x112 as is; 56x84 scaled up to min_pixels (112x112)
  chat_options o;
  o.max_prompt_tokens = full.n_prompt_tokens;
  const prepared_prompt at = ctx_->prepare_chat(messages, o);
  EXPECT_EQ(at.request.prompt, full.request.prompt);
  EXPECT_EQ(at.request.images.size(), 2u);
  EXPECT_EQ(at.request.images[0].pixel_values, full.request.images[0].pixel_values);
  o.max_prompt_tokens = full.n_prompt_tokens - 1;
  expect_invalid([&] { ctx_->prepare_chat(messages, o); }, "messages",
                 "more than " + std::to_string(full.n_prompt_tokens - 1) + " tokens (36 of them for its 2 images)");
  // Text only.
  const json text = json::array({{{"role", "user"}, {"content", "hello there, how are you today?"}}});
  const int32_t n = ctx_->prepare_chat(text, {}).n_prompt_tokens;
  o.max_prompt_tokens = n;
  EXPECT_EQ(ctx_->prepare_chat(text, o).n_prompt_tokens, n);
  o.max_prompt_tokens = n - 1;
  expect_invalid([&] { ctx_->prepare_chat(text, o); }, "messages", "this model accepts at most");
}

// A long text prompt is refused by the tokenizer's early stop (the limit's few kilobytes, not the whole text).
TEST_F(PromptLimitsTest, LongTextPromptStopsAtTheLimit) {
  std::string text;
  while (text.size() < (4u << 20)) text += "The quick brown fox jumps over the lazy dog. ";
  chat_options o;
  o.max_prompt_tokens = 4095;
  expect_invalid([&] { ctx_->prepare_chat(json::array({{{"role", "user"}, {"content", text}}}), o); }, "messages",
                 "the prompt has more than 4095 tokens");
  completion_options c;
  c.max_prompt_tokens = 4095;
  expect_invalid([&] { ctx_->prepare_completion(json(text), c); }, "prompt", "more than 4095 tokens");
}

TEST_F(PromptLimitsTest, CompletionLimitIsExact) {
  const std::string text = "one two three four five six seven";
  for (bool special : {true, false}) {
    completion_options c;
    c.add_special_tokens = special;
    const prepared_prompt full = ctx_->prepare_completion(json(text), c);
    c.max_prompt_tokens = full.n_prompt_tokens;
    EXPECT_EQ(ctx_->prepare_completion(json(text), c).request.prompt, full.request.prompt);
    c.max_prompt_tokens = full.n_prompt_tokens - 1;
    expect_invalid([&] { ctx_->prepare_completion(json(text), c); }, "prompt", "more than");
  }
  completion_options c;
  c.max_prompt_tokens = 3;
  EXPECT_EQ(ctx_->prepare_completion(json::array({1, 2, 3}), c).n_prompt_tokens, 3);
  expect_invalid([&] { ctx_->prepare_completion(json::array({1, 2, 3, 4}), c); }, "prompt", "more than 3 tokens");
}

// The header says 600x600 but the data holds one row: charged as 600x600, then the decode fails with an error
// naming the image, not a crash or a silently different image.
TEST_F(PromptLimitsTest, LyingHeaderFailsClearly) {
  const std::string uri = "data:image/png;base64," + test::base64(zero_png(600, 600, 1));
  json parts = json::array({{{"type", "text"}, {"text", "x"}}, image_part(uri)});
  chat_options o;
  o.max_prompt_tokens = 4095;
  expect_invalid([&] { ctx_->prepare_chat(user_message(parts), o); }, "messages[0].content[1].image_url",
                 "invalid image: png:");
  // A complete image of the same size is fine.
  parts[1] = image_part("data:image/png;base64," + test::base64(zero_png(600, 600, 600)));
  EXPECT_EQ(ctx_->prepare_chat(user_message(parts), o).n_images, 1);
}

// The base64 payload's size is checked before it is decoded.
TEST_F(PromptLimitsTest, ImageBytesLimitBeforeBase64Decoding) {
  chat_context_options o;
  o.model_dir = test::fixture_model_dir();
  o.chat_template = test::glm_template();
  o.max_image_bytes = 1000;
  auto small = chat_context::load(o);
  const std::vector<uint8_t> png = test::make_png(200, 200);
  ASSERT_GT(png.size(), 1000u);
  expect_invalid([&] { small->prepare_chat(user_message(json::array({image_part(test::png_data_uri(200, 200))})), {}); },
                 "messages[0].content[0].image_url", "over the limit of 1000");
}

// Many requests with images at once: never more decodes in flight than the context allows.
TEST_F(PromptLimitsTest, ConcurrentDecodesAreBounded) {
  auto ctx = load(2);
  EXPECT_EQ(ctx->image_decode_stats().limit, 2);
  json parts = json::array({{{"type", "text"}, {"text", "compare"}}});
  for (int i = 0; i < 3; ++i) parts.push_back(image_part(test::png_data_uri(700, 500, i)));
  const json messages = user_message(parts);
  std::vector<std::thread> threads;
  std::atomic<int> n_ok{0};
  for (int t = 0; t < 6; ++t)
    threads.emplace_back([&] { n_ok += ctx->prepare_chat(messages, {}).n_images == 3; });
  for (auto& th : threads) th.join();
  EXPECT_EQ(n_ok.load(), 6);
  const chat_context::decode_stats s = ctx->image_decode_stats();
  EXPECT_EQ(s.running, 0);
  EXPECT_GE(s.peak, 1);
  EXPECT_LE(s.peak, 2);
  // The default follows the core count (half of them, at least one).
  const int32_t expected = std::max(1, int32_t(std::thread::hardware_concurrency() / 2));
  EXPECT_EQ(ctx_->image_decode_stats().limit, expected);
}

}  // namespace
}  // namespace autoglm

// tests/chat/chat_session_test.cpp: prepare_chat / prepare_completion / apply_extra_image against the fixture
// tokenizer, the GLM-4.1V template asset and real PNGs (encoded with libpng, decoded by the media layer).
#include "chat/chat_session.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace autoglm {
namespace {

using nlohmann::json;

const char* sys_prompt = "今天的日期是: 2025年1月1日\n你是一个智能体分析专家。";
const char* task_text = "打开设置\n\n{\"current_app\": \"System Home\"}";

class ChatSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::have_fixture_tokenizer()) GTEST_SKIP() << "fixture tokenizer.json not present yet";
    chat_context_options o;
    o.model_dir = test::fixture_model_dir();
    o.chat_template = test::glm_template();
    o.min_pixels = 112 * 112;          // the GLM-4.1V code defaults, set explicitly so the fixture's
    o.max_pixels = 14 * 14 * 4 * 2 * 6144;  // preprocessor_config.json (if any) does not change the counts
    ctx_ = chat_context::load(o);
  }
  const tokenizer& tok() const { return ctx_->get_tokenizer(); }
  int32_t id(const char* t) const { return tok().token_to_id(t).value(); }

  // The Open-AutoGLM step-1 request (spec section 9): system + user [image_url PNG, text].
  static json agent_messages(const std::string& image_uri) {
    return json::array({
        {{"role", "system"}, {"content", sys_prompt}},
        {{"role", "user"},
         {"content", json::array({{{"type", "image_url"}, {"image_url", {{"url", image_uri}}}},
                                  {{"type", "text"}, {"text", task_text}}})}},
    });
  }

  // Expects `fn` to throw invalid_request with this param and a message containing `needle`.
  template <class F>
  static void expect_invalid(F&& fn, const std::string& param, const std::string& needle = "") {
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

TEST_F(ChatSessionTest, OpenAutoGlmRequestRendersAndExpands) {
  // 168x112: no resize (multiples of 28, within min/max) -> grid 1 x 8 x 12 -> 8*12/4 = 24 image tokens.
  prepared_prompt p = ctx_->prepare_chat(agent_messages(test::png_data_uri(168, 112)), {});
  std::string expected = std::string("[gMASK]<sop><|system|>\n") + sys_prompt +
                         "<|user|>\n<|begin_of_image|><|image|><|end_of_image|>" + task_text + "<|assistant|>\n";
  EXPECT_EQ(p.prompt_text, expected);

  ASSERT_EQ(p.n_images, 1);
  ASSERT_EQ(p.request.images.size(), 1u);
  const vision_input& img = p.request.images[0];
  EXPECT_EQ(img.grid_t, 1);
  EXPECT_EQ(img.grid_h, 8);
  EXPECT_EQ(img.grid_w, 12);
  EXPECT_EQ(img.pixel_values.size(), size_t(8 * 12) * 3 * 2 * 14 * 14);
  EXPECT_NE(img.content_hash, 0u);
  EXPECT_EQ(p.n_image_tokens, 24);

  // The prompt is the template text tokenized with special tokens, the single <|image|> widened to 24 rows.
  std::vector<int32_t> plain = tok().encode(expected, true);
  const std::vector<int32_t>& ids = p.request.prompt;
  EXPECT_EQ(p.n_prompt_tokens, int32_t(ids.size()));
  ASSERT_EQ(ids.size(), plain.size() + 23);
  int32_t image_id = id("<|image|>");
  auto first = std::find(ids.begin(), ids.end(), image_id);
  ASSERT_NE(first, ids.end());
  EXPECT_EQ(*(first - 1), id("<|begin_of_image|>"));
  EXPECT_EQ(std::count(ids.begin(), ids.end(), image_id), 24);
  EXPECT_TRUE(std::all_of(first, first + 24, [&](int32_t v) { return v == image_id; }));
  EXPECT_EQ(*(first + 24), id("<|end_of_image|>"));
  std::vector<int32_t> collapsed(ids.begin(), first + 1);
  collapsed.insert(collapsed.end(), first + 24, ids.end());
  EXPECT_EQ(collapsed, plain);
  EXPECT_EQ(ids[0], id("[gMASK]"));
  EXPECT_EQ(ids[1], id("<sop>"));
  EXPECT_EQ(ids.back(), tok().encode("\n", false).back());
}

TEST_F(ChatSessionTest, StringContentFormatMatchesVllmDeployment) {
  chat_options o;
  o.format = content_format::STRING;
  prepared_prompt p = ctx_->prepare_chat(agent_messages(test::png_data_uri(168, 112)), o);
  EXPECT_EQ(p.prompt_text, std::string("[gMASK]<sop><|system|>\n") + sys_prompt +
                               "<|user|>\n<|begin_of_image|><|image|><|end_of_image|>\n" + task_text +
                               "<|assistant|>\n");
  EXPECT_EQ(p.n_image_tokens, 24);
}

TEST_F(ChatSessionTest, ImagesExpandInOrderAndShorthandUrl) {
  // 224x224 -> grid 16x16 -> 64 tokens; 56x56 is scaled up to min_pixels: 2*56*56 < 12544 ->
  // beta = sqrt(12544/6272) -> ceil(79.2/28)*28 = 84 -> grid 6x6 -> 9 tokens.
  json messages = json::array({
      {{"role", "user"},
       {"content", json::array({{{"type", "image_url"}, {"image_url", test::png_data_uri(224, 224, 1)}},
                                {{"type", "text"}, {"text", "between"}},
                                {{"type", "image_url"}, {"image_url", {{"url", test::png_data_uri(56, 56, 2)}}}}})}},
  });
  prepared_prompt p = ctx_->prepare_chat(messages, {});
  ASSERT_EQ(p.n_images, 2);
  EXPECT_EQ(p.request.images[0].n_tokens(), 64);
  EXPECT_EQ(p.request.images[1].n_tokens(), 9);
  EXPECT_EQ(p.n_image_tokens, 73);
  EXPECT_NE(p.request.images[0].content_hash, p.request.images[1].content_hash);
  // Runs of <|image|> in prompt order: 64 then 9.
  std::vector<int> runs;
  int32_t image_id = id("<|image|>");
  for (size_t i = 0; i < p.request.prompt.size(); ++i) {
    if (p.request.prompt[i] != image_id) continue;
    if (i == 0 || p.request.prompt[i - 1] != image_id) runs.push_back(0);
    ++runs.back();
  }
  EXPECT_EQ(runs, (std::vector<int>{64, 9}));
}

TEST_F(ChatSessionTest, SameImageHashesEqual) {
  std::string uri = test::png_data_uri(56, 84, 3);
  json messages = json::array({{{"role", "user"},
                                {"content", json::array({{{"type", "image_url"}, {"image_url", uri}},
                                                         {{"type", "image_url"}, {"image_url", uri}}})}}});
  prepared_prompt p = ctx_->prepare_chat(messages, {});
  ASSERT_EQ(p.n_images, 2);
  EXPECT_EQ(p.request.images[0].content_hash, p.request.images[1].content_hash);
  EXPECT_EQ(p.request.images[0].pixel_values, p.request.images[1].pixel_values);
}

TEST_F(ChatSessionTest, ImagesLeftToTheDeviceCarryTheDecodedImageAndItsTaps) {
  // preprocess_on_device (a GPU engine): the same prompt, grid and content hash; no patch rows on the host, the
  // decoded image and the resize taps to the grid instead (the GPU test checks the rows made from them).
  chat_context_options o;
  o.model_dir = test::fixture_model_dir();
  o.chat_template = test::glm_template();
  o.min_pixels = 112 * 112;
  o.max_pixels = 14 * 14 * 4 * 2 * 6144;
  o.preprocess_on_device = true;
  std::unique_ptr<chat_context> on_device = chat_context::load(o);
  const json messages = agent_messages(test::png_data_uri(200, 130, 5));
  const prepared_prompt host = ctx_->prepare_chat(messages, {});
  const prepared_prompt dev = on_device->prepare_chat(messages, {});
  EXPECT_EQ(dev.request.prompt, host.request.prompt);
  ASSERT_EQ(dev.request.images.size(), 1u);
  const vision_input &a = host.request.images[0], &b = dev.request.images[0];
  EXPECT_EQ(b.content_hash, a.content_hash);
  EXPECT_EQ(b.grid_h, a.grid_h);
  EXPECT_EQ(b.grid_w, a.grid_w);
  EXPECT_TRUE(b.pixel_values.empty());
  ASSERT_TRUE(b.raw);
  EXPECT_FALSE(a.raw);
  EXPECT_EQ(b.raw->width, 200);
  EXPECT_EQ(b.raw->height, 130);
  EXPECT_EQ(b.raw->rgb.size(), size_t(200 * 130 * 3));
  EXPECT_EQ(b.raw->horizontal.out_size, b.grid_w * 14);
  EXPECT_EQ(b.raw->vertical.out_size, b.grid_h * 14);
}

TEST_F(ChatSessionTest, HistoryToolAndThinkingSwitch) {
  json messages = json::array({
      {{"role", "user"}, {"content", "hi"}},
      {{"role", "assistant"}, {"content", nullptr}, {"tool_calls", json::array()}},
      {{"role", "tool"}, {"content", "obs"}, {"tool_call_id", "c1"}},
      {{"role", "user"}, {"content", json::array({{{"type", "text"}, {"text", "a"}}, {{"type", "text"}, {"text", "b"}}})}},
  });
  chat_options o;
  o.enable_thinking = false;
  prepared_prompt p = ctx_->prepare_chat(messages, o);
  EXPECT_EQ(p.prompt_text,
            "[gMASK]<sop><|user|>\nhi<|assistant|>\n<|observation|>\nobs<|user|>\nab/nothink<|assistant|>\n"
            "<think></think>\n");
  EXPECT_EQ(p.n_images, 0);
  EXPECT_EQ(p.request.prompt, tok().encode(p.prompt_text, true));

  o.enable_thinking.reset();
  o.format = content_format::STRING;  // text parts joined with "\n"
  o.chat_template_kwargs = {{"enable_thinking", false}};
  EXPECT_EQ(ctx_->prepare_chat(messages, o).prompt_text,
            "[gMASK]<sop><|user|>\nhi<|assistant|>\n<|observation|>\nobs<|user|>\na\nb/nothink<|assistant|>\n"
            "<think></think>\n");
}

TEST_F(ChatSessionTest, MalformedMessagesNameTheParameter) {
  std::string png = test::png_data_uri(56, 56);
  auto user_parts = [](json parts) {
    return json::array({{{"role", "system"}, {"content", "s"}}, {{"role", "user"}, {"content", parts}}});
  };
  auto prep = [&](json m) { return [this, m] { ctx_->prepare_chat(m, {}); }; };

  expect_invalid(prep(json::object()), "messages", "array");
  expect_invalid(prep(json::array()), "messages", "empty");
  expect_invalid(prep(json::array({"hi"})), "messages[0]");
  expect_invalid(prep(json::array({{{"content", "x"}}})), "messages[0].role");
  expect_invalid(prep(json::array({{{"role", "bot"}, {"content", "x"}}})), "messages[0].role", "bot");
  expect_invalid(prep(json::array({{{"role", "user"}, {"content", nullptr}}})), "messages[0].content");
  expect_invalid(prep(json::array({{{"role", "user"}}})), "messages[0].content");
  expect_invalid(prep(json::array({{{"role", "user"}, {"content", 5}}})), "messages[0].content");
  expect_invalid(prep(user_parts(json::array({{{"text", "no type"}}}))), "messages[1].content[0]");
  expect_invalid(prep(user_parts(json::array({{{"type", "image_url"}, {"image_url", png}}, {{"type", "text"}, {"text", 3}}}))),
                 "messages[1].content[1].text");
  expect_invalid(prep(user_parts(json::array({{{"type", "input_audio"}, {"input_audio", {{"data", "AAAA"}, {"format", "wav"}}}}}))),
                 "messages[1].content[0].type", "--asr-model");  // the chat layer alone has no recognizer
  expect_invalid(prep(user_parts(json::array({{{"type", "video_url"}, {"video_url", {{"url", "x"}}}}}))),
                 "messages[1].content[0]", "video");
  expect_invalid(prep(user_parts(json::array({{{"type", "file"}}}))), "messages[1].content[0].type", "file");
  expect_invalid(prep(user_parts(json::array({{{"type", "image_url"}, {"image_url", {{"url", "https://example.com/a.png"}}}}}))),
                 "messages[1].content[0].image_url", "remote");
  expect_invalid(prep(user_parts(json::array({{{"type", "image_url"}, {"image_url", "HTTP://example.com/a.png"}}}))),
                 "messages[1].content[0].image_url", "remote");
  expect_invalid(prep(user_parts(json::array({{{"type", "image_url"}, {"image_url", "file:///etc/passwd"}}}))),
                 "messages[1].content[0].image_url");
  expect_invalid(prep(user_parts(json::array({{{"type", "image_url"}, {"image_url", {{"detail", "low"}}}}}))),
                 "messages[1].content[0].image_url");
  expect_invalid(prep(user_parts(json::array({{{"type", "image_url"}}}))), "messages[1].content[0]");
  expect_invalid(prep(user_parts(json::array({{{"type", "image_url"}, {"image_url", "data:image/png;base64,@@@not base64"}}}))),
                 "messages[1].content[0].image_url");
  // Valid base64 of something that is not an image.
  expect_invalid(prep(user_parts(json::array({{{"type", "image_url"}, {"image_url", "data:image/png;base64,aGVsbG8gd29ybGQ="}}}))),
                 "messages[1].content[0].image_url");
  // A literal placeholder typed in text does not match the images sent.
  expect_invalid(prep(user_parts(json::array({{{"type", "text"}, {"text", "<|image|>"}}}))), "messages", "placeholder");

  chat_options limited;
  limited.max_images = 1;
  json two = user_parts(json::array({{{"type", "image_url"}, {"image_url", png}}, {{"type", "image_url"}, {"image_url", png}}}));
  expect_invalid([&] { ctx_->prepare_chat(two, limited); }, "messages[1].content[1].image_url", "at most 1");

  chat_options bad_kwargs;
  bad_kwargs.chat_template_kwargs = json::array();
  expect_invalid([&] { ctx_->prepare_chat(json::array({{{"role", "user"}, {"content", "x"}}}), bad_kwargs); },
                 "chat_template_kwargs");
}

TEST_F(ChatSessionTest, ExtraImageAttachesToLastUserMessage) {
  std::string png = test::png_data_uri(168, 112);
  json messages = json::array({{{"role", "system"}, {"content", "S"}}, {{"role", "user"}, {"content", "first"}},
                               {{"role", "assistant"}, {"content", "ok"}}, {{"role", "user"}, {"content", "look"}}});
  apply_extra_image(messages, png, std::string("what is this?"));
  ASSERT_EQ(messages.size(), 4u);
  EXPECT_EQ(messages[1]["content"], "first");
  const json& parts = messages[3]["content"];
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0]["type"], "image_url");
  EXPECT_EQ(parts[1]["text"], "look");
  EXPECT_EQ(parts[2]["text"], "what is this?");
  prepared_prompt p = ctx_->prepare_chat(messages, {});
  EXPECT_EQ(p.prompt_text,
            "[gMASK]<sop><|system|>\nS<|user|>\nfirst<|assistant|>\nok<|user|>\n"
            "<|begin_of_image|><|image|><|end_of_image|>lookwhat is this?<|assistant|>\n");
  EXPECT_EQ(p.n_image_tokens, 24);

  json only_system = json::array({{{"role", "system"}, {"content", "S"}}});
  apply_extra_image(only_system, png, std::nullopt);
  ASSERT_EQ(only_system.size(), 2u);
  EXPECT_EQ(only_system[1]["role"], "user");
  EXPECT_EQ(only_system[1]["content"].size(), 1u);
  EXPECT_EQ(ctx_->prepare_chat(only_system, {}).n_images, 1);

  json not_array = json::object();
  expect_invalid([&] { apply_extra_image(not_array, png, std::nullopt); }, "messages");
}

TEST_F(ChatSessionTest, Completions) {
  prepared_prompt p = ctx_->prepare_completion("Hello world");
  std::vector<int32_t> expected = {id("[gMASK]"), id("<sop>")};
  std::vector<int32_t> text = tok().encode("Hello world", true);
  expected.insert(expected.end(), text.begin(), text.end());
  EXPECT_EQ(p.request.prompt, expected);
  EXPECT_EQ(p.prompt_text, "Hello world");
  EXPECT_EQ(p.n_prompt_tokens, int32_t(expected.size()));

  EXPECT_EQ(ctx_->prepare_completion("Hello world", {.add_special_tokens = false}).request.prompt, text);
  EXPECT_EQ(ctx_->prepare_completion(json::array({"Hello world"}), {.add_special_tokens = false}).request.prompt, text);
  EXPECT_EQ(ctx_->prepare_completion(json(text)).request.prompt, text);
  EXPECT_EQ(ctx_->prepare_completion(json::array({json(text)})).request.prompt, text);

  expect_invalid([&] { ctx_->prepare_completion(json::array({1, -1})); }, "prompt", "prompt[1]");
  expect_invalid([&] { ctx_->prepare_completion(json::array({1, 1 << 30})); }, "prompt");
  expect_invalid([&] { ctx_->prepare_completion(json::array({1, 2.5})); }, "prompt");
  expect_invalid([&] { ctx_->prepare_completion(json::array()); }, "prompt", "empty");
  expect_invalid([&] { ctx_->prepare_completion(json::array({"a", "b"})); }, "prompt", "batched");
  expect_invalid([&] { ctx_->prepare_completion(json(42)); }, "prompt");
  expect_invalid([&] { ctx_->prepare_completion("see <|image|>"); }, "prompt", "image");
}

TEST_F(ChatSessionTest, StringFormatImageOnlyAndDeveloperRole) {
  chat_options o;
  o.format = content_format::STRING;
  json messages = json::array({{{"role", "developer"}, {"content", "D"}},
                               {{"role", "user"}, {"content", json::array({{{"type", "image_url"},
                                                                            {"image_url", test::png_data_uri(56, 56)}}})}}});
  // vLLM: "\n".join([placeholder] + [""]) for a message with an image and no text.
  EXPECT_EQ(ctx_->prepare_chat(messages, o).prompt_text,
            "[gMASK]<sop><|system|>\nD<|user|>\n<|begin_of_image|><|image|><|end_of_image|>\n<|assistant|>\n");
}

TEST_F(ChatSessionTest, ImageLimitsAreRequestErrors) {
  chat_context_options o;
  o.model_dir = test::fixture_model_dir();
  o.chat_template = test::glm_template();
  o.max_image_side = 100;
  auto small = chat_context::load(o);
  json messages = json::array({{{"role", "user"},
                                {"content", json::array({{{"type", "text"}, {"text", "x"}},
                                                         {{"type", "image_url"}, {"image_url", test::png_data_uri(168, 112)}}})}}});
  expect_invalid([&] { small->prepare_chat(messages, {}); }, "messages[0].content[1].image_url", "invalid image");
  EXPECT_EQ(ctx_->prepare_chat(messages, {}).n_images, 1);
}

TEST_F(ChatSessionTest, InfoFromTokenizer) {
  EXPECT_EQ(ctx_->info().image_token_id, id("<|image|>"));
  EXPECT_EQ(ctx_->info().image_start_token_id, id("<|begin_of_image|>"));
  EXPECT_EQ(ctx_->info().image_end_token_id, id("<|end_of_image|>"));
  EXPECT_EQ(ctx_->image_placeholder(), "<|begin_of_image|><|image|><|end_of_image|>");
}

}  // namespace
}  // namespace autoglm

// The GLM-4.1V chat template asset (tests/assets/glm4v/chat_template.jinja) rendered by our engine:
// the HF-rendered example of spec §7, the phone-agent prompt of spec §9 and the enable_thinking switch.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "template/chat_template.h"

namespace {

using ojson = nlohmann::ordered_json;

autoglm::chat_template glm_template() {
  std::ifstream f(std::string(AUTOGLM_SOURCE_DIR) + "/tests/assets/glm4v/chat_template.jinja");
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_FALSE(ss.str().empty());
  return autoglm::chat_template(ss.str());
}

TEST(GlmTemplate, HfRenderedExample) {
  auto ctx = ojson::parse(R"({"messages": [{"role": "system", "content": "SYS"},
      {"role": "user", "content": [{"type": "image", "image": "x.png"}, {"type": "text", "text": "Question"}]}],
      "add_generation_prompt": true})");
  EXPECT_EQ(glm_template().render(ctx), "[gMASK]<sop><|system|>\nSYS<|user|>\n<|begin_of_image|><|image|><|end_of_image|>Question<|assistant|>\n");
}

TEST(GlmTemplate, AgentPromptSpec9) {
  const std::string sys = "今天的日期是: 2025年1月1日\n你是一个智能体分析专家。";
  const std::string text = "打开设置\n\n{\"current_app\": \"System Home\"}";
  ojson ctx = {{"messages",
                {{{"role", "system"}, {"content", sys}},
                 {{"role", "user"},
                  {"content", {{{"type", "image_url"}, {"image_url", {{"url", "data:image/png;base64,AAAA"}}}}, {{"type", "text"}, {"text", text}}}}}}},
               {"add_generation_prompt", true}};
  EXPECT_EQ(glm_template().render(ctx),
            "[gMASK]<sop><|system|>\n" + sys + "<|user|>\n<|begin_of_image|><|image|><|end_of_image|>" + text + "<|assistant|>\n");
}

TEST(GlmTemplate, HistoryMetadataObservationAndVideo) {
  auto ctx = ojson::parse(R"({"messages": [
      {"role": "user", "content": [{"type": "video", "video": "v.mp4"}, {"type": "text", "text": "what happens?"}]},
      {"role": "assistant", "content": "<think>t</think><answer>a</answer>"},
      {"role": "assistant", "metadata": "get_weather", "content": "{\"city\": \"x\"}"},
      {"role": "observation", "content": "sunny"}], "add_generation_prompt": false})");
  EXPECT_EQ(glm_template().render(ctx),
            "[gMASK]<sop><|user|>\n<|begin_of_video|><|video|><|end_of_video|>what happens?"
            "<|assistant|>\n<think>t</think><answer>a</answer><|assistant|>get_weather\n{\"city\": \"x\"}<|observation|>\nsunny");
}

TEST(GlmTemplate, EnableThinkingSwitch) {
  auto ctx = ojson::parse(R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
      {"role": "user", "content": [{"type": "text", "text": "c"}]}], "add_generation_prompt": true})");
  const std::string base = "[gMASK]<sop><|user|>\na<|assistant|>\nb<|user|>\nc";
  EXPECT_EQ(glm_template().render(ctx), base + "<|assistant|>\n");
  ctx["enable_thinking"] = true;
  EXPECT_EQ(glm_template().render(ctx), base + "<|assistant|>\n");
  ctx["enable_thinking"] = false;
  EXPECT_EQ(glm_template().render(ctx), base + "/nothink<|assistant|>\n<think></think>\n");
}

}  // namespace

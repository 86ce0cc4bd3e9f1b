// tests/server/protocol_test.cpp: OpenAI request bodies → params, and every validation failure names its param.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "server/protocol.h"

using namespace autoglm;
using namespace autoglm::server;
using nlohmann::json;

namespace {

// Returns the param named by the invalid_request a parse throws ("<no throw>" if it does not throw).
template <class F>
std::string param_of(F&& parse) {
  try {
    parse();
  } catch (const invalid_request& e) {
    return e.param();
  }
  return "<no throw>";
}

json chat_body() { return {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}}; }

}  // namespace

TEST(chat_request, parses_every_openai_field) {
  json b = chat_body();
  b["stream"] = true;
  b["stream_options"] = {{"include_usage", true}};
  b["max_completion_tokens"] = 7;
  b["max_tokens"] = 99;
  b["temperature"] = 0;
  b["top_p"] = 0.85;
  b["top_k"] = 5;
  b["min_p"] = 0.1;
  b["frequency_penalty"] = 0.2;
  b["presence_penalty"] = -0.5;
  b["repetition_penalty"] = 1.1;
  b["seed"] = 42;
  b["stop"] = "END";
  b["n"] = 3;
  b["logprobs"] = true;
  b["top_logprobs"] = 2;
  b["user"] = "u1";
  b["some_future_field"] = {{"x", 1}};  // ignored
  chat_params p = parse_chat_request(b);
  EXPECT_TRUE(p.stream);
  EXPECT_TRUE(p.include_usage);
  EXPECT_EQ(p.max_tokens, 7);  // max_completion_tokens wins
  EXPECT_EQ(p.temperature, 0.0f);
  EXPECT_FLOAT_EQ(*p.top_p, 0.85f);
  EXPECT_EQ(p.top_k, 5);
  EXPECT_FLOAT_EQ(p.frequency_penalty, 0.2f);
  EXPECT_FLOAT_EQ(p.presence_penalty, -0.5f);
  EXPECT_EQ(p.seed, 42u);
  ASSERT_EQ(p.stop.size(), 1u);
  EXPECT_EQ(p.stop[0], "END");
  EXPECT_EQ(p.n, 3);
  EXPECT_EQ(p.top_logprobs, 2);
  EXPECT_EQ(p.user, "u1");
}

TEST(chat_request, null_means_unset_and_stop_accepts_arrays) {
  json b = chat_body();
  b["temperature"] = nullptr;
  b["stop"] = {"a", "", "b"};
  chat_params p = parse_chat_request(b);
  EXPECT_FALSE(p.temperature.has_value());
  EXPECT_EQ(p.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(p.top_logprobs, -1);
}

TEST(chat_request, guide_extensions) {
  json b = chat_body();
  b["enable_thinking"] = true;
  b["return_reasoning"] = true;
  b["image"] = "aGVsbG8=";
  b["query"] = "what is this?";
  chat_params p = parse_chat_request(b);
  EXPECT_EQ(p.enable_thinking, true);
  EXPECT_TRUE(p.return_reasoning);
  EXPECT_EQ(p.image, "aGVsbG8=");
  EXPECT_EQ(p.query, "what is this?");

  json k = chat_body();
  k["chat_template_kwargs"] = {{"enable_thinking", false}};
  EXPECT_EQ(parse_chat_request(k).enable_thinking, false);
}

TEST(chat_request, wrong_types_name_the_param) {
  auto with = [](const char* key, json v) {
    json b = chat_body();
    b[key] = v;
    return param_of([&] { parse_chat_request(b); });
  };
  EXPECT_EQ(with("temperature", "hot"), "temperature");
  EXPECT_EQ(with("temperature", 3.5), "temperature");
  EXPECT_EQ(with("top_p", 0), "top_p");
  EXPECT_EQ(with("max_tokens", "10"), "max_tokens");
  EXPECT_EQ(with("max_tokens", 0), "max_tokens");
  EXPECT_EQ(with("max_tokens", 1.5), "max_tokens");
  EXPECT_EQ(with("n", 0), "n");
  EXPECT_EQ(with("stream", "yes"), "stream");
  EXPECT_EQ(with("stop", 5), "stop");
  EXPECT_EQ(with("stop", json::array({"ok", 3})), "stop[1]");
  EXPECT_EQ(with("seed", "x"), "seed");
  EXPECT_EQ(with("frequency_penalty", 2.5), "frequency_penalty");
  EXPECT_EQ(with("stream_options", 1), "stream_options");
  EXPECT_EQ(with("top_logprobs", 3), "top_logprobs");  // without logprobs: true
  EXPECT_EQ(with("enable_thinking", "no"), "enable_thinking");
  EXPECT_EQ(with("image", 12), "image");
  EXPECT_EQ(with("query", "q"), "query");  // query without image

  json b = chat_body();
  b["stream_options"] = {{"include_usage", "yes"}};
  EXPECT_EQ(param_of([&] { parse_chat_request(b); }), "stream_options.include_usage");
  EXPECT_EQ(param_of([&] { parse_chat_request(json::array()); }), "");
}

TEST(chat_request, message_validation) {
  auto msgs = [](json m) { return param_of([&] { parse_chat_request({{"messages", m}}); }); };
  EXPECT_EQ(param_of([] { parse_chat_request(json::object()); }), "messages");
  EXPECT_EQ(msgs("hi"), "messages");
  EXPECT_EQ(msgs(json::array()), "messages");
  EXPECT_EQ(msgs({{{"content", "x"}}}), "messages[0].role");
  EXPECT_EQ(msgs({{{"role", "wizard"}, {"content", "x"}}}), "messages[0].role");
  EXPECT_EQ(msgs({{{"role", "user"}, {"content", 5}}}), "messages[0].content");
  EXPECT_EQ(msgs({{{"role", "user"}}}), "messages[0].content");
  EXPECT_EQ(msgs({{{"role", "user"}, {"content", {{{"type", "text"}}}}}}), "messages[0].content[0].text");
  EXPECT_EQ(msgs({{{"role", "user"}, {"content", {{{"type", "image_url"}, {"image_url", 3}}}}}}),
            "messages[0].content[0].image_url");
  EXPECT_EQ(msgs({{{"role", "system"}, {"content", "s"}},
                   {{"role", "user"},
                    {"content", {{{"type", "input_audio"}, {"input_audio", {{"format", "wav"}}}}}}}}),
            "messages[1].content[0].input_audio.data");
  EXPECT_EQ(msgs({{{"role", "user"}, {"content", {{{"type", "input_audio"}, {"input_audio", "AAAA"}}}}}}),
            "messages[0].content[0].input_audio");
  EXPECT_EQ(msgs({{{"role", "user"}, {"content", {{{"type", "audio_url"}, {"audio_url", "x"}}}}}}),
            "messages[0].content[0].type");
  // A well-formed input_audio part passes validation (the server transcribes it, or refuses it without --asr-model).
  EXPECT_EQ(msgs({{{"role", "user"},
                   {"content", {{{"type", "input_audio"}, {"input_audio", {{"data", "AAAA"}, {"format", "wav"}}}}}}}}),
            "<no throw>");
  EXPECT_EQ(msgs({{{"role", "user"}, {"content", {{{"type", "hologram"}}}}}}), "messages[0].content[0].type");
  // Well-formed: string content, part lists with image_url as object or string, assistant without content.
  EXPECT_EQ(msgs({{{"role", "system"}, {"content", "s"}},
                   {{"role", "user"},
                    {"content",
                     {{{"type", "image_url"}, {"image_url", {{"url", "data:image/png;base64,AA=="}}}},
                      {{"type", "text"}, {"text", "q"}}}}},
                   {{"role", "assistant"}, {"content", nullptr}},
                   {{"role", "user"}, {"content", {{{"type", "image_url"}, {"image_url", "data:x"}}}}}}),
            "<no throw>");
}

TEST(completion_request, prompt_shapes) {
  completion_params a = parse_completion_request({{"prompt", "hello"}, {"logprobs", 2}, {"echo", true}});
  ASSERT_EQ(a.prompts.size(), 1u);
  EXPECT_EQ(a.prompts[0].text, "hello");
  EXPECT_EQ(a.top_logprobs, 2);
  EXPECT_TRUE(a.echo);
  completion_params b = parse_completion_request({{"prompt", {1, 2, 3}}});
  EXPECT_TRUE(b.prompts[0].is_tokens);
  EXPECT_EQ(b.prompts[0].tokens, (std::vector<int32_t>{1, 2, 3}));
  completion_params c = parse_completion_request({{"prompt", {"a", "b"}}, {"n", 2}});
  EXPECT_EQ(c.prompts.size(), 2u);
  EXPECT_EQ(param_of([] { parse_completion_request(json::object()); }), "prompt");
  EXPECT_EQ(param_of([] { parse_completion_request({{"prompt", 5}}); }), "prompt");
  EXPECT_EQ(param_of([] { parse_completion_request({{"prompt", {1, -2}}}); }), "prompt[1]");
  EXPECT_EQ(param_of([] { parse_completion_request({{"prompt", json::array({"a", 3})}}); }), "prompt[1]");
  EXPECT_EQ(param_of([] { parse_completion_request({{"prompt", "x"}, {"logprobs", true}}); }), "logprobs");
}

TEST(tokenize_request, prompt_or_messages) {
  tokenize_params a = parse_tokenize_request({{"prompt", "hi"}});
  EXPECT_TRUE(a.add_special_tokens);
  tokenize_params b = parse_tokenize_request({{"messages", {{{"role", "user"}, {"content", "hi"}}}}});
  EXPECT_FALSE(b.add_special_tokens);
  EXPECT_TRUE(b.add_generation_prompt);
  EXPECT_EQ(param_of([] { parse_tokenize_request(json::object()); }), "prompt");
  EXPECT_EQ(param_of([] { parse_tokenize_request({{"prompt", 1}}); }), "prompt");
  EXPECT_EQ(parse_detokenize_request({{"tokens", {5, 6}}}).tokens, (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(param_of([] { parse_detokenize_request({{"tokens", "5"}}); }), "tokens");
}

TEST(sampling, defaults_from_generation_config_and_context_cap) {
  auto dir = std::filesystem::temp_directory_path() / "autoglm_server_test_gencfg";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "generation_config.json")
      << R"({"do_sample": true, "temperature": 0.8, "top_p": 0.6, "top_k": 2, "repetition_penalty": 1.1})";
  generation_defaults d = load_generation_defaults(dir.string());
  EXPECT_FLOAT_EQ(d.temperature, 0.8f);
  EXPECT_FLOAT_EQ(d.top_p, 0.6f);
  EXPECT_EQ(d.top_k, 2);
  EXPECT_FLOAT_EQ(d.repetition_penalty, 1.1f);

  chat_params p = parse_chat_request({{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"top_p", 0.9}});
  sampling_params s = make_sampling(p, d, 100, 128);
  EXPECT_FLOAT_EQ(s.temperature, 0.8f);  // from generation_config
  EXPECT_FLOAT_EQ(s.top_p, 0.9f);        // request wins
  EXPECT_EQ(s.top_k, 2);
  EXPECT_EQ(s.max_tokens, 28);  // unset: what fits
  p.max_tokens = 1000;
  EXPECT_EQ(make_sampling(p, d, 100, 128).max_tokens, 28);  // capped by the context
  p.max_tokens = 5;
  EXPECT_EQ(make_sampling(p, d, 100, 128).max_tokens, 5);
  EXPECT_EQ(param_of([&] { make_sampling(p, d, 128, 128); }), "messages");

  std::ofstream(dir / "generation_config.json") << R"({"do_sample": false, "temperature": 0.8})";
  EXPECT_EQ(load_generation_defaults(dir.string()).temperature, 0.0f);
  std::ofstream(dir / "generation_config.json") << "[1,";
  EXPECT_THROW(load_generation_defaults(dir.string()), autoglm::error);
  std::filesystem::remove_all(dir);
  EXPECT_EQ(load_generation_defaults(dir.string()).temperature, 1.0f);  // no file: OpenAI defaults
}

TEST(chat_request, tools_and_template_kwargs_keep_client_key_order) {
  // Parsed from text as the router does: ordered_json keeps insertion order, which is what the template renders.
  auto body = nlohmann::ordered_json::parse(R"({"messages": [{"role": "user", "content": "hi"}],
    "tools": [{"type": "function", "function": {"name": "tap", "parameters":
      {"type": "object", "required": ["x"], "properties": {"y": {}, "x": {}}}}}],
    "tool_choice": "none",
    "chat_template_kwargs": {"zeta": 1, "enable_thinking": false, "alpha": 2}})");
  chat_params p = parse_chat_request(body);
  EXPECT_EQ(p.tools.dump(), R"([{"type":"function","function":{"name":"tap","parameters":)"
                            R"({"type":"object","required":["x"],"properties":{"y":{},"x":{}}}}}])");
  EXPECT_EQ(p.chat_template_kwargs.dump(), R"({"zeta":1,"alpha":2})");  // enable_thinking moves to its own field
  EXPECT_EQ(p.enable_thinking, false);
  EXPECT_EQ(p.messages.dump(), R"([{"role":"user","content":"hi"}])");

  tokenize_params t = parse_tokenize_request(body);
  EXPECT_EQ(t.tools.dump(), p.tools.dump());
  EXPECT_EQ(t.chat_template_kwargs.dump(), p.chat_template_kwargs.dump());

  chat_params none = parse_chat_request({{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"tools", nullptr}});
  EXPECT_TRUE(none.tools.is_null());
  EXPECT_TRUE(none.chat_template_kwargs.is_object() && none.chat_template_kwargs.empty());
}

TEST(chat_request, tools_and_template_kwargs_validation) {
  auto with = [](const char* key, nlohmann::ordered_json v) {
    nlohmann::ordered_json b = chat_body();
    b[key] = std::move(v);
    return std::pair{param_of([&] { parse_chat_request(b); }), param_of([&] { parse_tokenize_request(b); })};
  };
  auto fn = [](nlohmann::ordered_json f) { return nlohmann::ordered_json::array({{{"type", "function"}, {"function", f}}}); };
  using pp = std::pair<std::string, std::string>;
  EXPECT_EQ(with("tools", "tap"), pp("tools", "tools"));
  EXPECT_EQ(with("tools", nlohmann::ordered_json::object()), pp("tools", "tools"));
  EXPECT_EQ(with("tools", {1}), pp("tools[0]", "tools[0]"));
  EXPECT_EQ(with("tools", {{{"function", {{"name", "tap"}}}}}), pp("tools[0].type", "tools[0].type"));
  EXPECT_EQ(with("tools", {{{"type", "code_interpreter"}, {"function", {{"name", "tap"}}}}}),
            pp("tools[0].type", "tools[0].type"));
  EXPECT_EQ(with("tools", {{{"type", "function"}}}), pp("tools[0].function", "tools[0].function"));
  EXPECT_EQ(with("tools", {{{"type", "function"}, {"function", "tap"}}}), pp("tools[0].function", "tools[0].function"));
  EXPECT_EQ(with("tools", fn({{"description", "d"}})), pp("tools[0].function.name", "tools[0].function.name"));
  EXPECT_EQ(with("tools", fn({{"name", 3}})), pp("tools[0].function.name", "tools[0].function.name"));
  EXPECT_EQ(with("tools", fn({{"name", "tap"}, {"description", 1}})),
            pp("tools[0].function.description", "tools[0].function.description"));
  EXPECT_EQ(with("tools", fn({{"name", "tap"}, {"parameters", "{}"}})),
            pp("tools[0].function.parameters", "tools[0].function.parameters"));
  EXPECT_EQ(with("chat_template_kwargs", "x"), pp("chat_template_kwargs", "chat_template_kwargs"));
  EXPECT_EQ(with("chat_template_kwargs", {1, 2}), pp("chat_template_kwargs", "chat_template_kwargs"));
  EXPECT_EQ(with("chat_template_kwargs", {{"enable_thinking", 1}}),
            pp("chat_template_kwargs.enable_thinking", "chat_template_kwargs.enable_thinking"));
  // Well-formed: an empty list, extra keys, null description/parameters.
  EXPECT_EQ(with("tools", nlohmann::ordered_json::array()), pp("<no throw>", "<no throw>"));
  EXPECT_EQ(with("tools", fn({{"name", "tap"}, {"description", nullptr}, {"parameters", nullptr}, {"strict", true}})),
            pp("<no throw>", "<no throw>"));
  // tool_choice naming a tool needs that tool (tokenize ignores tool_choice).
  EXPECT_EQ(with("tool_choice", {{"type", "function"}, {"function", {{"name", "tap"}}}}), pp("tool_choice", "<no throw>"));
  EXPECT_EQ(with("chat_template_kwargs", {{"anything", {1, "two"}}}), pp("<no throw>", "<no throw>"));
}

namespace {

using ojson = nlohmann::ordered_json;

ojson tools_body() {
  ojson b = chat_body();
  b["tools"] = ojson::parse(R"([{"type": "function", "function": {"name": "tap", "parameters": {"type": "object"}}},
                               {"type": "function", "function": {"name": "swipe"}}])");
  return b;
}

// The param of the 400 a chat request with body[key] = v gets ("<no throw>" when accepted).
std::string chat_param(const char* key, ojson v, ojson b = chat_body()) {
  b[key] = std::move(v);
  return param_of([&] { parse_chat_request(b); });
}

}  // namespace

TEST(chat_request, response_format_is_validated_as_openai_does) {
  EXPECT_EQ(chat_param("response_format", "json"), "response_format");
  EXPECT_EQ(chat_param("response_format", {1}), "response_format");
  EXPECT_EQ(chat_param("response_format", ojson::object()), "response_format.type");
  EXPECT_EQ(chat_param("response_format", {{"type", "xml"}}), "response_format.type");
  EXPECT_EQ(chat_param("response_format", {{"type", 3}}), "response_format.type");
  EXPECT_EQ(chat_param("response_format", {{"type", "json_schema"}}), "response_format.json_schema");
  EXPECT_EQ(chat_param("response_format", {{"type", "json_schema"}, {"json_schema", "s"}}), "response_format.json_schema");
  EXPECT_EQ(chat_param("response_format", {{"type", "json_schema"}, {"json_schema", {{"schema", ojson::object()}}}}),
            "response_format.json_schema.name");
  EXPECT_EQ(chat_param("response_format",
                       {{"type", "json_schema"}, {"json_schema", {{"name", "a b"}, {"schema", ojson::object()}}}}),
            "response_format.json_schema.name");
  EXPECT_EQ(chat_param("response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "n"}}}}),
            "response_format.json_schema.schema");
  EXPECT_EQ(chat_param("response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "n"}, {"schema", "{}"}}}}),
            "response_format.json_schema.schema");
  EXPECT_EQ(chat_param("response_format",
                       {{"type", "json_schema"}, {"json_schema", {{"name", "n"}, {"schema", ojson::object()}, {"strict", 1}}}}),
            "response_format.json_schema.strict");
  // Accepted (and recorded, though not enforced).
  for (const char* type : {"text", "json_object"}) EXPECT_EQ(chat_param("response_format", {{"type", type}}), "<no throw>");
  ojson b = chat_body();
  b["response_format"] = {{"type", "json_schema"},
                          {"json_schema", {{"name", "Step_1-a"}, {"schema", {{"type", "object"}}}, {"strict", true}}}};
  EXPECT_EQ(parse_chat_request(b).response_format, "json_schema");
  EXPECT_EQ(chat_param("response_format", nullptr), "<no throw>");
}

TEST(chat_request, tool_choice_must_name_a_tool_of_the_request) {
  ojson t = tools_body();
  EXPECT_EQ(chat_param("tool_choice", 1, t), "tool_choice");
  EXPECT_EQ(chat_param("tool_choice", {"auto"}, t), "tool_choice");
  EXPECT_EQ(chat_param("tool_choice", "any", t), "tool_choice");
  EXPECT_EQ(chat_param("tool_choice", {{"type", "function"}}, t), "tool_choice.function.name");
  EXPECT_EQ(chat_param("tool_choice", {{"function", {{"name", "tap"}}}}, t), "tool_choice.type");
  EXPECT_EQ(chat_param("tool_choice", {{"type", "tool"}, {"function", {{"name", "tap"}}}}, t), "tool_choice.type");
  EXPECT_EQ(chat_param("tool_choice", {{"type", "function"}, {"function", "tap"}}, t), "tool_choice.function");
  EXPECT_EQ(chat_param("tool_choice", {{"type", "function"}, {"function", {{"name", 1}}}}, t),
            "tool_choice.function.name");
  EXPECT_EQ(chat_param("tool_choice", {{"type", "function"}, {"function", {{"name", "fly"}}}}, t), "tool_choice");
  // Without tools only "none" makes sense.
  EXPECT_EQ(chat_param("tool_choice", "required"), "tool_choice");
  EXPECT_EQ(chat_param("tool_choice", "auto"), "tool_choice");
  EXPECT_EQ(chat_param("tool_choice", "none"), "<no throw>");
  for (const char* mode : {"none", "auto", "required"}) {
    t["tool_choice"] = mode;
    EXPECT_EQ(parse_chat_request(t).tool_choice, mode);
  }
  t["tool_choice"] = {{"type", "function"}, {"function", {{"name", "swipe"}}}};
  EXPECT_EQ(parse_chat_request(t).tool_choice, "function");
}

TEST(chat_request, deprecated_functions_become_tools) {
  ojson b = chat_body();
  b["functions"] = ojson::parse(R"([{"name": "tap", "parameters": {"type": "object"}}])");
  b["function_call"] = {{"name", "tap"}};
  chat_params p = parse_chat_request(b);
  EXPECT_EQ(p.tools.dump(), R"([{"type":"function","function":{"name":"tap","parameters":{"type":"object"}}}])");
  EXPECT_EQ(chat_param("function_call", {{"name", "fly"}}, b), "function_call");
  EXPECT_EQ(chat_param("function_call", "required", b), "function_call");
  EXPECT_EQ(chat_param("function_call", 3, b), "function_call");
  EXPECT_EQ(chat_param("functions", {{{"description", "no name"}}}), "functions[0].name");
  EXPECT_EQ(chat_param("functions", "tap"), "functions");
  EXPECT_EQ(chat_param("tools", tools_body()["tools"], b), "functions");  // both
  EXPECT_EQ(chat_param("function_call", "auto"), "function_call");          // no functions
}

TEST(chat_request, logit_bias_maps_token_ids_to_numbers_in_range) {
  EXPECT_EQ(chat_param("logit_bias", {1, 2}), "logit_bias");
  EXPECT_EQ(chat_param("logit_bias", "5:10"), "logit_bias");
  EXPECT_EQ(chat_param("logit_bias", {{"hello", 1}}), "logit_bias");
  EXPECT_EQ(chat_param("logit_bias", {{"-5", 1}}), "logit_bias");
  EXPECT_EQ(chat_param("logit_bias", {{"5", "1"}}), "logit_bias");
  EXPECT_EQ(chat_param("logit_bias", {{"5", 100.5}}), "logit_bias");
  EXPECT_EQ(chat_param("logit_bias", {{"5", -101}}), "logit_bias");
  EXPECT_EQ(chat_param("logit_bias", {{"99999999999", 1}}), "logit_bias");
  ojson b = chat_body();
  b["logit_bias"] = {{"5", 100}, {"17", -2.5}};
  chat_params p = parse_chat_request(b);
  ASSERT_EQ(p.logit_bias.size(), 2u);
  EXPECT_EQ(p.logit_bias[1], (std::pair<int32_t, float>(17, -2.5f)));
  EXPECT_NO_THROW(check_token_ids(p, 18));
  EXPECT_EQ(param_of([&] { check_token_ids(p, 17); }), "logit_bias");
  p.stop_token_ids = {3, 40};
  EXPECT_EQ(param_of([&] { check_token_ids(p, 20); }), "stop_token_ids[1]");
  // Completions take it too.
  EXPECT_EQ(param_of([] { parse_completion_request({{"prompt", "x"}, {"logit_bias", {{"a", 1}}}}); }), "logit_bias");
}

TEST(chat_request, every_documented_field_has_its_type_checked) {
  EXPECT_EQ(chat_param("parallel_tool_calls", "yes"), "parallel_tool_calls");
  EXPECT_EQ(chat_param("parallel_tool_calls", 1), "parallel_tool_calls");
  EXPECT_EQ(chat_param("store", "true"), "store");
  EXPECT_EQ(chat_param("metadata", "k=v"), "metadata");
  EXPECT_EQ(chat_param("metadata", {{"k", 1}}), "metadata.k");
  for (const char* key : {"service_tier", "reasoning_effort", "verbosity", "safety_identifier", "prompt_cache_key", "user"})
    EXPECT_EQ(chat_param(key, 5), key);
  EXPECT_EQ(chat_param("modalities", "text"), "modalities");
  EXPECT_EQ(chat_param("modalities", {1}), "modalities[0]");
  EXPECT_EQ(chat_param("modalities", {"text", "audio"}), "modalities");  // text output only
  EXPECT_EQ(chat_param("audio", {{"voice", "alloy"}, {"format", "wav"}}), "audio");
  EXPECT_EQ(chat_param("audio", "x"), "audio");
  EXPECT_EQ(chat_param("web_search_options", ojson::object()), "web_search_options");
  EXPECT_EQ(chat_param("prediction", "x"), "prediction");
  EXPECT_EQ(chat_param("prediction", {{"type", "guess"}}), "prediction.type");
  EXPECT_EQ(chat_param("logprobs", 1), "logprobs");
  EXPECT_EQ(chat_param("top_logprobs", 21, [] { ojson b = chat_body(); b["logprobs"] = true; return b; }()),
            "top_logprobs");
  EXPECT_EQ(chat_param("stop", ojson::array({"a", ojson::object()})), "stop[1]");
  EXPECT_EQ(chat_param("seed", 1.5), "seed");
  EXPECT_EQ(chat_param("n", "2"), "n");
  EXPECT_EQ(chat_param("max_completion_tokens", -1), "max_completion_tokens");
  // stream_options only with stream: true (OpenAI and vLLM answer 400).
  EXPECT_EQ(chat_param("stream_options", {{"include_usage", true}}), "stream_options");
  ojson s = chat_body();
  s["stream"] = true;
  EXPECT_EQ(chat_param("stream_options", {{"include_obfuscation", "no"}}, s), "stream_options.include_obfuscation");
  // Messages: names, tool call ids and tool calls.
  auto msgs = [](ojson m) { return param_of([&] { parse_chat_request({{"messages", m}}); }); };
  EXPECT_EQ(msgs({{{"role", "user"}, {"content", "x"}, {"name", 7}}}), "messages[0].name");
  EXPECT_EQ(msgs({{{"role", "tool"}, {"content", "x"}, {"tool_call_id", 7}}}), "messages[0].tool_call_id");
  EXPECT_EQ(msgs({{{"role", "assistant"}, {"tool_calls", "tap"}}}), "messages[0].tool_calls");
  EXPECT_EQ(msgs({{{"role", "assistant"}, {"tool_calls", {{{"type", "function"}, {"function", {{"arguments", "{}"}}}}}}}}),
            "messages[0].tool_calls[0].function.name");
  EXPECT_EQ(msgs({{{"role", "assistant"},
                   {"tool_calls", {{{"type", "function"}, {"function", {{"name", "tap"}, {"arguments", 5}}}}}}}}),
            "messages[0].tool_calls[0].function.arguments");
  EXPECT_EQ(msgs({{{"role", "assistant"},
                   {"content", nullptr},
                   {"tool_calls",
                    {{{"id", "c1"}, {"type", "function"}, {"function", {{"name", "tap"}, {"arguments", R"({"x":1})"}}}}}}},
                  {{"role", "tool"}, {"tool_call_id", "c1"}, {"content", "ok"}}}),
            "<no throw>");
  // Every field at once, well-formed, plus unknown ones: accepted.
  ojson all = tools_body();
  all.update(ojson::parse(R"({"stream": true, "stream_options": {"include_usage": true, "include_obfuscation": false},
    "parallel_tool_calls": false, "store": false, "metadata": {"k": "v"}, "service_tier": "auto",
    "reasoning_effort": "low", "verbosity": "low", "safety_identifier": "s", "prompt_cache_key": "p",
    "modalities": ["text"], "audio": null, "web_search_options": null, "prediction": {"type": "content", "content": "x"},
    "logit_bias": {"1": 0}, "tool_choice": "required", "response_format": {"type": "json_object"},
    "seed": -3, "user": "u", "n": 2, "max_tokens": 5, "some_vendor_field": {"x": [1]}})"));
  EXPECT_EQ(param_of([&] { parse_chat_request(all); }), "<no throw>");
}

TEST(completion_request, best_of_and_suffix_are_refused_rather_than_ignored) {
  auto param = [](ojson extra) {
    ojson b = {{"prompt", "x"}};
    b.update(extra);
    return param_of([&] { parse_completion_request(b); });
  };
  EXPECT_EQ(param({{"best_of", 3}}), "best_of");
  EXPECT_EQ(param({{"best_of", 1}, {"n", 2}}), "best_of");
  EXPECT_EQ(param({{"best_of", "2"}}), "best_of");
  EXPECT_EQ(param({{"best_of", 2}, {"n", 2}}), "<no throw>");
  EXPECT_EQ(param({{"suffix", "tail"}}), "suffix");
  EXPECT_EQ(param({{"suffix", 1}}), "suffix");
  EXPECT_EQ(param({{"suffix", ""}}), "<no throw>");
  EXPECT_EQ(param({{"stream_options", {{"include_usage", true}}}}), "stream_options");
  EXPECT_EQ(param({{"prompt", ojson(std::vector<std::string>(129, "p"))}}), "prompt");
}

TEST(chat_request, moving_the_body_gives_the_same_request) {
  ojson b = tools_body();
  b["chat_template_kwargs"] = {{"zeta", 1}, {"enable_thinking", true}};
  b["image"] = "aGVsbG8=";
  chat_params copied = parse_chat_request(b);
  chat_params moved = parse_chat_request(ojson(b));
  EXPECT_EQ(moved.messages, copied.messages);
  EXPECT_EQ(moved.tools, copied.tools);
  EXPECT_EQ(moved.chat_template_kwargs, copied.chat_template_kwargs);
  EXPECT_EQ(moved.image, copied.image);
  EXPECT_EQ(moved.enable_thinking, true);
  tokenize_params t = parse_tokenize_request(ojson(b));
  EXPECT_EQ(t.messages, copied.messages);
  EXPECT_EQ(t.tools, copied.tools);
}

TEST(request_json, limits_fit_real_requests_and_stop_bombs) {
  json_limits l = request_json_limits(4096);
  EXPECT_EQ(l.max_depth, 128);
  EXPECT_EQ(l.max_values, 1 << 20);
  EXPECT_EQ(request_json_limits(1 << 20).max_values, 4 << 20);  // 4 full-context token prompts
  // A 40-level tool schema (each level: properties -> schema) parses and validates.
  std::string schema = R"({"type":"string"})";
  for (int i = 0; i < 40; ++i) schema = R"({"type":"object","properties":{"p":)" + schema + "}}";
  std::string body = R"({"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":)"
                     R"({"name":"deep","parameters":)" + schema + "}}]}";
  EXPECT_EQ(param_of([&] { parse_chat_request(parse_ordered_json(body, l)); }), "<no throw>");
  // A full-context token prompt fits.
  std::string tokens = R"({"prompt":[)";
  for (int i = 0; i < 4096; ++i) tokens += (i ? ",7" : "7");
  EXPECT_EQ(parse_completion_request(parse_ordered_json(tokens + "]}", l)).prompts[0].tokens.size(), 4096u);
  // The crash reports: 150,000 levels, and 100,000 inside messages / parameters / chat_template_kwargs.
  auto deep = [](int n) { return std::string(size_t(n), '[') + std::string(size_t(n), ']'); };
  for (const std::string& bomb :
       {R"({"a":)" + deep(150000) + R"(,"b":0})",
        R"({"messages":[{"role":"user","content":)" + deep(100000) + "}]}",
        R"({"messages":[],"tools":[{"type":"function","function":{"name":"f","parameters":{"x":)" + deep(100000) + "}}}]}",
        R"({"messages":[],"chat_template_kwargs":{"x":)" + deep(100000) + "}}"}) {
    try {
      parse_ordered_json(bomb, l);
      ADD_FAILURE() << "accepted";
    } catch (const json_parse_error& e) {
      EXPECT_TRUE(e.limit_exceeded());
    }
  }
}

TEST(sampling, generation_config_values_are_range_checked) {
  auto dir = std::filesystem::temp_directory_path() / "autoglm_server_test_gencfg_ranges";
  std::filesystem::create_directories(dir);
  auto load_error = [&](const char* text) -> std::string {
    std::ofstream(dir / "generation_config.json") << text;
    try {
      load_generation_defaults(dir.string());
    } catch (const autoglm::error& e) {
      return e.what();
    }
    return "<no throw>";
  };
  EXPECT_NE(load_error(R"({"top_k": 1e20})").find("'top_k'"), std::string::npos);
  EXPECT_NE(load_error(R"({"max_new_tokens": -5})").find("'max_new_tokens'"), std::string::npos);
  EXPECT_NE(load_error(R"({"top_p": 0})").find("'top_p'"), std::string::npos);
  EXPECT_NE(load_error(R"({"temperature": "hot"})").find("'temperature'"), std::string::npos);
  EXPECT_NE(load_error(R"({"a": 1e400})").find("generation_config.json"), std::string::npos);
  EXPECT_EQ(load_error(R"({"top_k": -1, "temperature": null, "max_new_tokens": 512})"), "<no throw>");
  // A named pipe is refused at once instead of blocking the load.
  std::filesystem::remove(dir / "generation_config.json");
  ASSERT_EQ(mkfifo((dir / "generation_config.json").c_str(), 0600), 0);
  EXPECT_THROW(load_generation_defaults(dir.string()), autoglm::error);
  std::filesystem::remove_all(dir);
}

// server/protocol.cpp: request parsing and validation for the OpenAI endpoints.
#include "server/protocol.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <initializer_list>
#include <limits>

#include "core/error.h"

namespace autoglm::server {

// ordered_json throughout: request bodies keep the client's key order (see protocol.h).
using json = nlohmann::ordered_json;

json_limits request_json_limits(int32_t max_model_len) {
  json_limits l;
  l.max_depth = max_request_json_depth;
  l.max_values = std::max<int64_t>(int64_t(1) << 20, 4 * int64_t(max_model_len));
  return l;
}

namespace {

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "boolean";
    case json::value_t::string: return "string";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    case json::value_t::discarded: return "invalid";
    default: return "number";
  }
}

[[noreturn]] void wrong_type(const std::string& param, const char* expected, const json& v) {
  throw invalid_request("'" + param + "' must be " + expected + ", got " + type_name(v), param);
}

// Returns nullptr when the key is absent or null.
const json* field(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<bool> get_bool(const json& obj, const char* key, const std::string& prefix = {}) {
  const json* v = field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) wrong_type(prefix + key, "a boolean", *v);
  return v->get<bool>();
}

std::optional<double> get_number(const json& obj, const char* key, double lo, double hi, const std::string& prefix = {}) {
  const json* v = field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) wrong_type(prefix + key, "a number", *v);
  double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi)
    throw invalid_request("'" + prefix + key + "' must be between " + json(lo).dump() + " and " + json(hi).dump() +
                              ", got " + v->dump(),
                          prefix + key);
  return x;
}

std::optional<int64_t> get_int(const json& obj, const char* key, int64_t lo, int64_t hi, const std::string& prefix = {}) {
  const json* v = field(obj, key);
  if (!v) return std::nullopt;
  // Accept 3.0 (some clients serialize integers as floats) but not 3.5.
  if (v->is_number_float()) {
    double x = v->get<double>();
    if (x != std::floor(x)) wrong_type(prefix + key, "an integer", *v);
    // Converting a double outside int64's range is undefined behaviour ({"n": 1e30}): check before the cast.
    if (!(x >= -0x1p63 && x < 0x1p63)) throw invalid_request("'" + prefix + key + "' is out of range", prefix + key);
  } else if (!v->is_number_integer()) {
    wrong_type(prefix + key, "an integer", *v);
  }
  if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
    throw invalid_request("'" + prefix + key + "' is out of range", prefix + key);
  int64_t x = v->is_number_float() ? int64_t(v->get<double>()) : v->get<int64_t>();
  if (x < lo || x > hi)
    throw invalid_request("'" + prefix + key + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                              ", got " + std::to_string(x),
                          prefix + key);
  return x;
}

std::optional<std::string> get_string(const json& obj, const char* key, const std::string& prefix = {}) {
  const json* v = field(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) wrong_type(prefix + key, "a string", *v);
  return v->get<std::string>();
}

// A string field that must be one of `allowed` (OpenAI answers 400 for any other value).
std::optional<std::string> get_enum(const json& obj, const char* key, std::initializer_list<const char*> allowed,
                                    const std::string& prefix = {}) {
  auto s = get_string(obj, key, prefix);
  if (!s) return s;
  std::string list;
  for (const char* a : allowed) {
    if (*s == a) return s;
    list += std::string(list.empty() ? "" : ", ") + "\"" + a + "\"";
  }
  throw invalid_request("'" + prefix + key + "' must be one of " + list + ", got \"" + *s + "\"", prefix + key);
}

// An object field, returned for further checks (nullptr when absent or null).
const json* get_object(const json& obj, const char* key, const char* expected = "an object",
                       const std::string& prefix = {}) {
  const json* v = field(obj, key);
  if (v && !v->is_object()) wrong_type(prefix + key, expected, *v);
  return v;
}

std::vector<int32_t> get_token_list(const json& v, const std::string& param) {
  if (!v.is_array()) wrong_type(param, "an array of token ids", v);
  std::vector<int32_t> out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const json& t = v[i];
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > std::numeric_limits<int32_t>::max())
      throw invalid_request("'" + param + "[" + std::to_string(i) + "]' must be a non-negative integer token id",
                            param + "[" + std::to_string(i) + "]");
    out.push_back(t.get<int32_t>());
  }
  return out;
}

void parse_common(const json& body, common_params& p, bool chat) {
  if (!body.is_object()) throw invalid_request("the request body must be a JSON object", "");
  if (auto m = get_string(body, "model")) p.model = *m;
  p.n = int32_t(get_int(body, "n", 1, 128).value_or(1));
  p.stream = get_bool(body, "stream").value_or(false);
  if (const json* so = get_object(body, "stream_options")) {
    p.include_usage = get_bool(*so, "include_usage", "stream_options.").value_or(false);
    get_bool(*so, "include_obfuscation", "stream_options.");
    if (!p.stream)
      throw invalid_request("'stream_options' is only allowed when 'stream' is true", "stream_options");
  }
  // max_completion_tokens is the newer name; it wins when both are given.
  auto max_tokens = get_int(body, "max_tokens", 1, std::numeric_limits<int32_t>::max());
  auto max_completion = get_int(body, "max_completion_tokens", 1, std::numeric_limits<int32_t>::max());
  if (max_completion) p.max_tokens = int32_t(*max_completion);
  else if (max_tokens) p.max_tokens = int32_t(*max_tokens);

  if (auto v = get_number(body, "temperature", 0.0, 2.0)) p.temperature = float(*v);
  if (auto v = get_number(body, "top_p", 0.0, 1.0)) {
    if (*v <= 0.0) throw invalid_request("'top_p' must be in (0, 1], got 0", "top_p");
    p.top_p = float(*v);
  }
  if (auto v = get_int(body, "top_k", -1, std::numeric_limits<int32_t>::max())) p.top_k = int32_t(*v <= 0 ? 0 : *v);
  if (auto v = get_number(body, "min_p", 0.0, 1.0)) p.min_p = float(*v);
  if (auto v = get_number(body, "repetition_penalty", 0.0, 10.0)) {
    if (*v <= 0.0) throw invalid_request("'repetition_penalty' must be > 0", "repetition_penalty");
    p.repetition_penalty = float(*v);
  }
  p.frequency_penalty = float(get_number(body, "frequency_penalty", -2.0, 2.0).value_or(0.0));
  p.presence_penalty = float(get_number(body, "presence_penalty", -2.0, 2.0).value_or(0.0));
  if (const json* s = field(body, "seed")) {
    if (!s->is_number_integer()) wrong_type("seed", "an integer", *s);
    p.seed = s->is_number_unsigned() ? s->get<uint64_t>() : uint64_t(s->get<int64_t>());
  }
  if (const json* stop = field(body, "stop")) {
    if (stop->is_string()) {
      p.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      for (size_t i = 0; i < stop->size(); ++i) {
        if (!(*stop)[i].is_string()) wrong_type("stop[" + std::to_string(i) + "]", "a string", (*stop)[i]);
        p.stop.push_back((*stop)[i].get<std::string>());
      }
    } else {
      wrong_type("stop", "a string or an array of strings", *stop);
    }
    std::erase_if(p.stop, [](const std::string& s) { return s.empty(); });
    if (p.stop.size() > 16) throw invalid_request("'stop' may hold at most 16 strings", "stop");
  }
  if (const json* ids = field(body, "stop_token_ids")) p.stop_token_ids = get_token_list(*ids, "stop_token_ids");
  p.ignore_eos = get_bool(body, "ignore_eos").value_or(false);
  p.skip_special_tokens = get_bool(body, "skip_special_tokens").value_or(true);
  if (auto u = get_string(body, "user")) p.user = *u;
  if (const json* lb = get_object(body, "logit_bias", "an object mapping token ids to biases")) {
    for (const auto& [key, bias] : lb->items()) {
      // Keys are token ids written as decimal strings, as in OpenAI's API.
      const bool digits = !key.empty() && key.size() <= 10 &&
                          std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (!digits || std::stoll(key) > std::numeric_limits<int32_t>::max())
        throw invalid_request("'logit_bias' keys must be token ids (non-negative integers written as strings), got \"" +
                                  key + "\"",
                              "logit_bias");
      if (!bias.is_number()) wrong_type("logit_bias", "an object whose values are numbers", bias);
      double b = bias.get<double>();
      if (!(b >= -100.0 && b <= 100.0))
        throw invalid_request("'logit_bias' values must be between -100 and 100, got " + bias.dump() + " for token " +
                                  key,
                              "logit_bias");
      p.logit_bias.emplace_back(int32_t(std::stoll(key)), float(b));
    }
  }

  if (chat) {
    bool logprobs = get_bool(body, "logprobs").value_or(false);
    auto top = get_int(body, "top_logprobs", 0, 20);
    if (top && !logprobs)
      throw invalid_request("'top_logprobs' requires 'logprobs' to be true", "top_logprobs");
    if (logprobs) p.top_logprobs = int32_t(top.value_or(0));
  } else {
    // Legacy completions: logprobs is an integer (how many alternatives per position).
    if (auto lp = get_int(body, "logprobs", 0, 20)) p.top_logprobs = int32_t(*lp);
  }
}

void validate_content_parts(const json& content, const std::string& prefix) {
  for (size_t j = 0; j < content.size(); ++j) {
    const json& part = content[j];
    std::string pp = prefix + "[" + std::to_string(j) + "]";
    if (!part.is_object()) wrong_type(pp, "an object", part);
    auto type = get_string(part, "type", pp + ".");
    if (!type) throw invalid_request("'" + pp + ".type' is required", pp + ".type");
    if (*type == "text") {
      const json* t = field(part, "text");
      if (!t || !t->is_string()) wrong_type(pp + ".text", "a string", t ? *t : json());
    } else if (*type == "image_url") {
      const json* u = field(part, "image_url");
      if (!u) throw invalid_request("'" + pp + ".image_url' is required", pp + ".image_url");
      if (u->is_object()) {
        const json* url = field(*u, "url");
        if (!url || !url->is_string()) wrong_type(pp + ".image_url.url", "a string", url ? *url : json());
      } else if (!u->is_string()) {
        wrong_type(pp + ".image_url", "an object with 'url'", *u);
      }
    } else if (*type == "input_audio") {
      // Transcribed into a text part when the server has a speech model (chat/audio_parts.h).
      const json* a = get_object(part, "input_audio", "an object with 'data' and 'format'", pp + ".");
      if (!a) throw invalid_request("'" + pp + ".input_audio' is required", pp + ".input_audio");
      const json* data = field(*a, "data");
      if (!data || !data->is_string()) wrong_type(pp + ".input_audio.data", "a base64 string", data ? *data : json());
      get_string(*a, "format", pp + ".input_audio.");
    } else if (*type == "audio_url") {
      throw invalid_request("audio_url parts are not supported; send the audio inline as an input_audio part (" +
                                pp + ".type)",
                            pp + ".type");
    } else if (*type == "video_url" || *type == "video") {
      throw invalid_request("video input is not supported yet (" + pp + ".type '" + *type + "')", pp + ".type");
    } else if (*type == "image") {
      // Some clients (LangChain's legacy format) send {type:"image", ...}; the chat layer decides.
    } else {
      throw invalid_request("unknown content part type '" + *type + "' in " + pp, pp + ".type");
    }
  }
}

// An assistant message's tool_calls: [{"id", "type": "function", "function": {"name", "arguments"}}]. Arguments
// are a JSON string in OpenAI's API; an object is let through for templates that iterate them.
void validate_tool_calls(const json& calls, const std::string& param) {
  if (!calls.is_array()) wrong_type(param, "an array of tool calls", calls);
  for (size_t k = 0; k < calls.size(); ++k) {
    const json& c = calls[k];
    std::string pc = param + "[" + std::to_string(k) + "]";
    if (!c.is_object()) wrong_type(pc, "an object", c);
    get_string(c, "id", pc + ".");
    get_enum(c, "type", {"function"}, pc + ".");
    const json* f = get_object(c, "function", "an object", pc + ".");
    if (!f) throw invalid_request("'" + pc + ".function' is required", pc + ".function");
    if (!get_string(*f, "name", pc + ".function."))
      throw invalid_request("'" + pc + ".function.name' is required", pc + ".function.name");
    if (const json* a = field(*f, "arguments"); a && !a->is_string() && !a->is_object())
      wrong_type(pc + ".function.arguments", "a string (JSON text)", *a);
  }
}

void validate_messages(const json& messages) {
  if (!messages.is_array()) wrong_type("messages", "an array", messages);
  if (messages.empty()) throw invalid_request("'messages' must contain at least one message", "messages");
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    std::string pm = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) wrong_type(pm, "an object", m);
    auto role = get_string(m, "role", pm + ".");
    if (!role) throw invalid_request("'" + pm + ".role' is required", pm + ".role");
    static const char* roles[] = {"system", "developer", "user", "assistant", "tool", "function"};
    if (std::none_of(std::begin(roles), std::end(roles), [&](const char* r) { return *role == r; }))
      throw invalid_request("unknown role '" + *role + "' in " + pm, pm + ".role");
    get_string(m, "name", pm + ".");
    get_string(m, "tool_call_id", pm + ".");
    if (const json* calls = field(m, "tool_calls")) validate_tool_calls(*calls, pm + ".tool_calls");
    const json* content = field(m, "content");
    if (!content) {
      if (*role != "assistant") throw invalid_request("'" + pm + ".content' is required", pm + ".content");
      continue;
    }
    if (content->is_array()) validate_content_parts(*content, pm + ".content");
    else if (!content->is_string()) wrong_type(pm + ".content", "a string or an array of content parts", *content);
  }
}

// OpenAI's tools array (vLLM's ChatCompletionToolsParam): [{"type":"function","function":{"name":...,
// "description"?:..., "parameters"?:{JSON schema}}}]. Kept as sent, extra keys included, in the client's order.
void validate_tools(const json& tools) {
  if (!tools.is_array()) wrong_type("tools", "an array of tool objects", tools);
  for (size_t i = 0; i < tools.size(); ++i) {
    const json& t = tools[i];
    std::string pt = "tools[" + std::to_string(i) + "]";
    if (!t.is_object()) wrong_type(pt, "an object", t);
    auto type = get_string(t, "type", pt + ".");
    if (!type) throw invalid_request("'" + pt + ".type' is required", pt + ".type");
    if (*type != "function")
      throw invalid_request("'" + pt + ".type' must be \"function\", got \"" + *type + "\"", pt + ".type");
    const json* f = field(t, "function");
    if (!f) throw invalid_request("'" + pt + ".function' is required", pt + ".function");
    if (!f->is_object()) wrong_type(pt + ".function", "an object", *f);
    std::string pf = pt + ".function.";
    if (!get_string(*f, "name", pf)) throw invalid_request("'" + pf + "name' is required", pf + "name");
    get_string(*f, "description", pf);
    if (const json* params = field(*f, "parameters"); params && !params->is_object())
      wrong_type(pf + "parameters", "an object (a JSON schema)", *params);
  }
}

// The deprecated `functions` list: [{"name", "description"?, "parameters"?}], i.e. tools without the wrapper.
void validate_functions(const json& functions) {
  if (!functions.is_array()) wrong_type("functions", "an array of function objects", functions);
  for (size_t i = 0; i < functions.size(); ++i) {
    const json& f = functions[i];
    std::string pf = "functions[" + std::to_string(i) + "]";
    if (!f.is_object()) wrong_type(pf, "an object", f);
    if (!get_string(f, "name", pf + ".")) throw invalid_request("'" + pf + ".name' is required", pf + ".name");
    get_string(f, "description", pf + ".");
    get_object(f, "parameters", "an object (a JSON schema)", pf + ".");
  }
}

// The value `v` of body[key], moved out of `owned` (the same body, mutable) when given, else copied.
json take(const json& v, json* owned, const char* key) {
  if (!owned) return v;
  return std::move((*owned)[key]);
}

// messages, tools (or the deprecated functions), chat_template_kwargs and enable_thinking: what a chat or
// tokenize request gives the template. `owned`: the body itself when its fields may be moved out.
void parse_template_params(const json& body, template_params& p, json* owned) {
  const json* messages = field(body, "messages");
  if (!messages) throw invalid_request("'messages' is required", "messages");
  validate_messages(*messages);
  const json* tools = field(body, "tools");
  if (tools) validate_tools(*tools);
  const json* functions = field(body, "functions");
  if (functions) {
    validate_functions(*functions);
    if (tools) throw invalid_request("give either 'tools' or the deprecated 'functions', not both", "functions");
  }
  p.enable_thinking = get_bool(body, "enable_thinking");
  const json* k = get_object(body, "chat_template_kwargs");
  if (k) {
    if (auto kv = get_bool(*k, "enable_thinking", "chat_template_kwargs.")) p.enable_thinking = kv;
  }
  // Validated: now take what reaches the template.
  p.messages = take(*messages, owned, "messages");
  if (tools) {
    p.tools = take(*tools, owned, "tools");
  } else if (functions) {
    // The template knows tools only: each function becomes {"type": "function", "function": f}.
    p.tools = json::array();
    for (const json& f : *functions) p.tools.push_back({{"type", "function"}, {"function", f}});
  }
  if (k) {
    p.chat_template_kwargs = take(*k, owned, "chat_template_kwargs");
    p.chat_template_kwargs.erase("enable_thinking");  // passed on as enable_thinking (either spelling)
  }
}

bool names_a_tool(const json& tools, const std::string& name) {
  if (!tools.is_array()) return false;
  for (const json& t : tools) {
    const json& f = t.contains("function") ? t["function"] : t;  // tools, or the deprecated functions
    if (f.is_object() && f.contains("name") && f["name"] == name) return true;
  }
  return false;
}

// tool_choice: "none" | "auto" | "required" | {"type": "function", "function": {"name": ...}} naming a tool of
// the request, as OpenAI validates it (and function_call, its deprecated form: "none" | "auto" | {"name": ...}).
// Not enforced: this server parses no tool calls, and with "none" vLLM (by default) still renders the tools into
// the prompt, which is what ignoring it does.
std::string parse_tool_choice(const json& body, const json& tools) {
  const bool have_tools = tools.is_array() && !tools.empty();
  auto require_tools = [&](const char* param, const std::string& mode) {
    if (!have_tools)
      throw invalid_request(std::string("'") + param + "' is \"" + mode + "\" but the request has no 'tools'", param);
  };
  std::string mode;
  if (const json* tc = field(body, "tool_choice")) {
    if (tc->is_string()) {
      mode = *get_enum(body, "tool_choice", {"none", "auto", "required"});
      if (mode != "none") require_tools("tool_choice", mode);
    } else if (tc->is_object()) {
      auto type = get_string(*tc, "type", "tool_choice.");
      if (!type) throw invalid_request("'tool_choice.type' is required", "tool_choice.type");
      if (*type != "function")
        throw invalid_request("'tool_choice.type' must be \"function\", got \"" + *type + "\"", "tool_choice.type");
      const json* f = get_object(*tc, "function", "an object", "tool_choice.");
      auto name = f ? get_string(*f, "name", "tool_choice.function.") : std::nullopt;
      if (!name) throw invalid_request("'tool_choice.function.name' is required", "tool_choice.function.name");
      if (!names_a_tool(tools, *name))
        throw invalid_request("'tool_choice' names the function '" + *name + "', which is not in 'tools'",
                              "tool_choice");
      mode = "function";
    } else {
      wrong_type("tool_choice", "\"none\", \"auto\", \"required\" or an object naming a function", *tc);
    }
  }
  if (const json* fc = field(body, "function_call")) {
    if (fc->is_string()) {
      std::string m = *get_enum(body, "function_call", {"none", "auto"});
      if (m != "none") require_tools("function_call", m);
    } else if (fc->is_object()) {
      auto name = get_string(*fc, "name", "function_call.");
      if (!name) throw invalid_request("'function_call.name' is required", "function_call.name");
      if (!names_a_tool(tools, *name))
        throw invalid_request("'function_call' names the function '" + *name + "', which is not in 'functions'",
                              "function_call");
    } else {
      wrong_type("function_call", "\"none\", \"auto\" or an object naming a function", *fc);
    }
  }
  return mode;
}

// response_format: {"type": "text" | "json_object"} or {"type": "json_schema", "json_schema": {"name", "schema",
// "description"?, "strict"?}}. Validated, not enforced (no constrained decoding).
std::string parse_response_format(const json& body) {
  const json* rf = get_object(body, "response_format");
  if (!rf) return "text";
  auto type = get_enum(*rf, "type", {"text", "json_object", "json_schema"}, "response_format.");
  if (!type) throw invalid_request("'response_format.type' is required", "response_format.type");
  if (*type == "json_schema") {
    const std::string pj = "response_format.json_schema";
    const json* js = get_object(*rf, "json_schema", "an object", "response_format.");
    if (!js) throw invalid_request("'" + pj + "' is required when the type is \"json_schema\"", pj);
    auto name = get_string(*js, "name", pj + ".");
    if (!name) throw invalid_request("'" + pj + ".name' is required", pj + ".name");
    // OpenAI's pattern for the name: ^[a-zA-Z0-9_-]{1,64}$.
    const bool ok_name = !name->empty() && name->size() <= 64 && std::all_of(name->begin(), name->end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
    if (!ok_name)
      throw invalid_request("'" + pj + ".name' must be 1 to 64 letters, digits, '_' or '-', got \"" + *name + "\"",
                            pj + ".name");
    get_string(*js, "description", pj + ".");
    if (!get_object(*js, "schema", "an object (a JSON schema)", pj + "."))
      throw invalid_request("'" + pj + ".schema' is required", pj + ".schema");
    get_bool(*js, "strict", pj + ".");
  }
  return *type;
}

// The rest of OpenAI's documented chat fields: checked for their types (400 naming the field), then ignored
// where ignoring them changes nothing the client can observe; output this server cannot produce (audio, web
// search) is refused rather than silently left out.
void check_other_chat_fields(const json& body) {
  get_bool(body, "parallel_tool_calls");
  get_bool(body, "store");
  for (const char* key : {"service_tier", "reasoning_effort", "verbosity", "safety_identifier", "prompt_cache_key",
                          "prompt_cache_retention"})
    get_string(body, key);
  if (const json* md = get_object(body, "metadata", "an object of string values")) {
    for (const auto& [key, v] : md->items())
      if (!v.is_string()) wrong_type("metadata." + key, "a string", v);
  }
  if (const json* pr = get_object(body, "prediction")) {
    get_enum(*pr, "type", {"content"}, "prediction.");
    if (const json* c = field(*pr, "content"); c && !c->is_string() && !c->is_array())
      wrong_type("prediction.content", "a string or an array of text parts", *c);
  }
  if (const json* m = field(body, "modalities")) {
    if (!m->is_array()) wrong_type("modalities", "an array of strings", *m);
    for (size_t i = 0; i < m->size(); ++i) {
      const json& v = (*m)[i];
      if (!v.is_string()) wrong_type("modalities[" + std::to_string(i) + "]", "a string", v);
      if (v != "text")
        throw invalid_request("this server produces text only: 'modalities' may only contain \"text\", got " +
                                  v.dump(),
                              "modalities");
    }
  }
  if (get_object(body, "audio"))
    throw invalid_request("audio output is not supported by this server ('audio' must be absent or null)", "audio");
  if (get_object(body, "web_search_options"))
    throw invalid_request("web search is not supported by this server ('web_search_options' must be absent or null)",
                          "web_search_options");
}

}  // namespace

namespace {

chat_params parse_chat(const json& body, json* owned) {
  chat_params p;
  parse_common(body, p, true);
  parse_template_params(body, p, owned);
  p.tool_choice = parse_tool_choice(body, p.tools);
  p.response_format = parse_response_format(body);
  check_other_chat_fields(body);
  p.return_reasoning = get_bool(body, "return_reasoning").value_or(false);
  if (get_string(body, "image")) {
    json* img = owned ? &(*owned)["image"] : nullptr;
    p.image = img ? std::move(img->get_ref<std::string&>()) : body["image"].get<std::string>();
  }
  p.query = get_string(body, "query");
  if (p.query && !p.image) throw invalid_request("'query' is only used together with 'image'", "query");
  return p;
}

tokenize_params parse_tokenize(const json& body, json* owned) {
  if (!body.is_object()) throw invalid_request("the request body must be a JSON object", "");
  tokenize_params p;
  if (auto m = get_string(body, "model")) p.model = *m;
  p.prompt = get_string(body, "prompt");
  const bool has_messages = field(body, "messages") != nullptr;
  if (!p.prompt && !has_messages) throw invalid_request("'prompt' or 'messages' is required", "prompt");
  if (p.prompt && has_messages) throw invalid_request("give either 'prompt' or 'messages', not both", "messages");
  p.add_special_tokens = get_bool(body, "add_special_tokens").value_or(p.prompt.has_value());
  p.add_generation_prompt = get_bool(body, "add_generation_prompt").value_or(true);
  if (has_messages) parse_template_params(body, p, owned);
  return p;
}

}  // namespace

chat_params parse_chat_request(const json& body) { return parse_chat(body, nullptr); }
chat_params parse_chat_request(json&& body) { return parse_chat(body, &body); }
tokenize_params parse_tokenize_request(const json& body) { return parse_tokenize(body, nullptr); }
tokenize_params parse_tokenize_request(json&& body) { return parse_tokenize(body, &body); }

completion_params parse_completion_request(const json& body) {
  completion_params p;
  parse_common(body, p, false);
  const json* prompt = field(body, "prompt");
  if (!prompt) throw invalid_request("'prompt' is required", "prompt");
  auto one = [&](const json& v, const std::string& param) {
    completion_prompt cp;
    if (v.is_string()) {
      cp.text = v.get<std::string>();
    } else if (v.is_array()) {
      cp.tokens = get_token_list(v, param);
      cp.is_tokens = true;
      if (cp.tokens.empty()) throw invalid_request("'" + param + "' must not be empty", param);
    } else {
      wrong_type(param, "a string or an array of token ids", v);
    }
    p.prompts.push_back(std::move(cp));
  };
  if (prompt->is_array() && !prompt->empty() && ((*prompt)[0].is_string() || (*prompt)[0].is_array())) {
    if (prompt->size() > 128) throw invalid_request("at most 128 prompts per request", "prompt");
    for (size_t i = 0; i < prompt->size(); ++i) one((*prompt)[i], "prompt[" + std::to_string(i) + "]");
  } else {
    one(*prompt, "prompt");
  }
  if (p.prompts.size() * size_t(p.n) > 128) throw invalid_request("at most 128 choices per request", "n");
  p.echo = get_bool(body, "echo").value_or(false);
  // best_of: the server returns every sample it generates, so only best_of == n (or unset) can be honoured.
  if (auto best_of = get_int(body, "best_of", 1, 128); best_of && *best_of != p.n)
    throw invalid_request("'best_of' must equal 'n' (" + std::to_string(p.n) +
                              "): this server returns every completion it generates, got " + std::to_string(*best_of),
                          "best_of");
  if (auto suffix = get_string(body, "suffix"); suffix && !suffix->empty())
    throw invalid_request("'suffix' (text after the completion) is not supported by this server", "suffix");
  return p;
}

void check_token_ids(const common_params& p, int32_t vocab_size) {
  for (const auto& [id, bias] : p.logit_bias)
    if (id >= vocab_size)
      throw invalid_request("'logit_bias' names token " + std::to_string(id) + ", outside the vocabulary (size " +
                                std::to_string(vocab_size) + ")",
                            "logit_bias");
  for (size_t i = 0; i < p.stop_token_ids.size(); ++i)
    if (p.stop_token_ids[i] >= vocab_size)
      throw invalid_request("'stop_token_ids[" + std::to_string(i) + "]' is " + std::to_string(p.stop_token_ids[i]) +
                                ", outside the vocabulary (size " + std::to_string(vocab_size) + ")",
                            "stop_token_ids[" + std::to_string(i) + "]");
}

detokenize_params parse_detokenize_request(const json& body) {
  if (!body.is_object()) throw invalid_request("the request body must be a JSON object", "");
  detokenize_params p;
  if (auto m = get_string(body, "model")) p.model = *m;
  const json* tokens = field(body, "tokens");
  if (!tokens) throw invalid_request("'tokens' is required", "tokens");
  p.tokens = get_token_list(*tokens, "tokens");
  return p;
}

sampling_params make_sampling(const common_params& p, const generation_defaults& d, int32_t n_prompt_tokens,
                              int32_t max_model_len) {
  if (n_prompt_tokens >= max_model_len)
    throw invalid_request("this model's maximum context length is " + std::to_string(max_model_len) +
                              " tokens, but the prompt has " + std::to_string(n_prompt_tokens) + " tokens",
                          "messages");
  sampling_params s;
  s.temperature = p.temperature.value_or(d.temperature);
  s.top_p = p.top_p.value_or(d.top_p);
  s.top_k = p.top_k.value_or(d.top_k);
  s.min_p = p.min_p.value_or(d.min_p);
  s.repetition_penalty = p.repetition_penalty.value_or(d.repetition_penalty);
  s.frequency_penalty = p.frequency_penalty;
  s.presence_penalty = p.presence_penalty;
  s.seed = p.seed;
  int32_t room = max_model_len - n_prompt_tokens;
  s.max_tokens = std::min(p.max_tokens.value_or(room), room);
  s.stop_token_ids = p.stop_token_ids;
  s.ignore_eos = p.ignore_eos;
  s.top_logprobs = p.top_logprobs;
  return s;
}

}  // namespace autoglm::server

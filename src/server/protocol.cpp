// server/protocol.cpp: request parsing and validation for the OpenAI endpoints.
#include "server/protocol.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/error.h"

namespace autoglm::server {

// ordered_json throughout: request bodies keep the client's key order (see protocol.h).
using json = nlohmann::ordered_json;

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
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) wrong_type("stream_options", "an object", *so);
    p.include_usage = get_bool(*so, "include_usage", "stream_options.").value_or(false);
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
    } else if (*type == "input_audio" || *type == "audio_url") {
      throw invalid_request("audio input is not supported by this model server (" + pp + ".type '" + *type + "')",
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

// messages, tools, chat_template_kwargs and enable_thinking: what a chat or tokenize request gives the template.
// tool_choice is accepted and ignored: this server parses no tool calls, and with "none" vLLM (by default) still
// renders the tools into the prompt, which is what ignoring it does.
void parse_template_params(const json& body, template_params& p) {
  const json* messages = field(body, "messages");
  if (!messages) throw invalid_request("'messages' is required", "messages");
  validate_messages(*messages);
  p.messages = *messages;
  if (const json* tools = field(body, "tools")) {
    validate_tools(*tools);
    p.tools = *tools;
  }
  p.enable_thinking = get_bool(body, "enable_thinking");
  if (const json* k = field(body, "chat_template_kwargs")) {
    if (!k->is_object()) wrong_type("chat_template_kwargs", "an object", *k);
    if (auto kv = get_bool(*k, "enable_thinking", "chat_template_kwargs.")) p.enable_thinking = kv;
    p.chat_template_kwargs = *k;
    p.chat_template_kwargs.erase("enable_thinking");  // passed on as enable_thinking (either spelling)
  }
}

}  // namespace

generation_defaults load_generation_defaults(const std::string& model_dir) {
  generation_defaults d;
  std::filesystem::path path = std::filesystem::path(model_dir) / "generation_config.json";
  std::ifstream in(path);
  if (!in) return d;
  json g = json::parse(in, nullptr, false);
  if (g.is_discarded() || !g.is_object()) throw error(path.string() + ": not a JSON object");
  auto num = [&](const char* key) -> std::optional<double> {
    auto it = g.find(key);
    if (it == g.end() || !it->is_number()) return std::nullopt;
    return it->get<double>();
  };
  if (auto v = num("temperature")) d.temperature = float(*v);
  if (auto v = num("top_p")) d.top_p = float(*v);
  if (auto v = num("top_k")) d.top_k = int32_t(*v);
  if (auto v = num("min_p")) d.min_p = float(*v);
  if (auto v = num("repetition_penalty")) d.repetition_penalty = float(*v);
  if (auto v = num("max_new_tokens")) d.max_new_tokens = int32_t(*v);
  // do_sample false means greedy in transformers, whatever temperature says.
  auto ds = g.find("do_sample");
  if (ds != g.end() && ds->is_boolean() && !ds->get<bool>()) d.temperature = 0.0f;
  return d;
}

chat_params parse_chat_request(const json& body) {
  chat_params p;
  parse_common(body, p, true);
  parse_template_params(body, p);
  p.return_reasoning = get_bool(body, "return_reasoning").value_or(false);
  p.image = get_string(body, "image");
  p.query = get_string(body, "query");
  if (p.query && !p.image) throw invalid_request("'query' is only used together with 'image'", "query");
  return p;
}

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
    for (size_t i = 0; i < prompt->size(); ++i) one((*prompt)[i], "prompt[" + std::to_string(i) + "]");
  } else {
    one(*prompt, "prompt");
  }
  if (p.prompts.size() * size_t(p.n) > 128) throw invalid_request("at most 128 choices per request", "n");
  p.echo = get_bool(body, "echo").value_or(false);
  return p;
}

tokenize_params parse_tokenize_request(const json& body) {
  if (!body.is_object()) throw invalid_request("the request body must be a JSON object", "");
  tokenize_params p;
  if (auto m = get_string(body, "model")) p.model = *m;
  p.prompt = get_string(body, "prompt");
  const bool has_messages = field(body, "messages") != nullptr;
  if (!p.prompt && !has_messages) throw invalid_request("'prompt' or 'messages' is required", "prompt");
  if (p.prompt && has_messages) throw invalid_request("give either 'prompt' or 'messages', not both", "messages");
  if (has_messages) parse_template_params(body, p);
  p.add_special_tokens = get_bool(body, "add_special_tokens").value_or(p.prompt.has_value());
  p.add_generation_prompt = get_bool(body, "add_generation_prompt").value_or(true);
  return p;
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

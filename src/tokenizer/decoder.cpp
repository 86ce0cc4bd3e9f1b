// decoder.cpp: tokenizer.json decoders (ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, Sequence) and
// post-processors (TemplateProcessing, ByteLevel, Bert/Roberta, Sequence), following HF tokenizers.
#include <cctype>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/components.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace autoglm::tok {

using json = nlohmann::json;

namespace {

class seq_decoder : public decoder {
 public:
  std::vector<std::unique_ptr<decoder>> steps;
  void apply(std::vector<std::string>& tokens, bool raw) const override {
    for (auto& s : steps) s->apply(tokens, raw);
  }
};

class byte_level_decoder : public decoder {
 public:
  void apply(std::vector<std::string>& tokens, bool raw) const override {
    std::string bytes;
    for (auto& t : tokens) {
      size_t start = bytes.size();
      bool ok = true;
      for (size_t i = 0; i < t.size();) {
        int b = unicode::cp_to_byte(utf8::next(t, i));
        if (b < 0) {
          ok = false;
          break;
        }
        bytes.push_back(static_cast<char>(b));
      }
      if (!ok) {  // a char outside the alphabet: HF keeps the token's own bytes
        bytes.resize(start);
        bytes += t;
      }
    }
    tokens.assign(1, raw ? std::move(bytes) : utf8::lossy(bytes));
  }
};

class metaspace_decoder : public decoder {
 public:
  std::string replacement = "\xE2\x96\x81";
  bool prepend = true;  // prepend_scheme != never
  void apply(std::vector<std::string>& tokens, bool) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      for (size_t k = 0; k < t.size();) {
        if (t.compare(k, replacement.size(), replacement) == 0) {
          if (!(i == 0 && prepend)) out.push_back(' ');
          k += replacement.size();
        } else {
          out.push_back(t[k++]);
        }
      }
      tokens[i] = std::move(out);
    }
  }
};

class byte_fallback_decoder : public decoder {
 public:
  void apply(std::vector<std::string>& tokens, bool raw) const override {
    std::vector<std::string> out;
    std::string pending;
    size_t n_pending = 0;
    auto flush = [&] {
      if (!n_pending) return;
      if (raw || utf8::is_valid(pending)) {
        out.push_back(pending);
      } else {
        for (size_t k = 0; k < n_pending; ++k) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
      n_pending = 0;
    };
    for (auto& t : tokens) {
      int v = -1;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::isxdigit(static_cast<unsigned char>(t[3])) &&
          std::isxdigit(static_cast<unsigned char>(t[4])))
        v = std::stoi(t.substr(3, 2), nullptr, 16);
      if (v >= 0) {
        pending.push_back(static_cast<char>(v));
        ++n_pending;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens.swap(out);
  }
};

class fuse_decoder : public decoder {
 public:
  void apply(std::vector<std::string>& tokens, bool) const override {
    std::string all;
    for (auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class strip_decoder : public decoder {
 public:
  std::string content;
  size_t start = 0, stop = 0;
  void apply(std::vector<std::string>& tokens, bool) const override {
    for (auto& t : tokens) {
      size_t b = 0, e = t.size();
      for (size_t k = 0; k < start && t.compare(b, content.size(), content) == 0 && b + content.size() <= e; ++k)
        b += content.size();
      for (size_t k = 0; k < stop && e >= b + content.size() && t.compare(e - content.size(), content.size(), content) == 0; ++k)
        e -= content.size();
      t = t.substr(b, e - b);
    }
  }
};

class replace_decoder : public decoder {
 public:
  std::unique_ptr<regex> re;
  std::string content;
  void apply(std::vector<std::string>& tokens, bool) const override {
    std::vector<std::pair<size_t, size_t>> m;
    for (auto& t : tokens) {
      if (!utf8::is_valid(t)) continue;
      re->find_all(t, m);
      if (m.empty()) continue;
      std::string out;
      size_t prev = 0;
      for (auto [b, e] : m) {
        out.append(t, prev, b - prev);
        out += content;
        prev = e;
      }
      out.append(t, prev);
      t = std::move(out);
    }
  }
};

std::unique_ptr<regex> parse_pattern(const json& j, const std::string& where) {
  if (j.is_object() && j.contains("String") && j["String"].is_string())
    return std::make_unique<regex>(j["String"].get<std::string>(), true, where);
  if (j.is_object() && j.contains("Regex") && j["Regex"].is_string())
    return std::make_unique<regex>(j["Regex"].get<std::string>(), false, where);
  throw error(where + ": pattern must be {\"String\": ...} or {\"Regex\": ...}");
}

}  // namespace

std::unique_ptr<decoder> parse_decoder(const json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string t = type_of(j, where);
  if (t == "Sequence") {
    auto s = std::make_unique<seq_decoder>();
    if (!j.contains("decoders") || !j["decoders"].is_array()) throw error(where + ".decoders: expected an array");
    for (size_t i = 0; i < j["decoders"].size(); ++i) {
      auto d = parse_decoder(j["decoders"][i], where + ".decoders[" + std::to_string(i) + "]");
      if (d) s->steps.push_back(std::move(d));
    }
    return s;
  }
  if (t == "ByteLevel") return std::make_unique<byte_level_decoder>();
  if (t == "ByteFallback") return std::make_unique<byte_fallback_decoder>();
  if (t == "Fuse") return std::make_unique<fuse_decoder>();
  if (t == "Metaspace") {
    auto d = std::make_unique<metaspace_decoder>();
    d->replacement = field<std::string>(j, "replacement", where, "\xE2\x96\x81");
    std::string scheme = field<std::string>(j, "prepend_scheme", where, "");
    if (scheme.empty()) scheme = field<bool>(j, "add_prefix_space", where, true) ? "always" : "never";
    d->prepend = scheme != "never";
    return d;
  }
  if (t == "Strip") {
    auto d = std::make_unique<strip_decoder>();
    d->content = field<std::string>(j, "content", where, " ");
    d->start = field<size_t>(j, "start", where, 0);
    d->stop = field<size_t>(j, "stop", where, 0);
    if (d->content.empty()) throw error(where + ".content: empty");
    return d;
  }
  if (t == "Replace") {
    auto d = std::make_unique<replace_decoder>();
    if (!j.contains("pattern")) throw error(where + ".pattern: missing");
    d->re = parse_pattern(j["pattern"], where + ".pattern");
    d->content = field<std::string>(j, "content", where, "");
    return d;
  }
  throw error(where + ": unsupported decoder type \"" + t +
              "\" (supported: Sequence, ByteLevel, ByteFallback, Fuse, Metaspace, Strip, Replace)");
}

// ---------------------------------------------------------------------------------------------------------------
namespace {

class template_post_processor : public post_processor {
 public:
  // Each item: a special token's ids, or an empty vector standing for sequence A.
  std::vector<std::vector<int32_t>> items;
  void apply(std::vector<int32_t>& ids) const override {
    std::vector<int32_t> out;
    out.reserve(ids.size() + 8);
    for (auto& it : items) {
      if (it.empty()) out.insert(out.end(), ids.begin(), ids.end());
      else out.insert(out.end(), it.begin(), it.end());
    }
    ids.swap(out);
  }
};
class noop_post_processor : public post_processor {
 public:
  void apply(std::vector<int32_t>&) const override {}
};
class seq_post_processor : public post_processor {
 public:
  std::vector<std::unique_ptr<post_processor>> steps;
  void apply(std::vector<int32_t>& ids) const override {
    for (auto& s : steps) s->apply(ids);
  }
};

// A token id the post-processor inserts: in range, not truncated to int32 (4294967296 would become 0).
int32_t checked_id(const json& v, const std::string& where) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > max_token_id)
    throw error(where + ": token ids must be integers from 0 to " + std::to_string(max_token_id));
  return v.get<int32_t>();
}

int32_t pair_id(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_array() || j[key].size() != 2 || !j[key][1].is_number_integer())
    throw error(where + "." + key + ": expected [token, id]");
  return checked_id(j[key][1], where + "." + key);
}

}  // namespace

std::unique_ptr<post_processor> parse_post_processor(const json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string t = type_of(j, where);
  if (t == "Sequence") {
    auto s = std::make_unique<seq_post_processor>();
    if (!j.contains("processors") || !j["processors"].is_array()) throw error(where + ".processors: expected an array");
    for (size_t i = 0; i < j["processors"].size(); ++i) {
      auto p = parse_post_processor(j["processors"][i], where + ".processors[" + std::to_string(i) + "]");
      if (p) s->steps.push_back(std::move(p));
    }
    return s;
  }
  if (t == "ByteLevel") return std::make_unique<noop_post_processor>();  // only adjusts offsets
  if (t == "TemplateProcessing") {
    auto p = std::make_unique<template_post_processor>();
    if (!j.contains("single") || !j["single"].is_array()) throw error(where + ".single: expected an array");
    const json& specials = j.contains("special_tokens") ? j["special_tokens"] : json::object();
    for (size_t i = 0; i < j["single"].size(); ++i) {
      const json& it = j["single"][i];
      std::string w = where + ".single[" + std::to_string(i) + "]";
      if (it.contains("Sequence")) {
        p->items.emplace_back();
      } else if (it.contains("SpecialToken") && it["SpecialToken"].contains("id")) {
        std::string name = it["SpecialToken"]["id"].get<std::string>();
        if (!specials.contains(name) || !specials[name].contains("ids") || !specials[name]["ids"].is_array() ||
            specials[name]["ids"].empty())
          throw error(w + ": special token \"" + name + "\" missing from special_tokens");
        std::vector<int32_t> ids;
        for (const json& id : specials[name]["ids"]) ids.push_back(checked_id(id, where + ".special_tokens." + name));
        p->items.push_back(std::move(ids));
      } else {
        throw error(w + ": expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
      }
    }
    return p;
  }
  if (t == "BertProcessing" || t == "RobertaProcessing") {
    auto p = std::make_unique<template_post_processor>();
    p->items = {{pair_id(j, "cls", where)}, {}, {pair_id(j, "sep", where)}};
    return p;
  }
  throw error(where + ": unsupported post_processor type \"" + t +
              "\" (supported: Sequence, ByteLevel, TemplateProcessing, BertProcessing, RobertaProcessing)");
}

}  // namespace autoglm::tok

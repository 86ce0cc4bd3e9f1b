// A render must not retain memory: the engine's values are shared_ptr graphs, and a macro stored in the scope
// it captures (every top-level macro, e.g. the GLM template's visible_content) or a namespace holding itself
// forms a cycle that reference counting alone never frees. These tests count the live scopes, dicts and
// callables (jinja::count_live_objects) around many renders, so they catch a leak in builds without sanitizers.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "core/error.h"
#include "template/chat_template.h"
#include "template/value.h"

namespace {

using autoglm::chat_template;
using autoglm::jinja::count_live_objects;
using autoglm::jinja::live_objects;
using ojson = nlohmann::ordered_json;

constexpr int n_renders = 25;

std::string read_asset(const std::string& rel) {
  std::ifstream f(std::string(AUTOGLM_SOURCE_DIR) + "/" + rel);
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_FALSE(ss.str().empty()) << rel;
  return ss.str();
}

void expect_same(const live_objects& before, const live_objects& after, const std::string& what) {
  EXPECT_EQ(after.scopes, before.scopes) << what << ": scopes retained";
  EXPECT_EQ(after.dicts, before.dicts) << what << ": dicts retained";
  EXPECT_EQ(after.callables, before.callables) << what << ": callables retained";
}

// Expected output is jinja2 3.1's. Macros (top level, nested, called with caller()), a macro kept in a namespace past the loop that
// defined it, namespaces that hold themselves and each other, and loops with loop.cycle.
const char* cyclic_template = R"({% macro wrap(x) %}[{{ caller(x) if caller is defined else x }}]{% endmacro %}
{% macro outer(items) %}{% macro inner(i) %}<{{ i }}>{% endmacro %}{% for i in items %}{{ inner(i) }}{% endfor %}{% endmacro %}
{% set ns = namespace(count=0, fn=none) %}
{% set other = namespace(back=ns) %}
{% set ns.self = ns %}
{% set ns.other = other %}
{% for m in messages %}
{% macro tagged(t) %}{{ t }}!{% endmacro %}
{% set ns.fn = tagged %}
{% set ns.count = ns.count + 1 %}
{{ loop.cycle('a', 'b') }}{% call(v) wrap(m.content) %}{{ v | upper }}{% endcall %}{{ outer([loop.index, m.role]) }}
{% endfor %}
{{ ns.fn('last') }}|{{ ns.count }}|{{ ns.self.other.back.count }}|{{ ns.items is defined }})";

const char* cyclic_context = R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})";

TEST(JinjaRetention, GlmTemplateRendersRetainNothing) {
  chat_template t(read_asset("tests/assets/glm4v/chat_template.jinja"));
  auto ctx = ojson::parse(R"({"messages": [{"role": "system", "content": "SYS"},
      {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Question"}]},
      {"role": "assistant", "content": "answer"}, {"role": "user", "content": "again"}],
      "add_generation_prompt": true, "enable_thinking": false,
      "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]})");
  std::string first = t.render(ctx);
  live_objects before = count_live_objects();
  for (int i = 0; i < n_renders; ++i) EXPECT_EQ(t.render(ctx), first);
  expect_same(before, count_live_objects(), "GLM template");
  EXPECT_NE(first.find("<|user|>\nagain/nothink<|assistant|>\n<think></think>"), std::string::npos) << first;
}

TEST(JinjaRetention, MacrosNamespacesAndLoopsRetainNothing) {
  chat_template t(cyclic_template);
  auto ctx = ojson::parse(cyclic_context);
  live_objects before = count_live_objects();
  for (int i = 0; i < n_renders; ++i) {
    EXPECT_EQ(t.render(ctx),
              "a[HI]<1><user>\nb[YO]<2><assistant>\nlast!|2|2|False");
  }
  expect_same(before, count_live_objects(), "macro/namespace template");
}

TEST(JinjaRetention, FailedRenderRetainsNothing) {
  // raise_exception after macros and namespaces exist: the render unwinds through the interpreter.
  chat_template t(std::string(cyclic_template) + "{{ raise_exception('stop') }}");
  auto ctx = ojson::parse(cyclic_context);
  live_objects before = count_live_objects();
  for (int i = 0; i < n_renders; ++i) EXPECT_THROW(t.render(ctx), autoglm::error);
  expect_same(before, count_live_objects(), "failed render");
}

TEST(JinjaRetention, CountsSeeLiveObjects) {
  // The counters themselves: a namespace built from the engine's values is counted while it lives.
  live_objects before = count_live_objects();
  {
    auto ns = autoglm::jinja::value::namespace_object();
    auto fn = autoglm::jinja::value::callable([](const autoglm::jinja::call_args&) { return autoglm::jinja::value(); }, "f");
    live_objects during = count_live_objects();
    EXPECT_EQ(during.dicts, before.dicts + 1);
    EXPECT_EQ(during.callables, before.callables + 1);
  }
  expect_same(before, count_live_objects(), "values out of scope");
}

}  // namespace

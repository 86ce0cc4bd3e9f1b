// Bounds on parsing and rendering chat templates (template_limits, src/template/limits.h): every hostile
// template or context fails with an autoglm::error naming the limit and the line, instead of overflowing the
// stack, running for minutes or allocating gigabytes. Each case here crashed, hung or ran away before the limits.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "core/error.h"
#include "template/chat_template.h"

namespace {

using autoglm::chat_template;
using autoglm::template_limits;
using ojson = nlohmann::ordered_json;

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

// The error of parsing and rendering `src`, or "<no error>".
std::string error_of(const std::string& src, const template_limits& limits = {}, const ojson& ctx = ojson::object()) {
  try {
    chat_template t(src, limits);
    t.render(ctx);
  } catch (const autoglm::error& e) {
    return e.what();
  }
  return "<no error>";
}

std::string render(const std::string& src, const template_limits& limits = {}, const ojson& ctx = ojson::object()) {
  return chat_template(src, limits).render(ctx);
}

const std::string too_deep = "chat template: nesting deeper than 128 levels at line ";

// ---- parsing ----

TEST(JinjaLimits, DeepBracketsFailAtParseNamingTheLine) {
  const int n = 100000;
  EXPECT_EQ(error_of("{{ " + repeat("(", n) + "1" + repeat(")", n) + " }}"), too_deep + "1");
  EXPECT_EQ(error_of("{{ " + repeat("[", n) + repeat("]", n) + " }}"), too_deep + "1");
  const int m = 10000;  // the parser stops at 128 whatever the count; fewer keep the test quick under ASan
  EXPECT_EQ(error_of("{{ " + repeat("{'a': ", m) + "1" + repeat("}", m) + " }}"), too_deep + "1");
  EXPECT_EQ(error_of("{{ f" + repeat("(f", m) + repeat(")", m) + " }}"), too_deep + "1");
  EXPECT_EQ(error_of("{{ x" + repeat("[x", m) + repeat("]", m) + " }}"), too_deep + "1");
  // The line is where the limit was crossed.
  EXPECT_EQ(error_of("a\nb\n{{ " + repeat("(", 200) + "1" + repeat(")", 200) + " }}"), too_deep + "3");
}

TEST(JinjaLimits, LongOperatorAndFilterChainsFailAtParse) {
  // Built by loops in the parser (no recursion), but evaluating and freeing the tree recurses through each link.
  const int n = 20000;
  EXPECT_EQ(error_of("{{ " + repeat("not ", n) + "1 }}"), too_deep + "1");
  EXPECT_EQ(error_of("{{ " + repeat("- ", n) + "1 }}"), too_deep + "1");
  EXPECT_EQ(error_of("{{ 1" + repeat(" + 1", n) + " }}"), too_deep + "1");
  EXPECT_EQ(error_of("{{ 'a'" + repeat(" ~ 'a'", n) + " }}"), too_deep + "1");
  EXPECT_EQ(error_of("{{ 'a'" + repeat("|upper", n) + " }}"), too_deep + "1");
  EXPECT_EQ(error_of("{{ x" + repeat(".a", n) + " }}"), too_deep + "1");
  EXPECT_EQ(error_of("{{ 1" + repeat(" is number", n) + " }}"), too_deep + "1");
  EXPECT_EQ(error_of("{{ 1" + repeat(" if x else 1", n / 2) + " }}"), too_deep + "1");
}

TEST(JinjaLimits, DeeplyNestedStatementsFailAtParse) {
  const int n = 10000;
  EXPECT_EQ(error_of(repeat("{% if true %}", n) + "x" + repeat("{% endif %}", n)), too_deep + "1");
  EXPECT_EQ(error_of(repeat("{% for i in [1] %}", n) + "x" + repeat("{% endfor %}", n)), too_deep + "1");
  EXPECT_EQ(error_of(repeat("{% macro m() %}", n) + "x" + repeat("{% endmacro %}", n)), too_deep + "1");
  EXPECT_EQ(error_of(repeat("{% set x %}", n) + "x" + repeat("{% endset %}", n)), too_deep + "1");
  EXPECT_EQ(error_of(repeat("{% filter upper %}", n) + "x" + repeat("{% endfilter %}", n)), too_deep + "1");
  EXPECT_EQ(error_of(repeat("{% if true %}\n", n) + "x" + repeat("{% endif %}", n)), too_deep + "128");
}

TEST(JinjaLimits, NestingBelowTheLimitRenders) {
  EXPECT_EQ(render("{{ " + repeat("(", 100) + "7" + repeat(")", 100) + " }}"), "7");
  EXPECT_EQ(render("{{ " + repeat("[", 60) + repeat("]", 60) + "|length }}"), "1");
  EXPECT_EQ(render(repeat("{% if true %}", 100) + "x" + repeat("{% endif %}", 100)), "x");
  EXPECT_EQ(render("{{ 1" + repeat(" + 1", 100) + " }}"), "101");
  // The limit is the caller's.
  template_limits tight;
  tight.max_nesting = 8;
  EXPECT_EQ(error_of("{{ " + repeat("(", 20) + "1" + repeat(")", 20) + " }}", tight),
            "chat template: nesting deeper than 8 levels at line 1");
}

TEST(JinjaLimits, SourceSizeIsBounded) {
  template_limits small;
  small.max_source_bytes = 1000;
  EXPECT_EQ(error_of(std::string(1001, 'x'), small), "chat template: 1001 bytes, more than the limit of 1000");
  EXPECT_EQ(render(std::string(1000, 'x'), small), std::string(1000, 'x'));
}

TEST(JinjaLimits, MalformedLiteralsAreTemplateErrors) {
  // These threw std::out_of_range / std::invalid_argument (not autoglm::error) or printed garbage.
  EXPECT_EQ(render("{{ 1e400 }}|{{ -1e400 }}|{{ 1e-400 }}"), "inf|-inf|0.0");
  EXPECT_EQ(error_of("{{ '\\xZZ' }}"), "chat template line 1: invalid \\x escape");
  EXPECT_EQ(error_of("{{ '\\U00110000' }}"), "chat template line 1: \\U escape beyond U+10FFFF");
  EXPECT_EQ(error_of("{{ x.99999999999999999999 }}"), "chat template line 1: integer index out of range: 99999999999999999999");
}

// ---- rendering ----

TEST(JinjaLimits, StepsBoundLoops) {
  // Nested range() loops ran for minutes (10^8 iterations here; the CLI test runs them against the default limit).
  template_limits few;
  few.max_steps = 100000;
  EXPECT_EQ(error_of("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", few),
            "chat template line 1: exceeded its limit of 100000 steps");
  few.max_steps = 1000;
  EXPECT_EQ(error_of("{% for i in range(2000) %}{% endfor %}", few), "chat template line 1: exceeded its limit of 1000 steps");
  EXPECT_EQ(render("{% for i in range(100) %}{% endfor %}ok", few), "ok");
  // Work inside filters counts too: sorting or de-duplicating a large list in a loop.
  EXPECT_EQ(error_of("{% set l = range(1000)|list %}{% for i in range(100) %}{{ l|unique|length }}{% endfor %}", few),
            "chat template line 1: exceeded its limit of 1000 steps");
  EXPECT_EQ(error_of("{% set s = 'a' * 30000 %}{% for i in range(10) %}{{ s.count('b') }}{% endfor %}", few),
            "chat template line 1: exceeded its limit of 1000 steps");
}

TEST(JinjaLimits, StringSizeIsCheckedBeforeBuilding) {
  // 'x' * 10**9 allocated 5-6 GB before failing.
  const std::string big = "chat template line 1: a string of 1000000000 bytes exceeds the limit of 33554432 bytes";
  EXPECT_EQ(error_of("{{ 'x' * 1000000000 }}"), big);
  EXPECT_EQ(error_of("{{ 1000000000 * 'x' }}"), big);
  EXPECT_EQ(error_of("{{ 'xy' * 9223372036854775807 }}").substr(0, 40), "chat template line 1: a string of 184467");
  EXPECT_NE(error_of("{{ 'a'|indent(1000000000000) }}").find("exceeds the limit of 33554432 bytes"), std::string::npos);
  EXPECT_NE(error_of("{{ [1, [2]]|tojson(indent=1000000000000) }}").find("exceeds the limit of 33554432 bytes"), std::string::npos);
  template_limits small;
  small.max_string_bytes = 1000;
  auto fails = [&](const std::string& src) {
    std::string e = error_of(src, small);
    EXPECT_NE(e.find("exceeds the limit of 1000 bytes"), std::string::npos) << src << " -> " << e;
  };
  fails("{{ 'x' * 600 ~ 'y' * 600 }}");
  fails("{{ ('a' * 100).replace('a', 'bbbbbbbbbbbbbbbbbbbb') }}");
  fails("{{ ('a' * 100)|replace('', 'bbbbbbbbbbbbbbbbbbbb') }}");
  fails("{{ range(300)|join(',') }}");
  fails("{{ '{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}'.format('x' * 100) }}");
  fails("{{ '%s%s%s%s%s%s%s%s%s%s%s%s'|format('x' * 100, 'x' * 100, 'x' * 100, 'x' * 100, 'x' * 100, 'x' * 100, 'x' * 100, 'x' * 100, 'x' * 100, 'x' * 100, 'x' * 100, 'x' * 100) }}");
  fails("{{ range(400)|list }}");  // printing a list builds its repr
  fails("{{ range(400)|list|tojson }}");
  fails("{% set ns = namespace(s='x') %}{% for i in range(20) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}");
  fails("{% set x %}{% for i in range(20) %}{{ 'x' * 100 }}{% endfor %}{% endset %}{{ x|upper }}");
}

TEST(JinjaLimits, OutputSizeIsBounded) {
  template_limits small;
  small.max_output_bytes = 50000;
  const std::string msg = "chat template line 1: rendered text exceeds the limit of 50000 bytes";
  EXPECT_EQ(error_of("{% for i in range(100) %}{{ 'x' * 1000 }}{% endfor %}", small), msg);
  EXPECT_EQ(error_of("{% for i in range(100) %}" + std::string(1000, 't') + "{% endfor %}", small), msg);
  // The text a macro or a set block renders is bounded the same way, before it becomes a value.
  EXPECT_EQ(error_of("{% macro m() %}{% for i in range(100) %}{{ 'x' * 1000 }}{% endfor %}{% endmacro %}{% set y = m() %}", small), msg);
  EXPECT_EQ(render("{% for i in range(40) %}{{ 'x' * 1000 }}{% endfor %}", small), std::string(40000, 'x'));
}

TEST(JinjaLimits, ListSizeIsBounded) {
  EXPECT_EQ(error_of("{{ range(1000000000)|length }}"), "chat template line 1: a list of 1000000000 items exceeds the limit of 1000000 items");
  EXPECT_EQ(error_of("{{ range(-9223372036854775807, 9223372036854775807)|length }}"),
            "chat template line 1: a list of 9223372036854775807 items exceeds the limit of 1000000 items");
  template_limits small;
  small.max_items = 100;
  auto fails = [&](const std::string& src) {
    std::string e = error_of(src, small);
    EXPECT_NE(e.find("exceeds the limit of 100 items"), std::string::npos) << src << " -> " << e;
  };
  fails("{{ range(101)|length }}");
  fails("{% set l = range(60)|list %}{{ (l + l)|length }}");
  fails("{{ (',' * 200).split(',')|length }}");
  fails("{% for c in 'x' * 200 %}{% endfor %}");
  fails("{{ ('x' * 200)|list|length }}");
  fails("{{ ('x\\n' * 200).splitlines()|length }}");
  EXPECT_EQ(render("{{ range(100)|length }}", small), "100");
}

TEST(JinjaLimits, TotalBytesBuiltAreBounded) {
  // Each string is small enough, but a render that keeps building them is stopped: memory is bounded too.
  template_limits small;
  small.max_total_bytes = 1 << 20;
  EXPECT_EQ(error_of("{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = ns.l + ['x' * 10000] %}{% endfor %}", small),
            "chat template line 1: the strings and lists built exceed the render's limit of 1048576 bytes");
  EXPECT_EQ(render("{% set ns = namespace(l=[]) %}{% for i in range(20) %}{% set ns.l = ns.l + ['x' * 10000] %}{% endfor %}{{ ns.l|length }}", small),
            "20");
}

TEST(JinjaLimits, RecursionIsBounded) {
  EXPECT_EQ(error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
            "chat template line 1: macro calls nested deeper than 64 levels (recursion?)");
  EXPECT_EQ(error_of("{% macro f() %}{% call f() %}x{% endcall %}{{ caller() }}{% endmacro %}{% call f() %}y{% endcall %}"),
            "chat template line 1: macro calls nested deeper than 64 levels (recursion?)");
  EXPECT_EQ(render("{% macro f(n) %}{{ f(n - 1) if n > 0 else 'done' }}{% endmacro %}{{ f(50) }}"), "done");
  // Recursion through deeply nested bodies: the C++ stack is bounded even when no single limit above is reached.
  std::string body = repeat("{% if true %}", 40) + "{{ " + repeat("(", 80) + "f(n - 1)" + repeat(")", 80) + " if n > 0 else 'x' }}" +
                     repeat("{% endif %}", 40);
  EXPECT_EQ(error_of("{% macro f(n) %}" + body + "{% endmacro %}{{ f(60) }}"),
            "chat template line 1: rendering nested deeper than 1000 levels");
  template_limits shallow;
  shallow.max_call_depth = 3;
  EXPECT_EQ(render("{% macro f(n) %}{{ f(n - 1) if n > 0 else 'done' }}{% endmacro %}{{ f(2) }}", shallow), "done");
  EXPECT_NE(error_of("{% macro f(n) %}{{ f(n - 1) if n > 0 else 'done' }}{% endmacro %}{{ f(3) }}", shallow), "<no error>");
}

TEST(JinjaLimits, ValueNestingIsBounded) {
  const std::string msg = "chat template line 1: value nested deeper than 128 levels";
  // A namespace holding itself: printing it recursed until the stack overflowed.
  EXPECT_EQ(error_of("{% set ns = namespace() %}{% set ns.a = ns %}{{ ns }}"), msg);
  EXPECT_EQ(error_of("{% set ns = namespace() %}{% set ns.a = ns %}{{ ns|tojson }}"), msg);
  EXPECT_EQ(error_of("{% set ns = namespace() %}{% set ns.a = ns %}{{ ns == ns }}"), msg);
  // Deep values built in a loop or by recursion: freeing them recursed as deep as they were.
  EXPECT_EQ(error_of("{% set ns = namespace(x=1) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}"), msg);
  EXPECT_EQ(error_of("{% macro f(n, x) %}{{ f(n - 1, [[[[[[[[[[x]]]]]]]]]]) if n > 0 else x|length }}{% endmacro %}{{ f(60, 1) }}"), msg);
  // A chain of namespaces is fine to build and free (each is emptied when the render ends) but not to print.
  auto chain = [](int n) {
    return "{% set ns = namespace(cur=none) %}{% for i in range(" + std::to_string(n) +
           ") %}{% set n2 = namespace(x=ns.cur) %}{% set ns.cur = [n2] %}{% endfor %}";
  };
  EXPECT_EQ(render(chain(50000) + "built"), "built");
  EXPECT_EQ(error_of(chain(200) + "{{ ns.cur }}"), msg);
  // Contexts: checked while converting, before anything recurses.
  ojson deep = 1;
  for (int i = 0; i < 200; ++i) deep = ojson::array({deep});
  EXPECT_EQ(error_of("{{ x|length }}", {}, ojson{{"x", deep}}), "chat template context: JSON nested deeper than 128 levels");
  EXPECT_EQ(render("{{ " + repeat("[", 100) + repeat("]", 100) + " }}"), repeat("[", 100) + repeat("]", 100));
}

TEST(JinjaLimits, IntegerOverflowIsAnError) {
  // 2 ** 10**11 looped 10^11 times; INT64_MIN // -1 raised SIGFPE.
  EXPECT_EQ(error_of("{{ 2 ** 100000000000 }}"), "chat template line 1: integer overflow in '**'");
  EXPECT_EQ(error_of("{{ (-9223372036854775807 - 1) // -1 }}"), "chat template line 1: integer overflow in '//'");
  EXPECT_EQ(error_of("{{ 9223372036854775807 + 1 }}"), "chat template line 1: integer overflow in '+'");
  EXPECT_EQ(error_of("{{ 4611686018427387904 * 2 }}"), "chat template line 1: integer overflow in '*'");
  EXPECT_EQ(error_of("{{ -(-9223372036854775807 - 1) }}"), "chat template line 1: integer overflow in unary '-'");
  EXPECT_EQ(error_of("{{ (-9223372036854775807 - 1)|abs }}"), "chat template line 1: integer overflow in abs");
  EXPECT_EQ(render("{{ (-9223372036854775807 - 1) % -1 }}|{{ 2 ** 62 }}|{{ (-2) ** 63 }}|{{ 1 ** 100000000000 }}|{{ 2 ** -1 }}"),
            "0|4611686018427387904|-9223372036854775808|1|0.5");
  EXPECT_EQ(render("{{ 1e300|int }}|{{ '1e300'|int(7) }}|{{ [9223372036854775807, 1]|sum }}"), "0|7|9.223372036854776e+18");
}

TEST(JinjaLimits, HugeStepsAndIndicesDoNotOverflow) {
  EXPECT_EQ(render("{{ 'abc'[::9223372036854775807] }}|{{ [1, 2, 3][::-9223372036854775807] }}|{{ 'héllo'[::-2] }}|{{ 'héllo'[-9223372036854775807:] }}"),
            "a|[3]|olh|héllo");
  EXPECT_EQ(render("{{ range(0, 9223372036854775807, 4611686018427387904) }}|{{ range(9223372036854775807, -9223372036854775807, -9223372036854775807) }}"),
            "[0, 4611686018427387904]|[9223372036854775807, 0]");
  EXPECT_EQ(render("{{ 'héllo'[1] }}{{ 'héllo'[-1] }}{{ 'héllo'[9] }}{{ 'héllo'[-9] }}|{{ 'héllo'|reverse }}"), "éo|olléh");
}

TEST(JinjaLimits, NonStringArgumentsAreErrors) {
  // as_string() on an integer dereferenced a null pointer.
  EXPECT_EQ(error_of("{{ ' a '.strip(1) }}"), "chat template line 1: strip() chars must be a string or None, got integer");
  EXPECT_EQ(error_of("{{ 'a b'.split(1) }}"), "chat template line 1: split() separator must be a string or None, got integer");
  EXPECT_EQ(error_of("{{ ' a '|trim(1) }}"), "chat template line 1: trim chars must be a string or None, got integer");
  EXPECT_EQ(render("{{ ' a '.strip(none) }}|{{ 'a b'.split(none) }}"), "a|['a', 'b']");
}

TEST(JinjaLimits, LongNeedlesSearchCorrectly) {
  // Needles over 16 bytes use a linear-time search (std::string::find is quadratic on "aaa...ab"); same answers.
  const std::string n = "'" + std::string(20, 'a') + "b'";
  const std::string hay = "('" + std::string(30, 'a') + "b' * 3)";
  EXPECT_EQ(render("{{ " + n + " in " + hay + " }}|{{ " + hay + ".find(" + n + ") }}|{{ " + hay + ".rfind(" + n + ") }}|{{ " + hay +
                   ".count(" + n + ") }}|{{ " + hay + ".split(" + n + ")|length }}|{{ " + hay + ".replace(" + n + ", '-') }}"),
            "True|10|72|3|4|" + std::string(10, 'a') + "-" + std::string(10, 'a') + "-" + std::string(10, 'a') + "-");
  EXPECT_EQ(render("{{ ('x' * 40).rfind('x' * 20) }}|{{ ('x' * 40).count('x' * 20) }}|{{ ('x' * 39).find('x' * 40) }}"), "20|2|-1");
  // A quadratic search here took O(10^13) byte compares.
  EXPECT_EQ(render("{{ ('a' * 2000000 ~ 'b') in ('a' * 4000000) }}"), "False");
}

TEST(JinjaLimits, ManyKeysLookUpCorrectly) {
  // Dicts and scopes past 16 entries are indexed: lookups, replacement in place and order must be as before.
  // (Keys are appended to a prefix: GCC 12 warns falsely on "k" + std::to_string(i) with -Wrestrict.)
  auto key = [](std::string prefix, int i) { return prefix.append(std::to_string(i)); };
  ojson big = ojson::object();
  for (int i = 0; i < 1000; ++i) big[key("k", i)] = i;
  ojson ctx = ojson::object();
  ctx["d"] = big;
  for (int i = 0; i < 100; ++i) ctx[key("v", i)] = i * 2;
  EXPECT_EQ(render("{{ d.k0 }}|{{ d['k999'] }}|{{ d.k1000 }}|{{ v0 }}|{{ v99 }}|{{ d|length }}|{{ (d|list)[500] }}", {}, ctx),
            "0|999||0|198|1000|k500");
  EXPECT_EQ(render("{% set e = dict(d, k5='x', new=1) %}{{ e.k5 }}|{{ e|length }}|{{ (e|list)[5] }}|{{ (e|list)[-1] }}|{{ d.k5 }}", {}, ctx),
            "x|1001|k5|new|5");
}

std::string read_asset(const std::string& rel) {
  std::ifstream f(std::string(AUTOGLM_SOURCE_DIR) + "/" + rel);
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_FALSE(ss.str().empty()) << rel;
  return ss.str();
}

// A long agent conversation: 200 messages with images, tool calls and 1 KB of text each.
ojson long_conversation(bool parts, bool tools) {
  std::string text;
  while (text.size() < 1000) text += "The quick brown fox 跳过了懒狗. \"quoted\" <think>x</think> ";
  ojson msgs = ojson::array({{{"role", "system"}, {"content", text}}});
  while (msgs.size() < 200) {
    if (parts) msgs.push_back({{"role", "user"}, {"content", ojson::array({{{"type", "image"}}, {{"type", "text"}, {"text", text}}})}});
    else msgs.push_back({{"role", "user"}, {"content", text}});
    if (tools) {
      ojson call = {{"id", "c1"}, {"type", "function"}, {"function", {{"name", "get_weather"}, {"arguments", "{\"city\": \"Paris\"}"}}}};
      msgs.push_back({{"role", "assistant"}, {"content", ""}, {"tool_calls", ojson::array({call, call})}});
      msgs.push_back({{"role", "tool"}, {"tool_call_id", "c1"}, {"content", text}});
    }
    msgs.push_back({{"role", "assistant"}, {"content", "<think>hmm</think>" + text}});
  }
  ojson ctx = {{"messages", msgs}, {"add_generation_prompt", true}, {"bos_token", "<s>"}};
  if (tools) {
    ctx["tools"] = ojson::parse(R"([{"type":"function","function":{"name":"get_weather","description":"Get the weather",
        "parameters":{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["c","f"]}},
        "required":["city"]}}}])");
  }
  return ctx;
}

// Real templates on large legitimate inputs stay far below every limit: at least 100x on steps, bytes built and
// output, 10x on nesting, 40x on render depth (measurements of all six parity templates are in the README).
TEST(JinjaLimits, RealTemplatesHaveHeadroom) {
  struct asset {
    const char* path;
    bool parts, tools;
  };
  for (const asset& a : {asset{"tests/assets/glm4v/chat_template.jinja", true, false},
                         asset{"tests/template/features.jinja", true, true}}) {
    const std::string src = read_asset(a.path);
    const ojson ctx = long_conversation(a.parts, a.tools);
    const template_limits dflt;
    autoglm::template_usage usage;
    std::string out = chat_template(src).render(ctx, &usage);
    EXPECT_GT(out.size(), 100000u) << a.path;
    EXPECT_LT(usage.steps * 100, dflt.max_steps) << a.path << ": " << usage.steps << " steps";
    EXPECT_LT(usage.bytes * 100, dflt.max_total_bytes) << a.path << ": " << usage.bytes << " bytes";
    EXPECT_LT(out.size() * 100, dflt.max_output_bytes) << a.path;
    template_limits tight;
    tight.max_nesting = dflt.max_nesting / 10;
    tight.max_render_depth = dflt.max_render_depth / 40;
    tight.max_call_depth = 2;
    EXPECT_EQ(chat_template(src, tight).render(ctx), out) << a.path;
  }
}

}  // namespace

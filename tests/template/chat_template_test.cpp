// Unit tests of the Jinja subset: expressions, filters, tests, loops, macros, whitespace control, errors.
// Expected strings are what jinja2 3.1 (trim_blocks + lstrip_blocks, HF's tojson) renders.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "template/chat_template.h"

namespace {

using autoglm::chat_template;
using ojson = nlohmann::ordered_json;

std::string render(const std::string& src, const std::string& ctx = "{}") {
  return chat_template(src).render(ojson::parse(ctx));
}

std::string error_of(const std::string& src, const std::string& ctx = "{}") {
  try {
    chat_template t(src);
    t.render(ojson::parse(ctx));
  } catch (const autoglm::error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(JinjaExpr, ArithmeticAndPrecedence) {
  EXPECT_EQ(render("{{ 1 + 2 * 3 }}|{{ (1 + 2) * 3 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 2 ** 10 }}"),
            "7|9|3|-4|1|2|1024");
  EXPECT_EQ(render("{{ 7 / 2 }}|{{ 4 / 2 }}|{{ 1.5 + 1 }}|{{ 0.1 + 0.2 }}|{{ 1e-05 * 1 }}|{{ -3 }}|{{ - 2 + 5 }}"),
            "3.5|2.0|2.5|0.30000000000000004|1e-05|-3|3");
  EXPECT_EQ(render("{{ 'a' ~ 1 ~ none ~ true }}|{{ 'ab' * 3 }}|{{ 'x' + 'y' }}|{{ [1] + [2, 3] }}"), "a1NoneTrue|ababab|xy|[1, 2, 3]");
  EXPECT_EQ(render("{{ 1 ~ 2 * 3 }}"), "16");
  EXPECT_THROW(render("{{ 1 + 2 ~ 3 }}"), autoglm::error);  // ~ binds tighter than +: 1 + '23' is a type error
}

TEST(JinjaExpr, ComparisonsLogicAndTernary) {
  EXPECT_EQ(render("{{ 1 < 2 }}{{ 2 <= 1 }}{{ 'a' == 'a' }}{{ 1 == 1.0 }}{{ 'b' > 'a' }}{{ [1,2] != [1,2] }}"),
            "TrueFalseTrueTrueTrueFalse");
  EXPECT_EQ(render("{{ 'ell' in 'hello' }}{{ 2 in [1,2] }}{{ 'k' in {'k': 1} }}{{ 'z' not in 'abc' }}"), "TrueTrueTrueTrue");
  EXPECT_EQ(render("{{ 0 or 'x' }}|{{ 'a' and 'b' }}|{{ [] and 1 }}|{{ not 0 }}|{{ not x is defined }}"), "x|b|[]|True|True");
  EXPECT_EQ(render("{{ 'y' if 1 > 2 else 'n' }}|{{ 'y' if true }}|{{ 'a' if false else 'b' if true else 'c' }}"), "n|y|b");
}

TEST(JinjaExpr, LiteralsAccessAndSlices) {
  const char* ctx = R"({"m": {"role": "user", "content": "Hello", "parts": [{"t": 1}, {"t": 2}]}, "xs": [1, 2, 3, 4, 5]})";
  EXPECT_EQ(render("{{ m.role }}|{{ m['content'] }}|{{ m.parts[1].t }}|{{ m.parts.0.t }}|{{ m.missing }}|{{ m.missing.deeper }}", ctx),
            "user|Hello|2|1||");
  EXPECT_EQ(render("{{ xs[1:3] }}|{{ xs[::-1] }}|{{ xs[-2:] }}|{{ xs[:-3] }}|{{ xs[::2] }}|{{ xs[-1] }}|{{ xs[10] }}", ctx),
            "[2, 3]|[5, 4, 3, 2, 1]|[4, 5]|[1, 2]|[1, 3, 5]|5|");
  EXPECT_EQ(render("{{ 'héllo'[1] }}|{{ 'héllo'[::-1] }}|{{ 'héllo'|length }}"), "é|olléh|5");
  EXPECT_EQ(render("{{ {'a': 1, 'b': [true, none, 'x\\'y']} }}|{{ (1, 2) }}|{{ 'ab' 'cd' }}"), "{'a': 1, 'b': [True, None, \"x'y\"]}|[1, 2]|abcd");
  EXPECT_EQ(render("{{ '\\n\\t\\u00e9\\x41' }}"), "\n\té" "A");
}

TEST(JinjaExpr, StringAndDictMethods) {
  EXPECT_EQ(render("{{ '  a b  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '\\n\\nz'.lstrip('\\n') }}|{{ 'z  '.rstrip() }}"), "a b|a|z|z");
  EXPECT_EQ(render("{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'x</think>y'.split('</think>')[-1] }}"),
            "['a', 'b', '', 'c']|['a', 'b']|['a', 'b c']|y");
  EXPECT_EQ(render("{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}{{ 'abc'.find('c') }}{{ 'abc'.find('z') }}"), "TrueTrue2-1");
  EXPECT_EQ(render("{{ 'aXa'.replace('a', 'b') }}|{{ 'hello world'.title() }}|{{ 'ABC'.lower() }}|{{ 'abc'.upper() }}|{{ 'hI'.capitalize() }}"),
            "bXb|Hello World|abc|ABC|Hi");
  EXPECT_EQ(render("{{ '{} and {name}'.format(1, name='x') }}|{{ ', '.join(['a', 'b']) }}"), "1 and x|a, b");
  const char* ctx = R"({"d": {"b": 1, "a": 2}})";
  EXPECT_EQ(render("{{ d.get('a') }}|{{ d.get('z', 'dflt') }}|{{ d.get('z') }}|{{ d.keys() }}|{{ d.values() }}|{{ d.items() }}", ctx),
            "2|dflt|None|['b', 'a']|[1, 2]|[['b', 1], ['a', 2]]");
  EXPECT_EQ(render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", ctx), "b=1;a=2;");
}

TEST(JinjaFilters, StringFilters) {
  EXPECT_EQ(render("{{ '  x  '|trim }}|{{ 'ab'|upper }}|{{ 'AB'|lower }}|{{ 'a b'|title }}|{{ 'aB'|capitalize }}|{{ 'aa'|replace('a', 'b', 1) }}"),
            "x|AB|ab|A B|Ab|ba");
  EXPECT_EQ(render("{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(2, blank=true) }}"),
            "a\n  b\n\n  c|  a\n  b|a\n  \n  b");
  EXPECT_EQ(render("{{ 'one two  three'|wordcount }}|{{ '<a&b>'|e }}|{{ '%s-%d'|format('x', 3) }}|{{ 'x'|safe }}"), "3|&lt;a&amp;b&gt;|x-3|x");
}

TEST(JinjaFilters, DefaultLengthAndConversions) {
  EXPECT_EQ(render("{{ x|default('d') }}|{{ ''|default('d') }}|{{ ''|default('d', true) }}|{{ x|d('e') }}|{{ none|default('n') }}"), "d||d|e|None");
  EXPECT_EQ(render("{{ [1,2]|length }}|{{ 'abc'|count }}|{{ {'a':1}|length }}|{{ x|length }}"), "2|3|1|0");
  EXPECT_EQ(render("{{ '42'|int + 1 }}|{{ 'x'|int }}|{{ 3.9|int }}|{{ '2.5'|float }}|{{ 3|string ~ 'a' }}|{{ -3|abs }}|{{ 2.567|round(2) }}|{{ 2.5|round }}|{{ 3.5|round }}"),
            "43|0|3|2.5|3a|3|2.57|2.0|4.0");
  EXPECT_EQ(render("{{ 'abc'|list }}|{{ [3,1,2]|first }}|{{ [3,1,2]|last }}|{{ []|first }}|{{ [1,2]|reverse|list }}|{{ 'ab'|reverse }}"),
            "['a', 'b', 'c']|3|2||[2, 1]|ba");
}

TEST(JinjaFilters, SequenceFilters) {
  const char* ctx = R"({"ms": [{"role": "user", "n": 2}, {"role": "assistant", "n": 1}, {"role": "user", "n": 3}], "ws": ["b", "A", "a", "c"]})";
  EXPECT_EQ(render("{{ ms|map(attribute='role')|join(',') }}|{{ ms|selectattr('role', 'equalto', 'user')|list|length }}"
                   "|{{ ms|rejectattr('role', 'eq', 'user')|map(attribute='n')|list }}|{{ ms|selectattr('n')|list|length }}",
                   ctx),
            "user,assistant,user|2|[1]|3");
  EXPECT_EQ(render("{{ [1,2,3,4]|select('even')|list }}|{{ [1,2,3,4]|reject('odd')|list }}|{{ [0,1,'',none,'x']|select|list }}"), "[2, 4]|[2, 4]|[1, 'x']");
  EXPECT_EQ(render("{{ ws|sort|join }}|{{ ws|sort(reverse=true)|join }}|{{ ws|unique|join }}|{{ ms|sort(attribute='n')|map(attribute='n')|join }}", ctx),
            "Aabc|cbAa|bAc|123");
  EXPECT_EQ(render("{{ ['a','b']|map('upper')|join('-') }}|{{ [1,2,3]|sum }}|{{ [3,1,2]|max }}|{{ [3,1,2]|min }}|{{ ms|join(', ', attribute='role') }}", ctx),
            "A-B|6|3|1|user, assistant, user");
  EXPECT_EQ(render("{% for k, v in {'b': 1, 'a': 2}|items %}{{ k }}{{ v }}{% endfor %}|{{ {'b': 1, 'a': 2}|dictsort }}"), "b1a2|[['a', 2], ['b', 1]]");
}

TEST(JinjaFilters, ToJson) {
  const char* ctx = R"({"t": {"name": "f", "desc": "北京 \"q\" \\ \n", "params": {"z": 1, "a": [1.5, true, null]}, "e": {}, "l": []}})";
  EXPECT_EQ(render("{{ t|tojson }}", ctx),
            R"({"name": "f", "desc": "北京 \"q\" \\ \n", "params": {"z": 1, "a": [1.5, true, null]}, "e": {}, "l": []})");
  EXPECT_EQ(render("{{ t.params|tojson(indent=2) }}", ctx), "{\n  \"z\": 1,\n  \"a\": [\n    1.5,\n    true,\n    null\n  ]\n}");
  EXPECT_EQ(render("{{ t.params|tojson(sort_keys=true) }}|{{ 'é'|tojson(ensure_ascii=true) }}|{{ 1.0|tojson }}", ctx),
            R"({"a": [1.5, true, null], "z": 1}|"\u00e9"|1.0)");
  EXPECT_EQ(render("{{ {'a': 1}|tojson(separators=(',', ':')) }}"), R"({"a":1})");
}

TEST(JinjaTests, IsTests) {
  const char* ctx = R"({"s": "x", "n": 1, "f": 1.5, "l": [], "d": {}, "z": null, "b": false})";
  EXPECT_EQ(render("{{ s is string }}{{ n is number }}{{ f is number }}{{ n is integer }}{{ f is float }}{{ l is sequence }}"
                   "{{ d is mapping }}{{ l is mapping }}{{ z is none }}{{ b is boolean }}{{ b is false }}{{ b is true }}",
                   ctx),
            "TrueTrueTrueTrueTrueTrueTrueFalseTrueTrueTrueFalse");
  EXPECT_EQ(render("{{ q is defined }}{{ q is undefined }}{{ s is not none }}{{ s is iterable }}{{ n is iterable }}{{ 4 is even }}"
                   "{{ 3 is odd }}{{ 9 is divisibleby 3 }}{{ s is eq 'x' }}{{ n is sameas 1 }}{{ 2 is gt 1 }}{{ 'b' is in 'abc' }}",
                   ctx),
            "FalseTrueTrueTrueFalseTrueTrueTrueTrueTrueTrueTrue");
}

TEST(JinjaUndefined, BehavesLikeJinja2Default) {
  EXPECT_EQ(render("[{{ nope }}][{{ nope.attr }}][{{ nope['k'] }}]{% if nope %}T{% else %}F{% endif %}{% for x in nope %}x{% else %}empty{% endfor %}"),
            "[][][]Fempty");
  EXPECT_EQ(render("{{ 'a' ~ nope ~ 'b' }}|{{ nope is defined }}|{{ nope == nope }}"), "ab|False|True");
}

TEST(JinjaLoops, LoopVariablesElseFilterAndScoping) {
  EXPECT_EQ(render("{% for x in ['a','b','c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}"
                   "{{ loop.first|int }}{{ loop.last|int }}{{ loop.length }}{{ loop.cycle('o','e') }}{{ loop.previtem }}{{ loop.nextitem }} {% endfor %}"),
            "1032103ob 2121003eac 3210013ob ");
  EXPECT_EQ(render("{% for x in [] %}x{% else %}none{% endfor %}|{% for x in range(10) if x is odd %}{{ x }}{{ loop.length }},{% endfor %}"),
            "none|15,35,55,75,95,");
  EXPECT_EQ(render("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}"), "013");
  EXPECT_EQ(render("{% set y = 'outer' %}{% for x in [1] %}{% set y = 'inner' %}{{ y }}{% endfor %}|{{ y }}"), "inner|outer");
  EXPECT_EQ(render("{% set ns = namespace(found=false, n=0) %}{% for x in [1,2,3] %}{% set ns.n = ns.n + x %}{% if x == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }}{{ ns.n }}"),
            "True6");
  EXPECT_EQ(render("{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }},{% endfor %}|{% for x in {'k': 1, 'j': 2} %}{{ x }}{% endfor %}|{% for c in 'ab' %}{{ c }}.{% endfor %}"),
            "3,7,|kj|a.b.");
  EXPECT_EQ(render("{% for x in [1,2] %}{% for y in [3,4] %}{{ loop.index }}{% endfor %}{{ loop.index }}{% endfor %}"), "121122");
}

TEST(JinjaStatements, SetIfMacroCall) {
  EXPECT_EQ(render("{% set a, b = 1, 2 %}{{ a }}{{ b }}|{% set blk %}in {{ a }}{% endset %}[{{ blk }}]|{% set up | upper %}x{% endset %}{{ up }}"),
            "12|[in 1]|X");
  EXPECT_EQ(render("{% if x %}a{% elif y == 2 %}b{% else %}c{% endif %}", R"({"y": 2})"), "b");
  EXPECT_EQ(render("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', punct='?') }} {{ greet(name='C') }}"),
            "Hi A! Hi B? Hi C!");
  EXPECT_EQ(render("{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}bold {{ 1 + 1 }}{% endcall %}"), "<b>bold 2</b>");
  EXPECT_EQ(render("{% macro m() %}{{ varargs|length }}{{ kwargs.k }}{% endmacro %}{{ m(1, 2, k='v') }}"), "2v");
  EXPECT_EQ(render("{% filter upper %}abc {{ 'd' }}{% endfilter %}|{% raw %}{{ not parsed }}{% endraw %}"), "ABC D|{{ not parsed }}");
  EXPECT_EQ(render("{% generation %}kept{% endgeneration %}"), "kept");
  EXPECT_EQ(render("{% set d = dict(a=1, b='x') %}{{ d.b }}{{ d|length }}"), "x2");
}

TEST(JinjaWhitespace, TrimLstripAndModifiers) {
  // trim_blocks drops the newline after a block tag; lstrip_blocks drops indentation before it.
  EXPECT_EQ(render("{% if true %}\n    yes\n    {% endif %}\nafter\n"), "    yes\nafter");
  EXPECT_EQ(render("a  {%- if true -%}  b  {%- endif -%}  c"), "abc");
  EXPECT_EQ(render("a\n  {{- 'x' -}}\n  b"), "axb");
  EXPECT_EQ(render("a\n  {{ 'x' }}\n"), "a\n  x");             // no lstrip/trim for {{ }}; one trailing newline dropped
  EXPECT_EQ(render("a\n  {%+ if true %}x{% endif %}"), "a\n  x");  // "+" disables lstrip_blocks
  EXPECT_EQ(render("a {# comment #}\n  {#- c2 -#}  b\n"), "a b");
  EXPECT_EQ(render("x\n\n"), "x\n");
  EXPECT_EQ(render("{% for x in [1,2] %}\n  {{ x }}\n{% endfor %}\n"), "  1\n  2\n");
}

TEST(JinjaErrors, SyntaxAndUnsupportedConstructsNameTheLine) {
  EXPECT_NE(error_of("a\n{% if x %}b").find("line 2"), std::string::npos);
  EXPECT_NE(error_of("a\n{% if x %}b").find("endif"), std::string::npos);
  EXPECT_NE(error_of("x\ny\n{{ a|frobnicate }}").find("line 3: unsupported filter 'frobnicate'"), std::string::npos);
  EXPECT_NE(error_of("{% include 'x.jinja' %}").find("unsupported statement '{% include %}'"), std::string::npos);
  EXPECT_NE(error_of("{% extends 'base' %}").find("unsupported statement"), std::string::npos);
  EXPECT_NE(error_of("{{ x is frob }}").find("unsupported test 'frob'"), std::string::npos);
  EXPECT_NE(error_of("{{ 1 < 2 < 3 }}").find("chained comparison"), std::string::npos);
  EXPECT_NE(error_of("{% for x in xs recursive %}{% endfor %}").find("recursive"), std::string::npos);
  EXPECT_NE(error_of("{{ 'a' ").find("unterminated"), std::string::npos);
  EXPECT_NE(error_of("{{ 'abc }}").find("unterminated string"), std::string::npos);
  EXPECT_NE(error_of("{{ (1 + }}").find("line 1"), std::string::npos);
  EXPECT_NE(error_of("\n{% break %}").find("line 2: '{% break %}' outside a for loop"), std::string::npos);
  EXPECT_NE(error_of("{% frob %}").find("unknown statement"), std::string::npos);
  EXPECT_NE(error_of("{{ 'x'.frob() }}").find("unsupported method 'frob'"), std::string::npos);
  EXPECT_NE(error_of("{{ [1].append(2) }}").find("append"), std::string::npos);
  EXPECT_NE(error_of("{{ nope() }}").find("'nope' is undefined"), std::string::npos);
  EXPECT_NE(error_of("{{ nope + 1 }}").find("undefined"), std::string::npos);
  EXPECT_NE(error_of("{{ 'a' + 1 }}").find("unsupported operand"), std::string::npos);
  EXPECT_NE(error_of("{% set x.y = 1 %}").find("namespace"), std::string::npos);
}

TEST(JinjaErrors, RaiseExceptionCarriesTheMessage) {
  EXPECT_EQ(error_of("{% if messages|length == 0 %}{{ raise_exception('No messages!') }}{% endif %}", R"({"messages": []})"), "No messages!");
  EXPECT_THROW(chat_template("{% if %}"), autoglm::error);
}

TEST(ChatTemplateApi, ContextTypesAndKeyOrder) {
  chat_template t("{{ tools|tojson }}");
  auto ordered = ojson::parse(R"({"tools": [{"name": "f", "description": "d", "arguments": {"b": 1, "a": 2}}]})");
  EXPECT_EQ(t.render(ordered), R"([{"name": "f", "description": "d", "arguments": {"b": 1, "a": 2}}])");
  // nlohmann::json sorts object keys; the same data renders with sorted keys.
  EXPECT_EQ(t.render(nlohmann::json::parse(ordered.dump())), R"([{"arguments": {"a": 2, "b": 1}, "description": "d", "name": "f"}])");
  EXPECT_THROW(t.render(nlohmann::json::array()), autoglm::error);
}

TEST(ChatTemplateApi, LoadSourceFromModelDir) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("autoglm_ct_test_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  EXPECT_FALSE(chat_template::load_source_from_model_dir(dir.string()).has_value());
  std::ofstream(dir / "tokenizer_config.json") << R"({"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D{{ 1 }}"}]})";
  EXPECT_EQ(chat_template::load_source_from_model_dir(dir.string()).value(), "D{{ 1 }}");
  std::ofstream(dir / "tokenizer_config.json") << R"({"chat_template": "S"})";
  EXPECT_EQ(chat_template::load_source_from_model_dir(dir.string()).value(), "S");
  std::ofstream(dir / "tokenizer_config.json") << R"({"bos_token": "<s>"})";
  EXPECT_FALSE(chat_template::load_source_from_model_dir(dir.string()).has_value());
  std::ofstream(dir / "chat_template.json") << R"({"chat_template": "P"})";
  EXPECT_EQ(chat_template::load_source_from_model_dir(dir.string()).value(), "P");
  std::ofstream(dir / "chat_template.jinja") << "J";
  EXPECT_EQ(chat_template::load_source_from_model_dir(dir.string()).value(), "J");
  std::ofstream(dir / "chat_template.jinja").close();
  fs::remove(dir / "chat_template.jinja");
  fs::remove(dir / "chat_template.json");
  std::ofstream(dir / "tokenizer_config.json") << "{broken";
  EXPECT_THROW(chat_template::load_source_from_model_dir(dir.string()), autoglm::error);
  fs::remove_all(dir);
}

}  // namespace

